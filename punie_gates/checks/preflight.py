"""Settings no run could satisfy, refused before anything heavy runs.

Every threshold is checked against what it counts: Gate 4's `min_correct`
against the queries of the query file's gate4 set, Gate 3's `min_correct_calls`
against the tool queries of its set, shares and ratios against their ranges, the
training sample against the training data there is (`--gate4-examples`, the
batch size). Inputs a collected gate needs are checked to exist and be readable
(the training data folder's two files, the query file, a local candidate
folder, a --system-prompt file), so a mistyped path ends the run in seconds, not
after hours of quantizing or training. Each problem is one line naming the file
or option and the fix; `check_run` raises them together as one UserError.

Only cheap reads: a candidate named by a hub id is resolved by its gates (it may
need the network), the demo is built by its fixture.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from punie_gates.errors import CandidateError, DataFileError, UserError

TRAINING_FILES = ("train.jsonl", "valid.jsonl")


class PreflightError(UserError, ValueError):
    """One or more settings or inputs that no run could use; one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


def check_run(cfg, *, gates: Collection[str], fixtures: Collection[str], explicit: Collection[str] = ()) -> None:
    """Raise PreflightError listing every problem of this run's settings and inputs.

    `cfg` is the run's inputs.options.GateConfig, `gates` the gates collected,
    `fixtures` every fixture the collected tests need (their closure), `explicit`
    the options the user gave (dest names) rather than took from defaults.
    """
    problems: list[str] = []
    if "candidate" in fixtures or "candidate_at_target_bits" in fixtures:
        problems += _candidate_problems(cfg, need_weights="candidate_at_target_bits" in fixtures)
    problems += _threshold_problems(cfg, gates)
    records = None
    if "training_data" in fixtures:
        records, found = _training_files(cfg.training_data)
        problems += found
    if records is not None:
        problems += _example_problems(cfg, gates, records, explicit)
    if "query_set" in fixtures:
        problems += _query_problems(cfg, gates)
    if cfg.system_prompt_path is not None and "system_prompt" in fixtures and not _readable(cfg.system_prompt_path):
        problems.append(f"--system-prompt {cfg.system_prompt_path}: no such readable file")
    if problems:
        raise PreflightError(problems)


def _threshold_problems(cfg, gates: Collection[str]) -> list[str]:
    where = f"--gates {cfg.gates_path}" if cfg.gates_path else "data/gates.toml"
    problems = []

    def share(gate: str, key: str, low: float, high: float, what: str) -> None:
        if gate in gates and key in cfg.gate(gate).settings:
            value = float(cfg.gate(gate)[key])
            if not low <= value <= high:
                problems.append(f"{where}: [{gate}] {key} = {value:g} cannot be reached: {what}")

    share("gate5", "min_val_loss_reduction", 0.0, 1.0, "a loss falls by at most 100% (use a share from 0 to 1)")
    share("gate4", "min_lora_retention", 0.0, 1.0, "a fuse keeps at most all of the adapter's effect (0 to 1)")
    share("gate5", "min_lora_retention", 0.0, 1.0, "a fuse keeps at most all of the adapter's effect (0 to 1)")
    if "gate1" in gates and cfg.memory_budget_gb <= 0:
        problems.append(f"--memory-budget-gb {cfg.memory_budget_gb:g}: no model fits a budget of 0 GB or less")
    if "gate2" in gates and float(cfg.gate("gate2")["max_avg_latency_s"]) <= 0:
        problems.append(f"{where}: [gate2] max_avg_latency_s must be above 0 s")
    if "gate5" in gates:
        flag, limit = float(cfg.gate("gate5")["slowdown_flag"]), float(cfg.gate("gate5")["slowdown_max"])
        if flag > limit:
            problems.append(f"{where}: [gate5] slowdown_flag = {flag:g} is above slowdown_max = {limit:g}: "
                            "nothing could be flagged before it fails")  # fmt: skip
    for gate, flag in (("gate4", "--gate4-iters"), ("gate5", "--gate5-iters")):
        if gate in gates and cfg.lora_iters(gate) < 1:
            problems.append(f"{flag} {cfg.lora_iters(gate)}: training needs at least 1 iteration")
    batch = int(cfg.training.get("batch_size", 1))
    if "gate4" in gates:
        if cfg.gate4_examples < batch:
            problems.append(f"--gate4-examples {cfg.gate4_examples} is below the training batch size {batch} "
                            f"({where} [training] batch_size)")  # fmt: skip
        if cfg.gate4_valid_examples < 1:
            problems.append(f"{where}: [gate4] valid_examples = {cfg.gate4_valid_examples}: the loss curve "
                            "needs at least 1 validation conversation")  # fmt: skip
    return problems


