"""gate-report.json: the run's outcome as one document (the Report and its to_json)."""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from punie_gates import __version__
from punie_gates.decision import criteria
from punie_gates.decision.verdict import GateResult, Verdict
from punie_gates.model.demo_agent import built_from
from punie_gates.results.codec import to_json
from punie_gates.results.document import read_figures
from punie_gates.results.shared import GateFigures

DEMO_NOTE = (
    "built-in offline demo candidate: a tiny model with RANDOM weights and Devstral's "
    "tokenizer layout; its verdict exercises the suite and says nothing about any real model"
)
DEMO_AGENT_NOTE = (
    "built-in offline demo-agent candidate: the demo's tiny architecture and tokenizer with weights SET FROM "
    "Punie's training data (never from the validation queries); it calls tools and answers, mostly wrongly; its "
    "verdict exercises the suite and says nothing about any real model"
)


def demo_note(candidate: str | None) -> str | None:
    """What a report says about a built-in demo candidate (None for any other)."""
    if candidate == "demo":
        return DEMO_NOTE
    if candidate == "demo-agent":
        try:
            return f"{DEMO_AGENT_NOTE} ({built_from()})"
        except (OSError, ValueError, KeyError):
            return DEMO_AGENT_NOTE
    return None


ANSWERING_NOTES = {
    "server": "answers came through mlx_lm.server: OpenAI chat completions with the catalog's tools, temperature 0, "
    "as Punie's agent asks; scored on what the API returned (message.content and message.tool_calls)",
    "inprocess": "answers were generated in this process (--answer-via inprocess, the reference path): the reply "
    "text decoded with its control tokens, calls parsed from it with mlx-lm's parsers",
    "endpoint": "the candidate's answers came from the OpenAI-compatible server it was named by (--candidate URL): "
    "chat completions with the catalog's tools, temperature 0, scored on what the API returned; what it "
    "says about itself is in gates.gateN.figures.answering.endpoint",
}


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(to_json(value))  # a typed result as the results codec writes it
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return round(value, 6)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


@dataclass(frozen=True)
class Report:
    """One run's outcome: what gate-report.json, gate-report.md and the terminal show."""

    verdict: Verdict
    """The go/no-go and why."""
    results: Mapping[str, GateResult]
    """Every gate's result, in gate order."""
    candidate: str | None
    """The candidate as the user named it (None when the options could not be read)."""
    baseline: str | None = None
    """The production model measured beside it, if any."""
    run_all_gates: bool = False
    """Whether later gates ran past a hard failure (diagnosis)."""
    started: float = field(default_factory=time.time)
    """When the run started (seconds since the epoch)."""
    finished: float = field(default_factory=time.time)
    """When the verdict was reached."""
    collection_errors: tuple[str, ...] = ()
    """Gate modules or options that could not be read."""
    answer_via: str | None = None
    """How the gates asked their queries: "server" (mlx_lm.server) or "inprocess"."""
    interrupted: Mapping[str, Any] | None = None
    """How the run was cut short (by, gate, test), or None for a run that ended by itself."""
    run: Mapping[str, Any] | None = None
    """The run's id and the report-folder files it wrote (decision.report_folder)."""
    work_folder: Mapping[str, Any] | None = None
    """The work folder at the end of the run: {"path", "bytes"} (None when the options could not be read)."""

    @property
    def is_demo(self) -> bool:
        return self.candidate in ("demo", "demo-agent")

    def to_json(self) -> dict[str, Any]:
        """The gate-report.json document."""
        verdict = self.verdict
        figures = {gate: _jsonable(dict(result.figures)) for gate, result in self.results.items()}
        typed = {gate: read_figures(gate, f, problems=[]) for gate, f in figures.items()}  # as the readers see them
        doc: dict[str, Any] = {
            "suite": f"punie-gates {__version__}",
            "verdict": verdict.verdict,
            "stopped_at": verdict.stopped_at,
            "complete": verdict.complete,
            "flags": list(verdict.flags),
            "reasons": list(verdict.reasons),
            "candidate": {
                "spec": self.candidate,
                "is_demo": self.is_demo,
                "note": demo_note(self.candidate),
            },
            "baseline": self.baseline,
            "answering": {
                "via": self.answer_via,
                "note": ANSWERING_NOTES.get(self.answer_via or ""),
                "serving": serving_plans(typed),
            },
            "run_all_gates": self.run_all_gates,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "seconds": round(self.finished - self.started, 3),
            "machine": {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()},
            "collection_errors": list(self.collection_errors),
            "interrupted": _jsonable(dict(self.interrupted)) if self.interrupted else None,
            "run": _jsonable(dict(self.run)) if self.run else None,
            "work_folder": _jsonable(dict(self.work_folder)) if self.work_folder else None,
            "gates": {},
        }
        for gate, result in self.results.items():
            doc["gates"][gate] = {
                "name": result.name,
                "kind": result.kind,
                "status": result.status,
                "seconds": result.seconds,
                "tests": dict(result.tests),
                "reasons": list(result.reasons),
                "flags": list(result.flags),
                "figures": figures[gate],
            }
        doc["criteria"] = criteria.summary(typed)
        return doc


def serving_plans(figures: Mapping[str, GateFigures]) -> list[dict[str, Any]]:
    """How each model was served (answering.plan.ServingPlan.to_json), once per model folder, from the
    gates' answering figures: the environment, backend, parser, the exact command, the change Punie needs."""
    plans: dict[str, dict[str, Any]] = {}
    for gate_figures in figures.values():
        answering = gate_figures.answering
        for server in (answering.server, answering.baseline_server) if answering else ():
            if server is not None and server.plan is not None:
                # every field, a null one too, as answering.plan writes them
                plans.setdefault(
                    str(server.plan.model_folder), {"model": server.model, **dataclasses.asdict(server.plan)}
                )
    return list(plans.values())
