"""The report document typed once for its readers (the markdown, the terminal, the page, compare).

punie_gates.results reads gate-report.json into its classes. A reader must still show a run's
report, and `compare` must still label runs whose report was hand-edited or written by another
version, so the read here is the lenient one: a value of the wrong type is left out (None:
shown as not recorded) and said in `problems`, instead of ending the read. Keys the classes do
not know are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from punie_gates.results.document import RunResults, read_results


def typed_report(doc: Any, problems: list[str] | None = None) -> RunResults:
    """gate-report.json's document typed; what does not fit is left out and said in `problems`."""
    problems = [] if problems is None else problems
    if not isinstance(doc, Mapping):
        problems.append(f"the report: expected an object, found {type(doc).__name__}")
        return RunResults()
    return read_results(doc, problems=problems)
