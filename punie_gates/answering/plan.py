"""The serving plan: how production's environment would serve a model folder, decided before the first answer.

The serving probe (serving_probe.py, run by the serving interpreter) says which
tokenizer backend, tool parser and detokenizer mlx-lm gives the folder there, where its
chat template comes from, and whether the parser reads back the call the folder's own
template writes. When it does, the folder is served as is. When it does not and the
folder carries `tekken.json` beside `tokenizer.json` (what makes transformers pick
`MistralCommonBackend` where mistral-common is installed), the probe looks at a serving
folder of links without `tekken.json` (nothing copied). If that one returns calls, the
plan names the change Punie must make, and the suite serves through that folder, unless
the interpreter is production's own (--serve-python): then the model is judged through
production's server as it is, every call it drops a `server` miss. When no
setup returns calls, the run cannot judge the model through its server: `ServingPlanError`
(a UserError: the run ends ERROR, exit 6, naming the serving cause), never a model verdict.
Whether the planned setup renders the reference ids is Gate 0's criterion
(checks/serving_parity.py), on this same plan.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from punie_gates.answering.environment import ServingEnvironment
from punie_gates.errors import UserError

TEKKEN = "tekken.json"


class ServingPlanError(UserError, RuntimeError):
    """No setup of mlx_lm.server in the serving environment returns this model's calls as tool_calls."""


@dataclass(frozen=True)
class ServingPlan:
    """How a model folder is served, and why."""

    model_folder: Path
    """The folder the gates were asked to judge."""
    served_folder: Path
    """What mlx_lm.server is given: the folder itself or a serving folder of links beside it."""
    environment: ServingEnvironment
    """The interpreter that serves (and whether mistral-common is hidden from it)."""
    as_is: Mapping[str, Any]
    """The serving probe's findings on the folder as it is."""
    served: Mapping[str, Any]
    """The probe's findings on what is served (the same as `as_is` when nothing changed)."""
    change: str | None = None
    """The change Punie must make to serve it this way, or None."""
    versions: Mapping[str, str] = field(default_factory=dict)
    """The serving environment's library versions."""
    calls_returned: bool = True
    """False when the server is production's as is and cannot return calls as tool_calls (each
    call it drops is a `server` miss; `change` says what fixes it)."""

    def command(self, extra: Sequence[str] = ()) -> str:
        """The mlx_lm.server command production would run (port left to the user)."""
        python = self.environment.python
        return shlex.join([python, "-m", "mlx_lm", "server", "--model", str(self.served_folder), *extra])

    def to_json(self) -> dict[str, Any]:
        s = self.served
        return {
            "model_folder": str(self.model_folder),
            "served_folder": str(self.served_folder),
            "environment": self.environment.describe(),
            "versions": dict(self.versions),
            "tokenizer_class": s.get("tokenizer_class"),
            "tool_parser": s.get("tool_parser"),
            "parses_template_calls": bool((s.get("call_check") or {}).get("parses")),
            "detokenizer": s.get("detokenizer"),
            "chat_template_source": s.get("chat_template_source"),
            "regex_warning": s.get("regex_warning"),
            "as_is": _summary(self.as_is) if self.as_is is not self.served else None,
            "change": self.change,
            "returns_tool_calls": self.calls_returned,
            "command": self.command(),
        }

    def line(self) -> str:
        """One line for the terminal: how the model was served."""
        s = self.served
        how = (
            f"{s.get('tokenizer_class')}, parser {s.get('tool_parser') or 'none'}, "
            f"detokenizer {s.get('detokenizer')}, template {s.get('chat_template_source')}"
        )
        change = f"; CHANGE for Punie: {self.change}" if self.change else ""
        return f"{self.model_folder.name}: {how}; `{self.command()}`{change}"


def _summary(found: Mapping[str, Any]) -> dict[str, Any]:
    return {k: found.get(k) for k in ("tokenizer_class", "tool_parser", "detokenizer", "chat_template_source")} | {
        "parses_template_calls": bool((found.get("call_check") or {}).get("parses"))
    }


