"""Each gate's settings as a frozen dataclass, every value checked by type and range once.

data/gates.toml (or a user's --gates file) sets every value; a few options override
one (--memory-budget-gb, --gate4-iters, ...). `build_settings` takes the values with
where each came from, and refuses, before anything heavy runs, every value of the
wrong type or outside its range: counts are whole numbers from 0 (or 1), shares lie
in [0, 1], times, sizes and rates are finite and above 0; NaN and inf never pass.
Each refusal names the file and key, or the option, that set the value. Checks that
need the data (a count against the queries it counts) are checks/preflight's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from punie_gates.errors import DataFileError, OptionError

# Where a value came from, with "{value}" where the value goes:
# "gates.toml: [gate4] min_correct = {value}", "--gate4-iters {value}".
Origin = str


@dataclass(frozen=True)
class Rule:
    """What values a setting takes."""

    type: type[int] | type[float] | type[str]
    """int (a whole number; true/false is not one), float (an int is taken too) or str."""
    low: float | None = None
    """The smallest value allowed (inclusive)."""
    high: float | None = None
    """The largest value allowed (inclusive)."""
    above_zero: bool = False
    """The value must be above 0 (times, sizes, rates)."""
    choices: tuple[Any, ...] = ()
    """The only values allowed, when not empty."""

    def says(self) -> str:
        """The allowed values, for messages and docs/settings.md."""
        if self.choices:
            return "one of " + ", ".join(shown(c) for c in self.choices)
        if self.type is str:
            return "a text that is not empty"
        if self.type is int:
            return f"a whole number from {self.low:g}" + (f" to {self.high:g}" if self.high is not None else "")
        if self.above_zero:
            return "a finite number above 0"
        return f"a number from {self.low:g} to {self.high:g}"

    def problem(self, value: Any) -> str | None:
        """Why `value` is refused, or None."""
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.type is float else self.type):
            return f"must be {self.says()}, not {_kind(value)}"
        if self.choices:
            return None if value in self.choices else f"must be {self.says()}"
        if isinstance(value, str):
            return None if value.strip() else f"must be {self.says()}"
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isnan(number) or math.isinf(number):
            return f"must be {self.says()}, not {shown(value)}"
        if (
            (self.above_zero and number <= 0)
            or (self.low is not None and number < self.low)
            or (self.high is not None and number > self.high)
        ):
            return f"must be {self.says()}"
        return None


COUNT = Rule(int, low=0)
AT_LEAST_ONE = Rule(int, low=1)
SHARE = Rule(float, low=0.0, high=1.0)
POSITIVE = Rule(float, above_zero=True)
TEXT = Rule(str)
FUSION_METHODS = ("streamed", "recipe")
# The bits MLX quantizes to (mx.quantize refuses 7 and 16).
QUANTIZATION_BITS = (1, 2, 3, 4, 5, 6, 8)


def setting(rule: Rule, means: str) -> Any:
    """A settings field: its rule and what it means (for messages and docs/settings.md)."""
    return field(metadata={"rule": rule, "means": means})


@dataclass(frozen=True)
class Gate0Settings:
    """Gate 0 has no settings: it checks the markers the candidate's own template emits."""


@dataclass(frozen=True)
class Gate1Settings:
    memory_budget_gb: float = setting(POSITIVE, "peak memory in GB allowed while loading and generating")
    target_bits: int = setting(Rule(int, choices=QUANTIZATION_BITS), "bits every later gate measures the candidate at")
    smoke_max_tokens: int = setting(AT_LEAST_ONE, "token budget of the smoke answer")
    smoke_prompt: str = setting(TEXT, "the smoke test's coding request")


@dataclass(frozen=True)
class Gate2Settings:
    max_avg_latency_s: float = setting(POSITIVE, "average seconds per gate2 query allowed")
    reference_latency_s: float = setting(POSITIVE, "Punie's reported Qwen3 average in seconds, for the ratio")
    max_tokens: int = setting(AT_LEAST_ONE, "token budget per timed query")
    bench_queries: int = setting(AT_LEAST_ONE, "validation queries --bench times both ways (all when fewer)")


@dataclass(frozen=True)
class Gate3Settings:
    min_correct_calls: int = setting(COUNT, "well-formed calls needed, at most the gate3 tool queries")


@dataclass(frozen=True)
class TrainingGateSettings:
    """What the two training gates (4 and 5) each set, alike."""

    iters: int = setting(AT_LEAST_ONE, "LoRA iterations")
    min_lora_retention: float = setting(SHARE, "share of the adapter's effect the quantized fuse must keep")
    retention_examples: int = setting(
        AT_LEAST_ONE, "validation conversations the retention is measured on (all when fewer)"
    )
    fusion: str = setting(Rule(str, choices=FUSION_METHODS), "how the adapter is fused and quantized")


@dataclass(frozen=True)
class Gate4Settings(TrainingGateSettings):
    examples: int = setting(
        AT_LEAST_ONE, "training conversations sampled (all when fewer), at least [training] batch_size"
    )
    valid_examples: int = setting(AT_LEAST_ONE, "validation conversations sampled (all when fewer)")
    min_correct: int = setting(COUNT, "correct answers needed, at most the gate4 queries")


