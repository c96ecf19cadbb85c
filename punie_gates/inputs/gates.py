"""The gate registry: which gates exist, their order, kind, prerequisite and thresholds.

data/gates.toml is the one list of gates. The suite's own copy decides which gates
exist (a gate module per table, marker `gateN`); a user's `--gates` file replaces
their settings and must hold the same gates and settings; every value is checked by
type and range (inputs/settings.py), so a typo, a wrong type or an impossible value
stops the run, naming the file and key, before any gate runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from punie_gates.errors import DataFileError
from punie_gates.inputs import paths
from punie_gates.inputs.settings import TABLES, GateSettings, Origin, build_settings, shown

HARD, SOFT, CAUTION = "hard", "soft", "caution"
KINDS = (HARD, SOFT, CAUTION)
_META = ("name", "kind", "depends")


@dataclass(frozen=True)
class Gate:
    """One gate as data/gates.toml describes it."""

    id: str
    """The gate's id and pytest marker: "gate0" ... "gate5"."""
    name: str
    """What the gate checks, for people."""
    kind: str
    """"hard" (a failure stops the evaluation), "soft" or "caution" (a failure flags)."""
    depends: str | None
    """The gate whose decision must pass before this one runs."""
    settings: Any = None
    """The gate's thresholds and settings (inputs.settings.Gate4Settings, ...), checked."""

    @property
    def marker_help(self) -> str:
        return f"Gate {self.id.removeprefix('gate')}: {self.name} ({self.kind})"


@dataclass(frozen=True)
class GateRegistry:
    """Every gate in order, and every setting (the gates' and the shared [training] table)."""

    path: Path
    """The file the registry was read from."""
    gates: tuple[Gate, ...]
    """The gates, in the order they run."""
    settings: GateSettings
    """Every gate's settings and [training], overrides applied, each value checked."""

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(g.id for g in self.gates)

    def __getitem__(self, gate_id: str) -> Gate:
        for gate in self.gates:
            if gate.id == gate_id:
                return gate
        raise KeyError(f"no gate {gate_id!r} in {self.path}")

    def __iter__(self) -> Iterator[Gate]:
        return iter(self.gates)

    def __contains__(self, gate_id: object) -> bool:
        return gate_id in self.ids


def load_gates(
    path: Path,
    *,
    like: GateRegistry | None = None,
    overrides: Mapping[tuple[str, str], tuple[Any, Origin]] = {},
) -> GateRegistry:
    """The registry in `path`; with `like`, checked to hold the same gates. `overrides`
    maps (table, key) to (value, origin) for the options that replace a file's value
    (--gate4-iters ...). Every value is checked (inputs.settings); a refused one is named."""
    path = Path(path)
    data = paths.read_toml(path, "gate thresholds file (--gates)", DataFileError)
    gate_tables = [k for k, v in data.items() if k.startswith("gate") and isinstance(v, dict)]
    if like is not None:
        missing = [g for g in like.ids if g not in data]
        if missing:
            raise DataFileError(f"{path}: no table for {', '.join(missing)}; every gate needs one")
        extra = [g for g in gate_tables if g not in like.ids]
        if extra:
            raise DataFileError(
                f"{path}: unknown gate table(s) {', '.join(extra)}; the gates are {', '.join(like.ids)}"
            )
        gate_tables = list(like.ids)
    values = {}
    for table, cls in TABLES.items():
        given = data.get(table, {})
        if not isinstance(given, dict):
            raise DataFileError(f"{path}: {table} must be a table ([{table}]), got {given!r}")
        given = {k: v for k, v in given.items() if k not in _META or table == "training"}
        _check_keys(path, table, given, cls, like)
        values[table] = {k: (v, f"{path}: [{table}] {k} = {{value}}") for k, v in given.items()}
    for (table, key), given in overrides.items():
        values[table][key] = given
    settings = build_settings(values)
    gates = tuple(_gate(path, gid, data[gid], gate_tables, settings) for gid in gate_tables)
    return GateRegistry(path, gates, settings)


def _gate(path: Path, gid: str, table: Mapping[str, Any], known: list[str], settings: GateSettings) -> Gate:
    kind = table.get("kind")
    if kind not in KINDS:
        raise DataFileError(f"{path}: [{gid}] kind must be 'hard', 'soft' or 'caution', got {kind!r}")
    depends = table.get("depends")
    if depends is not None and (depends not in known or known.index(depends) >= known.index(gid)):
        raise DataFileError(f"{path}: [{gid}] depends = {depends!r}: expected an earlier gate of {', '.join(known)}")
    return Gate(gid, str(table.get("name", gid)), kind, depends, settings.of(gid))


def _check_keys(path: Path, table: str, given: Mapping[str, Any], cls: type, like: GateRegistry | None) -> None:
    """Every setting of the table, and no other (a typo is refused, not ignored)."""
    names = [f.name for f in fields(cls)]
    for key in names:
        if key not in given:
            default = f" (the suite's default is {shown(getattr(like.settings.of(table), key))})" if like else ""
            raise DataFileError(f"{path}: [{table}] has no {key!r}{default}")
    unknown = [k for k in given if k not in names]
    if unknown:
        raise DataFileError(
            f"{path}: [{table}] unknown setting(s) {', '.join(unknown)}; known: {', '.join(names) or 'none'}"
        )


@cache
def builtin_gates() -> GateRegistry:
    """The suite's own registry (data/gates.toml): which gates exist and their default settings."""
    return load_gates(paths.data_dir() / "gates.toml")
