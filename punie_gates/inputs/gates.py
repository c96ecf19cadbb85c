"""The gate registry: which gates exist, their order, kind, prerequisite and thresholds.

data/gates.toml is the one list of gates. The suite's own copy decides which gates
exist (a gate module per table, marker `gateN`); a user's `--gates` file replaces
their settings and must hold the same gates, each setting of the same type as the
suite's, so a typo or a wrong type stops the run before any gate runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from punie_gates.errors import DataFileError
from punie_gates.inputs import paths

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
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The gate's thresholds and settings (every other key of its table)."""

    def __getitem__(self, key: str) -> Any:
        try:
            return self.settings[key]
        except KeyError:
            raise KeyError(f"[{self.id}] has no setting {key!r}") from None

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)

    @property
    def marker_help(self) -> str:
        return f"Gate {self.id.removeprefix('gate')}: {self.name} ({self.kind})"


@dataclass(frozen=True)
class GateRegistry:
    """Every gate in order, and the shared [training] settings."""

    path: Path
    """The file the registry was read from."""
    gates: tuple[Gate, ...]
    """The gates, in the order they run."""
    training: Mapping[str, Any] = field(default_factory=dict)
    """The [training] table: LoRA settings Gates 4 and 5 share."""

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


def load_gates(path: Path, *, like: GateRegistry | None = None) -> GateRegistry:
    """The registry in `path`; with `like`, checked to hold the same gates and setting types."""
    path = Path(path)
    data = paths.read_toml(path, "gate thresholds file (--gates)", DataFileError)
    gate_tables = [k for k, v in data.items() if k.startswith("gate") and isinstance(v, dict)]
    if like is not None:
        missing = [g for g in like.ids if g not in data]
        if missing:
            raise DataFileError(f"{path}: no table for {', '.join(missing)}; every gate needs one")
        extra = [g for g in gate_tables if g not in like.ids]
        if extra:
            raise DataFileError(f"{path}: unknown gate table(s) {', '.join(extra)}; the gates are {', '.join(like.ids)}")
        gate_tables = list(like.ids)
    gates = tuple(_gate(path, gid, data[gid], gate_tables, like) for gid in gate_tables)
    training = data.get("training", {})
    if like is not None:
        _check_types(path, "training", training, like.training)
    return GateRegistry(path, gates, MappingProxyType(dict(training)))


def _gate(path: Path, gid: str, table: Mapping[str, Any], known: list[str], like: GateRegistry | None) -> Gate:
    kind = table.get("kind")
    if kind not in KINDS:
        raise DataFileError(f"{path}: [{gid}] kind must be 'hard', 'soft' or 'caution', got {kind!r}")
    depends = table.get("depends")
    if depends is not None and (depends not in known or known.index(depends) >= known.index(gid)):
        raise DataFileError(f"{path}: [{gid}] depends = {depends!r}: expected an earlier gate of {', '.join(known)}")
    settings = {k: v for k, v in table.items() if k not in _META}
    if like is not None:
        _check_types(path, gid, settings, like[gid].settings)
    return Gate(gid, str(table.get("name", gid)), kind, depends, MappingProxyType(settings))


def _check_types(path: Path, table: str, given: Mapping[str, Any], reference: Mapping[str, Any]) -> None:
    for key, ref in reference.items():
        if key not in given:
            raise DataFileError(f"{path}: [{table}] has no {key!r} (the suite's default is {ref!r})")
        value = given[key]
        number = (int, float) if isinstance(ref, float) else type(ref)
        if isinstance(value, bool) != isinstance(ref, bool) or not isinstance(value, number):
            raise DataFileError(f"{path}: [{table}] {key} must be a {type(ref).__name__} like {ref!r}, got {value!r}")
    unknown = [k for k in given if k not in reference]
    if unknown:
        raise DataFileError(f"{path}: [{table}] unknown setting(s) {', '.join(unknown)}; known: {', '.join(reference)}")


@cache
def builtin_gates() -> GateRegistry:
    """The suite's own registry (data/gates.toml): which gates exist and their default settings."""
    return load_gates(paths.data_dir() / "gates.toml")