@dataclass(frozen=True)
class Gate5Settings(TrainingGateSettings):
    min_val_loss_reduction: float = setting(SHARE, "share of the starting validation loss that must go")
    max_disk_gb: float = setting(POSITIVE, "GB the fused model may take on disk")
    slowdown_flag: float = setting(POSITIVE, "slowdown against --baseline that is flagged, at most slowdown_max")
    slowdown_max: float = setting(POSITIVE, "slowdown against --baseline beyond which the gate fails")
    speed_max_tokens: int = setting(AT_LEAST_ONE, "token budget per query of the speed comparison")
    baseline_alpha: float = setting(SHARE, "one-sided p-value at or below which worse than --baseline fails")
    heldout_min: int = setting(COUNT, "held-out next steps that must pass (0: a measure only)")


@dataclass(frozen=True)
class TrainingSettings:
    batch_size: int = setting(AT_LEAST_ONE, "conversations per training step")
    learning_rate: float = setting(POSITIVE, "LoRA learning rate")
    num_layers: int = setting(AT_LEAST_ONE, "layers that get LoRA, counted from the last")


# The tables of data/gates.toml and the settings each holds.
TABLES: dict[str, type] = {
    "gate0": Gate0Settings, "gate1": Gate1Settings, "gate2": Gate2Settings, "gate3": Gate3Settings,
    "gate4": Gate4Settings, "gate5": Gate5Settings, "training": TrainingSettings,
}  # fmt: skip


@dataclass(frozen=True)
class GateSettings:
    """Every gate's settings and the shared [training] table, as the run uses them."""

    gate0: Gate0Settings
    gate1: Gate1Settings
    gate2: Gate2Settings
    gate3: Gate3Settings
    gate4: Gate4Settings
    gate5: Gate5Settings
    training: TrainingSettings
    origins: Mapping[tuple[str, str], Origin] = field(default_factory=dict, compare=False, repr=False)
    """(table, key) -> where the value came from, with "{value}" for the value."""

    def of(self, table: str) -> Any:
        """The settings of one gate ("gate4") or of "training"."""
        if table not in TABLES:
            raise KeyError(f"no settings table {table!r}; the tables are {', '.join(TABLES)}")
        return getattr(self, table)

    def said(self, table: str, key: str) -> str:
        """Where the value in force came from, with the value: "gates.toml: [gate4] min_correct = 6"."""
        origin = self.origins.get((table, key), f"[{table}] {key} = {{value}}")
        return origin.replace("{value}", shown(getattr(self.of(table), key)))


def build_settings(values: Mapping[str, Mapping[str, tuple[Any, Origin]]]) -> GateSettings:
    """The settings from `values[table][key] = (value, origin)`, every value checked.

    Raises DataFileError (OptionError when only options are to blame) listing every
    refused value, one line each, named by its origin.
    """
    problems: list[tuple[str, bool]] = []  # (line, set by an option)
    built: dict[str, Any] = {}
    origins: dict[tuple[str, str], Origin] = {}
    for table, cls in TABLES.items():
        given = values.get(table, {})
        ok = {}
        for f in fields(cls):
            value, origin = given[f.name]
            origins[(table, f.name)] = origin
            why = f.metadata["rule"].problem(value)
            if why is None:
                ok[f.name] = float(value) if f.metadata["rule"].type is float else value
            else:
                by_option = ": [" not in origin  # a file's origin names its [table]
                problems.append(
                    (f"{origin.replace('{value}', shown(value))}: {why} ({f.metadata['means']})", by_option)
                )
        if len(ok) == len(fields(cls)):
            built[table] = cls(**ok)
    if not problems:
        settings = GateSettings(**built, origins=origins)
        problems = [(line, False) for line in _relation_problems(settings)]
    if problems:
        error = OptionError if all(by_option for _, by_option in problems) else DataFileError
        raise error("\n".join(dict.fromkeys(line for line, _ in problems)))  # --fusion sets two keys: said once
    return settings


def _relation_problems(s: GateSettings) -> list[str]:
    """Settings that are each in range but cannot hold together."""
    problems = []
    if s.gate5.slowdown_flag > s.gate5.slowdown_max:
        problems.append(
            f"{s.said('gate5', 'slowdown_flag')} is above {s.said('gate5', 'slowdown_max')}: "
            "nothing could be flagged before it fails"
        )
    if s.gate4.examples < s.training.batch_size:
        problems.append(
            f"{s.said('gate4', 'examples')} is below the training batch size ({s.said('training', 'batch_size')})"
        )
    return problems


def setting_rows() -> list[tuple[str, str, str, str]]:
    """(table, key, allowed values, meaning) for every setting, in file order (docs/settings.md)."""
    return [
        (table, f.name, f.metadata["rule"].says(), f.metadata["means"])
        for table, cls in TABLES.items()
        for f in fields(cls)
    ]


def markdown_rows() -> list[str]:
    """docs/settings.md's table rows, one per setting."""
    return [f"| `[{table}]` | `{key}` | {allowed} | {means} |" for table, key, allowed, means in setting_rows()]


def shown(value: Any) -> str:
    """A value as TOML spells it: nan, inf, true, "text"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value == math.inf else "-inf" if value == -math.inf else repr(value))
        )
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value) if not isinstance(value, int) else str(value)


def _kind(value: Any) -> str:
    names = {bool: "true/false", str: "a text", list: "a list", dict: "a table", float: "a fractional number"}
    return f"{names.get(type(value), type(value).__name__)} ({shown(value)})"


if __name__ == "__main__":  # the rows of docs/settings.md's table
    print("\n".join(markdown_rows()))