def call_check(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A conversation whose assistant turn calls the first tool with arguments its schema accepts:
    the probe renders it with the folder's template and asks the parser to read it back."""
    tools = [dict(t) for t in tools] or [_EXECUTE_CODE]
    function = tools[0]["function"]
    params = function.get("parameters") or {}
    samples = {"string": "print(1)", "integer": 1, "number": 1, "boolean": True}
    arguments = {
        name: samples.get((params.get("properties") or {}).get(name, {}).get("type"), "x")
        for name in params.get("required") or []
    }
    call = {"id": "abcdefghi", "type": "function", "function": {"name": function["name"], "arguments": arguments}}
    messages = [{"role": "user", "content": "Check types in src/"}, {"role": "assistant", "tool_calls": [call]}]
    return {"messages": messages, "tools": tools, "name": function["name"], "arguments": arguments}


_EXECUTE_CODE = {
    "type": "function",
    "function": {
        "name": "execute_code",
        "description": "Run Python code.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}


def returns_calls(found: Mapping[str, Any]) -> bool:
    return bool(found.get("tool_parser")) and bool((found.get("call_check") or {}).get("parses"))


def serving_folder(folder: Path, work_dir: Path) -> Path:
    """A folder of links to every file of `folder` but tekken.json (weights linked, never copied)."""
    folder = Path(folder).resolve()
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    view = Path(work_dir) / "serving" / key
    view.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        link = view / path.name
        if path.name == TEKKEN or link.is_symlink() or link.exists():
            continue
        link.symlink_to(path)
    stale = view / TEKKEN
    if stale.is_symlink():
        stale.unlink()
    return view


def plan_serving(
    folder: Path,
    environment: ServingEnvironment,
    work_dir: Path,
    tools: Sequence[Mapping[str, Any]] = (),
    round_trip: Sequence[str] = (),
) -> ServingPlan:
    """The plan for `folder` in `environment`: as is, through a serving folder without tekken.json,
    or ServingPlanError naming the serving cause. Each probe also streams the `round_trip` texts
    (in `as_is` and `served`, for Gate 0's round trip: no extra tokenizer load)."""
    folder = Path(folder).resolve()
    check = call_check(tools)
    extra = {"round_trip": list(round_trip)} if round_trip else {}
    as_is = environment.probe({"folder": str(folder), "call_check": check, **extra})
    versions = as_is.get("versions") or {}
    if returns_calls(as_is):
        return ServingPlan(folder, folder, environment, as_is, as_is, None, versions)
    why = _why_not(as_is, environment)
    mistral_backend = as_is.get("tokenizer_class") == "MistralCommonBackend"  # what tekken.json selects
    if mistral_backend and (folder / TEKKEN).is_file() and (folder / "tokenizer.json").is_file():
        view = serving_folder(folder, work_dir)
        served = environment.probe({"folder": str(view), "call_check": check, **extra})
        if returns_calls(served):
            fix = (
                f"serve a folder without tekken.json: {why}; without it the same environment loads "
                f"{served.get('tokenizer_class')} and mlx-lm's {served.get('tool_parser')} parser reads the calls"
            )
            if environment.production:
                # Production's own interpreter: judged exactly as Punie's server would answer (misses
                # it causes are attributed to the server), with the change that would fix it.
                return ServingPlan(folder, folder, environment, as_is, as_is, fix, versions, calls_returned=False)
            return ServingPlan(
                folder,
                view,
                environment,
                as_is,
                served,
                f"{fix} (the suite served {view}: links to {folder} without tekken.json)",
                versions,
            )
        why += f"; without tekken.json: {_why_not(served, environment)}"
    raise ServingPlanError(
        f"mlx_lm.server under {environment.describe()} cannot return the calls of {folder} as tool_calls: {why}. "
        "No faithful serving setup was found, so the run cannot judge the model through its server: this is a "
        "serving problem, not a model verdict (fix the serving environment, or run with --answer-via inprocess)"
    )


def _why_not(found: Mapping[str, Any], environment: ServingEnvironment) -> str:
    backend = found.get("tokenizer_class")
    versions = found.get("versions") or {}
    if not found.get("tool_parser"):
        shipped = ", ".join(found.get("available_parsers") or ()) or "none"
        why = (
            "it has no chat template to pick one from"
            if backend == "MistralCommonBackend"
            else f"none of its parsers ({shipped}) matches the chat template ({found.get('chat_template_source')})"
        )
        return (
            f"transformers {versions.get('transformers')} loads {backend} there, for which mlx-lm "
            f"{versions.get('mlx-lm')} picks no tool parser: {why}; calls would come back as plain message.content"
        )
    error = (found.get("call_check") or {}).get("error")
    return (
        f"mlx-lm's {found.get('tool_parser')} parser does not read back the call the chat template "
        f"({found.get('chat_template_source')}) writes" + (f" ({error})" if error else "")
    )
