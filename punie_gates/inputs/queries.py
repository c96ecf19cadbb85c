"""The validation queries (data/queries.toml), checked against the tool catalog.

Every check a query asks for must be one that a reply can satisfy and one that a
reply can fail: tools must exist, fields must belong to the listed tools, and a
threshold cannot exceed the queries there are. The same goes for the follow-up:
a tool result must have exactly the catalog's fields, every tool a query asks for
needs one, and each answer fact must reach the model through them without being
in the question already. The file's header documents it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from punie_gates.errors import DataFileError
from punie_gates.inputs import paths
from punie_gates.inputs.catalog import Catalog, load_catalog
from punie_gates.inputs.facts import alternatives, states
from punie_gates.inputs.results import check_result, normalise_result, readable_text


class QueryFileError(DataFileError):
    """The query file is malformed; the message names the file and the query."""


EXPECTS = ("tool", "direct")
FOLLOWUPS = ("text", "call")
# Replies per conversation (the first one included) when [settings] gives none, and
# the bounds a file may choose within: a follow-up needs 2, a second call 3.
DEFAULT_MAX_TURNS = 4
MAX_TURNS_RANGE = (2, 10)
_ID = re.compile(r"^(?P<category>[a-z][a-z0-9_]*)-(?P<number>\d{2})$")
_QUERY_KEYS = {
    "id",
    "category",
    "text",
    "expect",
    "tools_any",
    "tools_all",
    "fields_any",
    "answer_facts",
    "results",
    "followup",
    "followup_tool",
}
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Query:
    id: str
    category: str
    text: str
    expect: str  # "tool" | "direct"
    tools_any: tuple[str, ...] = ()
    tools_all: tuple[str, ...] = ()
    fields_any: tuple[str, ...] = ()
    answer_facts: tuple[str, ...] = ()  # what a correct final answer states ("a|b": either)
    # typed tool -> the text its result prints as (one line); not hashed (a mapping)
    results: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    followup: str = "text"  # "text": answer from the result; "call": call followup_tool next
    followup_tool: str | None = None  # the tool a "call" follow-up must call

    @property
    def listed_tools(self) -> tuple[str, ...]:
        """tools_any then tools_all, without repeats."""
        return tuple(dict.fromkeys(self.tools_any + self.tools_all))


@dataclass(frozen=True)
class Thresholds:
    overall_min: int
    category_min: Mapping[str, int]


@dataclass(frozen=True)
class FollowupThresholds:
    """[followup]: the multi-turn pass's minimums, counted over tool queries' conversations."""

    overall_min: int  # conversations that must pass, out of all tool queries
    category_min: Mapping[str, int]  # category -> conversations that must pass in it (a category may have none)
    hard: bool = False  # True: a miss fails Gate 5; False (default): it flags the gate


@dataclass(frozen=True)
class QuerySet:
    queries: tuple[Query, ...]
    thresholds: Thresholds
    gate_sets: Mapping[str, tuple[str, ...]]
    path: Path
    max_turns: int = DEFAULT_MAX_TURNS  # model replies per conversation, the first included
    followup_thresholds: FollowupThresholds | None = None  # None: the file has no [followup] (not judged)

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

    for key in set(raw) - {"thresholds", "followup", "settings", "gates", "query"}:
        fail(key, "unknown top-level key (expected [thresholds], [followup], [settings], [gates], [[query]])")

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
    all_ids = {e["id"] for e in raw_queries if isinstance(e, dict) and isinstance(e.get("id"), str)}
    gate_sets = _gate_sets(raw.get("gates", {}), all_ids, fail)
    max_turns = _max_turns(raw.get("settings", {}), queries, fail)
    followup = _followup_thresholds(raw.get("followup"), queries, fail)

    if errors:
        raise QueryFileError("\n".join(errors))
    assert thresholds is not None
    return QuerySet(tuple(queries), thresholds, gate_sets, path, max_turns, followup)


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
    facts = _answer_facts(entry, text if isinstance(text, str) else "", bad)
    followup, followup_tool = _followup(entry, expect, bad)
    if followup_tool is not None and followup_tool not in catalog.typed:
        bad(f"followup_tool {followup_tool!r} is not a typed tool in {catalog.path or 'the catalog'}")
    results = _results(entry, expect, catalog, bad)
    if expect == "tool" and results is not None:
        then = [followup_tool] if followup_tool else []
        required = [*listed, *then]
        for tool in dict.fromkeys(required):
            if tool in catalog.typed and tool not in results:
                bad(f"results has no entry for {tool!r}: its call would stop the conversation")
        if all(t in results for t in required):
            _check_facts_reachable(facts, lists["tools_any"], [*lists["tools_all"], *then], results, bad)
    if not (
        ok and isinstance(id, str) and isinstance(category, str) and isinstance(text, str) and isinstance(expect, str)
    ):  # checked above; said again for the type checker
        return None
    return Query(
        id,
        category,
        text,
        expect,
        lists["tools_any"],
        lists["tools_all"],
        lists["fields_any"],
        facts,
        MappingProxyType(dict(results or {})),
        followup,
        followup_tool,
    )


def _answer_facts(entry: dict, text: str, bad) -> tuple[str, ...]:
    facts = entry.get("answer_facts")
    if facts is None:
        bad("answer_facts is missing: list what a correct final answer states")
        return ()
    if not _names(facts) or not facts:
        bad('answer_facts must be a non-empty list of strings, e.g. ["3", "views.py"]')
        return ()
    for fact in facts:
        terms = alternatives(fact)
        if not all(terms):
            bad(f"answer fact {fact!r} has an empty alternative (separate alternatives with |)")
            continue
        echoed = [t for t in terms if states(text, t)]
        if echoed:
            bad(f"answer fact {fact!r}: {echoed[0]!r} is already in the query's text, so stating it proves nothing")
    for fact, n in Counter(facts).items():
        if n > 1:
            bad(f"answer fact {fact!r} is listed {n} times")
    return tuple(facts)


def _followup(entry: dict, expect: Any, bad) -> tuple[str, str | None]:
    followup, tool = entry.get("followup", "text"), entry.get("followup_tool")
    if followup not in FOLLOWUPS:
        bad(f"unknown followup {followup!r} (use {' or '.join(repr(f) for f in FOLLOWUPS)})")
        return "text", None
    if expect == "direct" and ("followup" in entry or tool is not None):
        bad('expect = "direct" has no follow-up (no tool result comes back)')
        return "text", None
    if followup == "call" and not (isinstance(tool, str) and tool):
        bad('followup = "call" needs followup_tool: the tool the second call must call')
        return followup, None
    if followup == "text" and tool is not None:
        bad('followup_tool is only for followup = "call"')
        return followup, None
    return followup, tool


def _results(entry: dict, expect: Any, catalog: Catalog, bad) -> dict[str, str] | None:
    raw = entry.get("results")
    if expect == "direct":
        if raw is not None:
            bad('expect = "direct" cannot give results (no tool is called)')
        return {}
    if raw is None:
        if expect == "tool":
            bad("results is missing: a [query.results] table of typed tool -> what its result prints")
        return None
    if not isinstance(raw, dict):
        bad("results must be a table of typed tool -> result text")
        return None
    results: dict[str, str] = {}
    for tool, text in raw.items():
        typed = catalog.typed.get(tool)
        if typed is None:
            bad(f"results.{tool}: {tool!r} is not a typed tool in {catalog.path or 'the catalog'}")
            continue
        problems = check_result(typed, text)
        for problem in problems:
            bad(f"results.{tool}: {problem}")
        if not problems:
            results[tool] = normalise_result(typed, text)
    return results if len(results) == len(raw) else None


def _check_facts_reachable(facts, tools_any, always, results: dict[str, str], bad) -> None:
    """Each fact must reach the model whichever of tools_any it calls: in the result of a
    tool every good answer calls (tools_all, followup_tool), or in every tools_any result."""
    asked = list(dict.fromkeys([*tools_any, *always]))
    results = {tool: readable_text(text) for tool, text in results.items()}
    for fact in facts:
        if any(states(results[t], fact) for t in always):
            continue
        lacking = [t for t in tools_any if not states(results[t], fact)]
        if len(lacking) == len(tools_any):
            bad(f"answer fact {fact!r} appears in none of the query's results ({', '.join(asked)})")
        elif lacking:
            bad(
                f"answer fact {fact!r} is not in {', '.join(lacking)}'s result: a model that calls "
                f"{lacking[0]} (enough for tools_any) could not state it"
            )


def _max_turns(raw: Any, queries: list[Query], fail) -> int:
    if not isinstance(raw, dict):
        fail("settings", "must be a table")
        return DEFAULT_MAX_TURNS
    for key in set(raw) - {"max_turns"}:
        fail(f"settings.{key}", "unknown key (expected max_turns)")
    value = raw.get("max_turns", DEFAULT_MAX_TURNS)
    low, high = MAX_TURNS_RANGE
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        fail("settings.max_turns", f"must be an integer from {low} to {high} (model replies per conversation)")
        return DEFAULT_MAX_TURNS
    calls = [q.id for q in queries if q.followup == "call"]
    if calls and value < 3:
        fail("settings.max_turns", f"{value} leaves no room for a second call and an answer ({calls[0]} needs 3)")
    return value


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
    minimums = _category_minimums(
        raw, "thresholds", per_category, "queries", fail, unknown="unknown category (no query has category {!r})"
    )
    for category in per_category:
        if category not in minimums:
            fail(f"thresholds.category_min.{category}", "missing: every category needs a minimum")
    return Thresholds(overall, MappingProxyType(dict(minimums)))


def _category_minimums(raw: dict, table: str, per_category: Counter, counted: str, fail, *, unknown: str) -> dict:
    """[table.category_min], each minimum checked against the queries of its category."""
    minimums = raw.get("category_min", {})
    if not isinstance(minimums, dict):
        fail(f"{table}.category_min", "must be a table of category -> minimum")
        return {}
    for category, minimum in minimums.items():
        where = f"{table}.category_min.{category}"
        if category not in per_category:
            fail(where, unknown.format(category))
        elif not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 0:
            fail(where, "must be a non-negative integer")
        elif minimum > per_category[category]:
            fail(where, f"minimum {minimum} is more than the category's {per_category[category]} {counted}")
    return minimums


def _followup_thresholds(raw: Any, queries: list[Query], fail) -> FollowupThresholds | None:
    """[followup]: optional; when given, overall_min is required and every number must be
    reachable by the tool queries there are (direct queries have no follow-up)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        fail("followup", "must be a table (overall_min, hard, [followup.category_min])")
        return None
    for key in sorted(set(raw) - {"overall_min", "category_min", "hard"}):
        fail(f"followup.{key}", "unknown key (expected overall_min, category_min, hard)")
    per_category = Counter(q.category for q in queries if q.expect == "tool")
    total = sum(per_category.values())
    overall = raw.get("overall_min")
    if not isinstance(overall, int) or isinstance(overall, bool) or overall < 0:
        fail("followup.overall_min", "must be a non-negative integer (tool-query conversations that must pass)")
        overall = 0
    elif overall > total:
        fail("followup.overall_min", f"{overall} is more than the {total} tool queries in the file")
    hard = raw.get("hard", False)
    if not isinstance(hard, bool):
        fail("followup.hard", "must be true (a miss fails Gate 5) or false (a miss flags it)")
        hard = False
    minimums = _category_minimums(
        raw,
        "followup",
        per_category,
        "tool queries",
        fail,
        unknown="no tool query has category {!r}, so it has no conversations to count",
    )
    return FollowupThresholds(overall, MappingProxyType(dict(minimums)), hard)


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
