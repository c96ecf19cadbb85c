"""The validation queries (data/queries.toml), checked against the tool catalog.

Every check a query asks for must be one that a reply can satisfy and one that a
reply can fail: tools must exist, fields must belong to the listed tools, and a
threshold cannot exceed the queries there are. The file's header documents it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from punie_gates.inputs import paths
from punie_gates.inputs.catalog import Catalog, load_catalog

from punie_gates.errors import DataFileError


class QueryFileError(DataFileError):
    """The query file is malformed; the message names the file and the query."""


EXPECTS = ("tool", "direct")
_ID = re.compile(r"^(?P<category>[a-z][a-z0-9_]*)-(?P<number>\d{2})$")
_QUERY_KEYS = {"id", "category", "text", "expect", "tools_any", "tools_all", "fields_any"}


@dataclass(frozen=True)
class Query:
    id: str
    category: str
    text: str
    expect: str  # "tool" | "direct"
    tools_any: tuple[str, ...] = ()
    tools_all: tuple[str, ...] = ()
    fields_any: tuple[str, ...] = ()

    @property
    def listed_tools(self) -> tuple[str, ...]:
        """tools_any then tools_all, without repeats."""
        return tuple(dict.fromkeys(self.tools_any + self.tools_all))


@dataclass(frozen=True)
class Thresholds:
    overall_min: int
    category_min: Mapping[str, int]


@dataclass(frozen=True)
class QuerySet:
    queries: tuple[Query, ...]
    thresholds: Thresholds
    gate_sets: Mapping[str, tuple[str, ...]]
    path: Path

    def by_id(self, id: str) -> Query:
        for query in self.queries:
            if query.id == id:
                return query
        raise KeyError(f"{self.path}: no query with id {id!r}")

    def for_gate(self, gate: str) -> tuple[Query, ...]:
        if gate not in self.gate_sets:
            known = ", ".join(sorted(self.gate_sets)) or "none"
            raise KeyError(f"{self.path}: no [gates] set named {gate!r} (known: {known})")
        return tuple(self.by_id(id) for id in self.gate_sets[gate])

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(q.category for q in self.queries))


def load_queries(path: Path | None = None, catalog: Catalog | None = None) -> QuerySet:
    """Read and validate the query file; default data/queries.toml and data/tools.toml."""
    path = Path(path) if path is not None else paths.data_dir() / "queries.toml"
    catalog = catalog if catalog is not None else load_catalog()
    return _build(paths.read_toml(path, "query file", QueryFileError), path, catalog)


def _build(raw: dict, path: Path, catalog: Catalog) -> QuerySet:
    errors: list[str] = []

    def fail(where: str, reason: str) -> None:
        errors.append(f"{path}: {where}: {reason}")

    for key in set(raw) - {"thresholds", "gates", "query"}:
        fail(key, "unknown top-level key (expected [thresholds], [gates], [[query]])")

    raw_queries = raw.get("query")
    if not isinstance(raw_queries, list) or not raw_queries:
        fail("query", "needs at least one [[query]] entry")
        raw_queries = []
    queries: list[Query] = []
    for index, entry in enumerate(raw_queries):
        query = _query(entry, index, catalog, fail)
        if query is not None:
            queries.append(query)

    counts = Counter(q.id for q in queries)
    for id, n in counts.items():
        if n > 1:
            fail(f"query {id!r}", f"duplicate id ({n} queries use it)")

    thresholds = _thresholds(raw.get("thresholds"), queries, fail)
    # Ids of entries that failed validation still count as known here: their own
    # error says what is wrong, and a second "unknown id" would mislead.
    all_ids = {e.get("id") for e in raw_queries if isinstance(e, dict)}
    gate_sets = _gate_sets(raw.get("gates", {}), all_ids, fail)

    if errors:
        raise QueryFileError("\n".join(errors))
    assert thresholds is not None
    return QuerySet(tuple(queries), thresholds, gate_sets, path)


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _query(entry: Any, index: int, catalog: Catalog, fail) -> Query | None:
    if not isinstance(entry, dict):
        fail(f"query #{index + 1}", "must be a table")
        return None
    id = entry.get("id")
    where = f"query {id!r}" if isinstance(id, str) else f"query #{index + 1}"
    ok = True

    def bad(reason: str) -> None:
        nonlocal ok
        ok = False
        fail(where, reason)

    for key in sorted(set(entry) - _QUERY_KEYS):
        bad(f"unknown key {key!r} (allowed: {', '.join(sorted(_QUERY_KEYS))})")
    category, text, expect = entry.get("category"), entry.get("text"), entry.get("expect")
    if not isinstance(category, str) or not category:
        bad("category must be a non-empty string")
    if not isinstance(id, str):
        bad("id must be a string")
    elif not (match := _ID.match(id)):
        bad('id must look like "<category>-NN", e.g. "git_tools-01"')
    elif isinstance(category, str) and match["category"] != category:
        bad(f"id says category {match['category']!r} but category is {category!r}")
    if not isinstance(text, str) or not text.strip():
        bad("text must be a non-empty string")
    if expect not in EXPECTS:
        bad(f"unknown expect {expect!r} (use {' or '.join(repr(e) for e in EXPECTS)})")

    lists: dict[str, tuple[str, ...]] = {}
    for key in ("tools_any", "tools_all", "fields_any"):
        value = entry.get(key, [])
        if not _names(value):
            bad(f"{key} must be a list of names")
            value = []
        lists[key] = tuple(value)
    listed = tuple(dict.fromkeys(lists["tools_any"] + lists["tools_all"]))
    for tool in listed:
        if tool not in catalog.typed:
            bad(f"tool {tool!r} is not a typed tool in {catalog.path or 'the catalog'}")
    if expect == "direct" and (listed or lists["fields_any"]):
        bad('expect = "direct" cannot list tools or fields (any tool call fails it)')
    if expect == "tool" and not listed:
        bad('expect = "tool" needs tools_any or tools_all (a check must name what to call)')
    known = [t for t in listed if t in catalog.typed]
    for name in lists["fields_any"]:
        if known and not any(name in catalog.all_field_names(t) for t in known):
            bad(f"field {name!r} belongs to none of the listed tools ({', '.join(known)})")
    if not ok:
        return None
    return Query(id, category, text, expect, lists["tools_any"], lists["tools_all"], lists["fields_any"])


def _thresholds(raw: Any, queries: list[Query], fail) -> Thresholds | None:
    if not isinstance(raw, dict):
        fail("thresholds", "missing [thresholds] table")
        return None
    per_category = Counter(q.category for q in queries)
    overall = raw.get("overall_min")
    if not isinstance(overall, int) or isinstance(overall, bool) or overall < 0:
        fail("thresholds.overall_min", "must be a non-negative integer")
        overall = 0
    elif overall > len(queries):
        fail("thresholds.overall_min", f"{overall} is more than the {len(queries)} queries in the file")
    for key in set(raw) - {"overall_min", "category_min"}:
        fail(f"thresholds.{key}", "unknown key (expected overall_min, category_min)")
    minimums = raw.get("category_min", {})
    if not isinstance(minimums, dict):
        fail("thresholds.category_min", "must be a table of category -> minimum")
        minimums = {}
    for category, minimum in minimums.items():
        where = f"thresholds.category_min.{category}"
        if category not in per_category:
            fail(where, f"unknown category (no query has category {category!r})")
        elif not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 0:
            fail(where, "must be a non-negative integer")
        elif minimum > per_category[category]:
            fail(where, f"minimum {minimum} is more than the category's {per_category[category]} queries")
    for category in per_category:
        if category not in minimums:
            fail(f"thresholds.category_min.{category}", "missing: every category needs a minimum")
    return Thresholds(overall, MappingProxyType(dict(minimums)))


def _gate_sets(raw: Any, ids: set[str], fail) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        fail("gates", "must be a table of gate name -> list of query ids")
        return MappingProxyType({})
    sets: dict[str, tuple[str, ...]] = {}
    for gate, members in raw.items():
        if not _names(members) or not members:
            fail(f"gates.{gate}", "must be a non-empty list of query ids")
            continue
        for id in members:
            if id not in ids:
                fail(f"gates.{gate}", f"names unknown query id {id!r}")
        for id, n in Counter(members).items():
            if n > 1:
                fail(f"gates.{gate}", f"lists {id!r} {n} times")
        sets[gate] = tuple(members)
    return MappingProxyType(sets)
