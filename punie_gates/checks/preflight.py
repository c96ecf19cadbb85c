"""Settings no run could satisfy with the data at hand, refused before anything heavy runs.

Each value's type and range was checked when the settings were read
(inputs/settings.py); here a count is checked against what it counts, known only
once the data is read: Gate 4's `min_correct` against the queries of the query
file's gate4 set, Gate 3's `min_correct_calls` against the tool queries of its
set, the training sample against the training data there is (`--gate4-examples`,
the batch size). Inputs a collected gate needs are checked to exist and be readable
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
from punie_gates.inputs import readers
from punie_gates.inputs.catalog import load_catalog
from punie_gates.inputs.queries import load_queries
from punie_gates.model.candidate import BUILT_IN, is_endpoint, is_hub_id, resolve_candidate

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
    records = None
    if "training_data" in fixtures:
        records, found = _training_files(cfg.training_data)
        problems += found
    if records is not None:
        problems += _example_problems(cfg, gates, records, explicit)
    if "query_set" in fixtures:
        problems += _query_problems(cfg, gates)
    if cfg.system_prompt_path is not None and "system_prompt" in fixtures:
        try:  # read whole now (a FIFO, folder or non-UTF-8 file is refused here, not hours later)
            readers.read_text(cfg.system_prompt_path, "system prompt file (--system-prompt)")
        except UserError as exc:
            problems.append(str(exc))
    if problems:
        raise PreflightError(problems)


def _training_files(folder: Path | None) -> tuple[dict[str, int] | None, list[str]]:
    """Records (non-blank lines) per training file, or the problems that stop reading them."""
    fix = "point --training-data at a folder holding train.jsonl and valid.jsonl in Qwen3 form (Punie's data/phase27_merged)"
    if folder is None or not Path(folder).is_dir():
        return None, [f"training data not found: {folder} is not a folder; {fix}"]
    counts, problems = {}, []
    for name in TRAINING_FILES:
        path = Path(folder) / name
        if not path.exists():
            problems.append(f"training data: {folder} has no {name}; {fix}")
            continue
        try:  # a FIFO or folder in its place is refused, never waited on
            lines = readers.byte_lines(path, "training data file")
            counts[name] = sum(1 for line in lines if isinstance(line, readers.Overlong) or line.strip())
        except UserError as exc:
            problems.append(f"training data: {exc}")
            continue
        if counts[name] == 0:
            problems.append(f"training data: {path} holds no conversations (the file is empty)")
    return (counts if not problems else None), problems


def _example_problems(cfg, gates: Collection[str], records: dict[str, int], explicit: Collection[str]) -> list[str]:
    problems = []
    train = records["train.jsonl"]
    batch = cfg.settings.training.batch_size
    if ("gate4" in gates or "gate5" in gates) and train < batch:
        problems.append(f"training data: {cfg.training_data / 'train.jsonl'} has {train} conversations, fewer "
                        f"than the training batch size ({cfg.settings.said('training', 'batch_size')})")  # fmt: skip
    examples = cfg.settings.gate4.examples
    if "gate4" in gates and "gate4_examples" in explicit and examples > train:
        problems.append(f"{cfg.settings.said('gate4', 'examples')} is more than the {train} conversations in "
                        f"{cfg.training_data / 'train.jsonl'}; ask for at most {train}")  # fmt: skip
    return problems


def _query_problems(cfg, gates: Collection[str]) -> list[str]:
    try:
        queries = load_queries(cfg.queries_path, catalog=load_catalog(cfg.tools_path))
    except DataFileError as exc:
        return [line for line in str(exc).splitlines() if line.strip()]
    problems = []
    for gate in ("gate2", "gate3", "gate4"):
        if gate in gates and gate not in queries.gate_sets:
            problems.append(f"{cfg.queries_path}: [gates] has no {gate} set: {gate} has no queries to ask")
    if "gate4" in gates and "gate4" in queries.gate_sets:
        have, need = len(queries.gate_sets["gate4"]), cfg.settings.gate4.min_correct
        if need > have:
            problems.append(f"{cfg.settings.said('gate4', 'min_correct')} but {cfg.queries_path} [gates] gate4 has "
                            f"{have} queries: no model could pass; lower it to at most {have}")  # fmt: skip
    if "gate3" in gates and "gate3" in queries.gate_sets:
        tools = sum(1 for q in queries.for_gate("gate3") if q.expect == "tool")
        need = cfg.settings.gate3.min_correct_calls
        if need > tools:
            problems.append(f"{cfg.settings.said('gate3', 'min_correct_calls')} but {cfg.queries_path} [gates] gate3 "
                            f"has {tools} tool queries: no model could pass; lower it to at most {tools}")  # fmt: skip
    return problems


def _candidate_problems(cfg, *, need_weights: bool) -> list[str]:
    spec = cfg.candidate
    if spec in BUILT_IN or is_endpoint(spec) or (is_hub_id(spec) and not Path(spec).expanduser().exists()):
        return []  # built by its fixture / asked over HTTP / may need the network: resolved by the gates
    try:
        resolve_candidate(spec, cache_dir=cfg.cache_dir, offline=True, need_weights=need_weights)
    except CandidateError as exc:
        return [str(exc)]
    return []