def _training_files(folder: Path | None) -> tuple[dict[str, int] | None, list[str]]:
    """Records (non-blank lines) per training file, or the problems that stop reading them."""
    fix = "point --training-data at a folder holding train.jsonl and valid.jsonl in Qwen3 form (Punie's data/phase27_merged)"
    if folder is None or not Path(folder).is_dir():
        return None, [f"training data not found: {folder} is not a folder; {fix}"]
    counts, problems = {}, []
    for name in TRAINING_FILES:
        path = Path(folder) / name
        if not path.is_file():
            problems.append(f"training data: {folder} has no {name}; {fix}")
            continue
        try:
            with path.open("rb") as fh:
                counts[name] = sum(1 for line in fh if line.strip())
        except OSError as exc:
            problems.append(f"training data: cannot read {path}: {exc.strerror or exc}")
            continue
        if counts[name] == 0:
            problems.append(f"training data: {path} holds no conversations (the file is empty)")
    return (counts if not problems else None), problems


def _example_problems(cfg, gates: Collection[str], records: dict[str, int], explicit: Collection[str]) -> list[str]:
    problems = []
    train = records["train.jsonl"]
    batch = int(cfg.training.get("batch_size", 1))
    if ("gate4" in gates or "gate5" in gates) and train < batch:
        problems.append(f"training data: {cfg.training_data / 'train.jsonl'} has {train} conversations, fewer "
                        f"than the training batch size {batch}")  # fmt: skip
    if "gate4" in gates and "gate4_examples" in explicit and cfg.gate4_examples > train:
        problems.append(f"--gate4-examples {cfg.gate4_examples} is more than the {train} conversations in "
                        f"{cfg.training_data / 'train.jsonl'}; ask for at most {train}")  # fmt: skip
    return problems


def _query_problems(cfg, gates: Collection[str]) -> list[str]:
    from punie_gates.inputs.catalog import load_catalog
    from punie_gates.inputs.queries import load_queries

    try:
        queries = load_queries(cfg.queries_path, catalog=load_catalog(cfg.tools_path))
    except DataFileError as exc:
        return [line for line in str(exc).splitlines() if line.strip()]
    problems = []
    where = f"--gates {cfg.gates_path}"
    for gate in ("gate2", "gate3", "gate4"):
        if gate in gates and gate not in queries.gate_sets:
            problems.append(f"{cfg.queries_path}: [gates] has no {gate} set: {gate} has no queries to ask")
    if "gate4" in gates and "gate4" in queries.gate_sets:
        have, need = len(queries.gate_sets["gate4"]), int(cfg.gate("gate4")["min_correct"])
        if need > have:
            problems.append(f"{where}: [gate4] min_correct = {need} but {cfg.queries_path} [gates] gate4 has "
                            f"{have} queries: no model could pass; lower it to at most {have}")  # fmt: skip
    if "gate3" in gates and "gate3" in queries.gate_sets:
        tools = sum(1 for q in queries.for_gate("gate3") if q.expect == "tool")
        need = int(cfg.gate("gate3")["min_correct_calls"])
        if need > tools:
            problems.append(f"{where}: [gate3] min_correct_calls = {need} but {cfg.queries_path} [gates] gate3 "
                            f"has {tools} tool queries: no model could pass; lower it to at most {tools}")  # fmt: skip
    return problems


def _candidate_problems(cfg, *, need_weights: bool) -> list[str]:
    from punie_gates.model.candidate import BUILT_IN, is_hub_id, resolve_candidate

    spec = cfg.candidate
    if spec in BUILT_IN or (is_hub_id(spec) and not Path(spec).expanduser().exists()):
        return []  # built by its fixture / may need the network: resolved by the gates
    try:
        resolve_candidate(spec, cache_dir=cfg.cache_dir, offline=True, need_weights=need_weights)
    except CandidateError as exc:
        return [str(exc)]
    return []


def _readable(path: Path) -> bool:
    try:
        with Path(path).open("rb"):
            return True
    except OSError:
        return False
