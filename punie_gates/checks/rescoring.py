"""A report folder's saved answers scored again with the current scorer and query file.

`punie-gates compare` judges runs made at different times: each folder's saved
responses (gate5-responses.jsonl, else gate4's, else an endpoint's
screening-responses.jsonl) are scored again here, so a change to
the scorer or the queries applies to every run alike and no model is loaded. What the
scores mean side by side is decision.compare's business, which never scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from punie_gates.checks.scoring import SavedAnswer, Score, read_answers, score_saved
from punie_gates.inputs.catalog import Catalog
from punie_gates.inputs.queries import QuerySet

# Gate 5's answers, else Gate 4's, else an endpoint candidate's screening (checks.screening).
RESPONSE_FILES = ("gate5-responses.jsonl", "gate4-responses.jsonl", "screening-responses.jsonl")


class RescoreError(ValueError):
    """A report folder's answers cannot be read; the message names the file and the fix."""


@dataclass(frozen=True)
class Rescored:
    """One report folder's saved answers and the current scorer's verdict on each."""

    folder: Path
    """The report folder."""
    responses_path: Path
    """The responses file read (gate5's, else gate4's, else the screening's)."""
    saved: Mapping[str, SavedAnswer]
    """Query id -> the saved answer (the last one when an id repeats)."""
    scores: Mapping[str, Score]
    """Query id -> the current scorer's verdict on that answer."""


def responses_file(folder: Path) -> Path:
    """The responses a report folder holds: Gate 5's, else Gate 4's, else the screening's."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RescoreError(f"{folder}: not a folder (give report folders, as written by --report-dir)")
    for name in RESPONSE_FILES:
        if (folder / name).is_file():
            return folder / name
    raise RescoreError(
        f"{folder}: holds neither {' nor '.join(RESPONSE_FILES)}; give the --report-dir of a run that reached "
        "Gate 4 or Gate 5 (`pytest --run-all-gates` runs them past a hard failure), or screened an endpoint"
    )


def rescore_folder(folder: Path, queries: QuerySet, catalog: Catalog) -> Rescored:
    """Read a report folder's responses and score each with the current scorer."""
    folder = Path(folder)
    path = responses_file(folder)
    records, errors = read_answers(path, queries)
    if errors:
        raise RescoreError("; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))
    saved = {a.id: a for a in records}  # the last one when an id repeats
    scores = {qid: score_saved(queries.by_id(qid), a, catalog) for qid, a in saved.items()}
    return Rescored(folder, path, saved, scores)
