"""A second, larger measure: the right next step at every assistant turn of the held-out split.

The training data's valid.jsonl (Phase 27: 111 conversations, held out from training)
knows, at each assistant turn, the right next step: which typed tools the reference
calls, or that it answers in text. Conversations also in train.jsonl are left out
(13 of Phase 27's 111: they are not held out). For each remaining assistant turn the
model is given the conversation up to that turn, converted to Mistral form by the
project's converter (punie_gates.formats.to_mistral), through the gate's own answering
path (an AskMany: mlx_lm.server or in-process, as the multi-turn pass asks), and its
reply is scored by the first turn's rules (punie_gates.checks.scoring):
- a tool turn passes when the reply calls exactly the reference's typed tools (set
  equality) in code that parses, reading only fields those tools' results have;
- a direct turn passes with a reply that calls no tool.
The reference code is read with `ast` (punie_gates.formats.code_analysis), never run.
A reference call whose code calls no typed tool cannot be compared: that turn is
left out and counted. Categories are told from the reference's tools (TOOL_FAMILIES).

Phase 27 gives 148 turns in 98 conversations (88 with a call): about four times the
40 queries. It is a measure beside them, not a criterion, unless `[gate5] heldout_min`
(data/gates.toml) is above 0; `--heldout-limit N` scores the first N turns only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie_gates.answering.conversation import AskMany, Reply
from punie_gates.checks.judgment import criteria_json
from punie_gates.checks.scoring import Score, score_reply
from punie_gates.formats.code_analysis import analyse_code
from punie_gates.formats.records import ConversionResult, read_jsonl_bytes
from punie_gates.inputs.catalog import Catalog
from punie_gates.inputs.queries import Query
from punie_gates.stats import detectable_difference, paired, wilson_interval

DIRECT = "direct_answers"
AFTER_RESULT = "answer_after_result"  # a text turn right after a tool result: the answer from it
CROSS_TOOL = "cross_tool"
# The query file's single-tool categories, told from the one typed tool a reference turn calls
# (a turn calling two or more is cross_tool; one calling none of these is "other_tools").
TOOL_FAMILIES = {
    "goto_definition": "existing_lsp", "find_references": "existing_lsp",
    "hover": "new_lsp", "document_symbols": "new_lsp", "workspace_symbols": "new_lsp",
    "git_status": "git_tools", "git_diff": "git_tools", "git_log": "git_tools",
    "typecheck": "existing_tools", "ruff_check": "existing_tools", "pytest_run": "existing_tools",
}  # fmt: skip
OTHER = "other_tools"


@dataclass(frozen=True)
class HeldoutTurn:
    """One assistant turn of a held-out conversation: the prompt before it and what the reference did."""

    id: str
    """`L<line>.<n>`: valid.jsonl's line and the turn's place among that conversation's assistant turns."""
    category: str
    """Told from the reference: direct_answers, answer_after_result, cross_tool, or the one tool's
    family (TOOL_FAMILIES)."""
    prompt: tuple[Mapping[str, Any], ...]
    """The converted conversation up to the turn (system, user, assistant and tool messages)."""
    expect: str
    """"tool" (the reference calls typed tools) or "direct" (it answers in text)."""
    tools: tuple[str, ...]
    """The typed tools the reference's code calls, sorted (empty for a direct turn)."""

    @property
    def query(self) -> Query:
        """The turn as a query for the first turn's scorer."""
        return Query(self.id, self.category, "", self.expect, tools_all=self.tools)


@dataclass(frozen=True)
class HeldoutSet:
    """The held-out turns of a training-data folder, and what was left out."""

    path: Path
    """The valid.jsonl read."""
    turns: tuple[HeldoutTurn, ...]
    """Every scorable turn, in file order (cut to --heldout-limit when one is given)."""
    available: int
    """Scorable turns before any limit."""
    conversations: int
    """Held-out conversations the turns come from (before any limit)."""
    overlap: int
    """valid.jsonl conversations left out because train.jsonl holds them too."""
    rejected: int
    """valid.jsonl lines the converter rejected."""
    not_comparable: int
    """Reference tool turns left out: their code calls no typed tool (or does not parse)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": str(self.path),
            "available": self.available,
            "conversations": self.conversations,
            "left_out": {
                "in_train": self.overlap,
                "rejected_lines": self.rejected,
                "reference_calls_no_typed_tool": self.not_comparable,
            },
        }


def _same(record: Mapping[str, Any]) -> str:
    return json.dumps(record.get("messages"), sort_keys=True, ensure_ascii=False)


def _raw_keys(path: Path) -> dict[int, str]:
    """Line number -> the record's messages, comparable across files (unreadable lines left out)."""
    out = {}
    for number, raw in enumerate(read_jsonl_bytes(path), 1):
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            out[number] = _same(record)
    return out


def reference_tools(message: Mapping[str, Any], catalog: Catalog) -> tuple[str, ...]:
    """The typed tools an assistant message's calls call: inside a code tool's code (read, never run),
    or a typed tool called by name. Sorted, no repeats."""
    found: set[str] = set()
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        name, arguments = function.get("name"), function.get("arguments") or {}
        native = catalog.native_tool(name)
        if native is not None and native.get("code_param"):
            found.update(analyse_code(str(arguments.get(native["code_param"], "")), catalog).calls)
        elif name in catalog.typed:
            found.add(name)
    return tuple(sorted(found))


def category_of(tools: Sequence[str], after_result: bool = False) -> str:
    if not tools:
        return AFTER_RESULT if after_result else DIRECT
    if len(tools) > 1:
        return CROSS_TOOL
    return TOOL_FAMILIES.get(tools[0], OTHER)


def heldout_set(folder: Path, valid: ConversionResult, catalog: Catalog, limit: int | None = None) -> HeldoutSet:
    """The scorable assistant turns of `folder`/valid.jsonl (converted as `valid`), leaving out
    conversations train.jsonl holds too; the first `limit` of them when a limit is given."""
    folder = Path(folder)
    in_train = set(_raw_keys(folder / "train.jsonl").values())
    held = _raw_keys(folder / "valid.jsonl")
    overlap = {n for n, key in held.items() if key in in_train}
    turns, used, not_comparable = [], 0, 0
    for line, record in zip(valid.record_lines, valid.records):
        if line in overlap:
            continue
        used += 1
        messages = list(record["messages"])
        nth = 0
        for i, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            nth += 1
            tools = reference_tools(message, catalog)
            if message.get("tool_calls") and not tools:
                not_comparable += 1
                continue
            after_result = i > 0 and messages[i - 1].get("role") == "tool"
            turns.append(
                HeldoutTurn(
                    f"L{line}.{nth}",
                    category_of(tools, after_result),
                    tuple(messages[:i]),
                    "tool" if tools else "direct",
                    tools,
                )
            )
    cut = turns if limit is None else turns[:limit]
    return HeldoutSet(
        folder / "valid.jsonl", tuple(cut), len(turns), used, len(overlap), len(valid.rejects), not_comparable
    )


def score_turn(turn: HeldoutTurn, reply: Reply | Exception, catalog: Catalog) -> Score:
    """The first turn's scorer on the reply, plus set equality: the reference's tools, no more."""
    if isinstance(reply, Exception):
        return Score(turn.id, False, (), (), f"FAIL: no reply: the answering path failed ({reply})", ())
    score = score_reply(turn.query, reply, catalog)
    extra = sorted(set(score.tools) - set(turn.tools))
    if score.passed and extra:
        reason = score.reason.replace("PASS", "FAIL", 1) + f"; calls {', '.join(extra)} besides the reference's tools"
        return Score(turn.id, False, score.tools, score.fields, reason, score.calls)
    return score


@dataclass(frozen=True)
class HeldoutRun:
    """One model's next steps on the held-out turns."""

    scores: tuple[Score, ...]
    """One per turn, in the set's order."""
    texts: tuple[str, ...]
    """Each reply's text (empty where the answering path failed), in the same order."""
    seconds: float
    """Wall time of asking and scoring."""


def run_heldout(
    hset: HeldoutSet, ask_many: AskMany, catalog: Catalog, *, batch: int = 8, progress=None, step: str = "held-out"
) -> HeldoutRun:
    """Ask for every turn's next reply through `ask_many`, `batch` prompts at a time, and score each."""
    start = time.perf_counter()
    scores: list[Score] = []
    texts: list[str] = []
    turns = list(hset.turns)
    for at in range(0, len(turns), max(1, batch)):
        chunk = turns[at : at + max(1, batch)]
        replies = list(ask_many([[dict(m) for m in t.prompt] for t in chunk]))
        if len(replies) != len(chunk):
            raise RuntimeError(f"the answering path gave {len(replies)} replies to {len(chunk)} prompts")
        scores += [score_turn(t, r, catalog) for t, r in zip(chunk, replies)]
        texts += ["" if isinstance(r, Exception) else r.text for r in replies]
        if progress is not None:
            progress(step, len(scores), len(turns))
    return HeldoutRun(tuple(scores), tuple(texts), time.perf_counter() - start)


def heldout_figures(hset: HeldoutSet, run: HeldoutRun, minimum: int = 0) -> dict[str, Any]:
    """`gates.gateN.figures.heldout`: total, passed, interval, per category, cost, what was left
    out, and with `minimum` > 0 its criterion (judged only on every available turn)."""
    passed = sum(s.passed for s in run.scores)
    total = len(run.scores)
    categories: dict[str, list[bool]] = {}
    for turn, score in zip(hset.turns, run.scores):
        categories.setdefault(turn.category, []).append(score.passed)
    out: dict[str, Any] = {
        "total": total,
        "passed": passed,
        "interval": wilson_interval(passed, total).to_json(),
        "tool_turns": sum(t.expect == "tool" for t in hset.turns),
        # a model that never calls passes every text turn: the tool turns carry the signal
        "tool_turns_passed": sum(s.passed for t, s in zip(hset.turns, run.scores) if t.expect == "tool"),
        "categories": {
            name: {"passed": sum(v), "total": len(v), "interval": wilson_interval(sum(v), len(v)).to_json()}
            for name, v in sorted(categories.items())
        },
        "seconds": round(run.seconds, 2),
        "seconds_per_turn": round(run.seconds / total, 3) if total else None,
        "limited": total < hset.available,
        **hset.to_json(),
    }
    if minimum > 0:
        out["min"] = minimum
        out["judged"] = total == hset.available
        criterion = [("held-out overall", passed, total, minimum)]
        out["criteria"] = criteria_json(criterion, "turns") if out["judged"] else []
    return out


def heldout_problem(figures: Mapping[str, Any]) -> str | None:
    """Why the held-out criterion is missed (`[gate5] heldout_min`), or None (met, or not a criterion)."""
    minimum = figures.get("min")
    if not minimum:
        return None
    if not figures.get("judged"):
        return (
            f"held-out next steps: --heldout-limit scored {figures['total']} of {figures['available']} turns, "
            f"so [gate5] heldout_min = {minimum} cannot be judged"
        )
    if figures["passed"] < minimum:
        return f"held-out next steps: {figures['passed']}/{figures['total']} turns passed, expected >= {minimum}"
    return None


def paired_heldout(
    hset: HeldoutSet, candidate: HeldoutRun, baseline: HeldoutRun, alpha: float | None = None
) -> dict[str, Any]:
    """Candidate and baseline on the same turns: the baseline's interval, exact McNemar overall and
    per category, and with `alpha` the smallest difference the test could see on this many turns."""
    mine, theirs = [s.passed for s in candidate.scores], [s.passed for s in baseline.scores]
    pair = paired(mine, theirs)
    out: dict[str, Any] = {
        "baseline_passed": pair.baseline.passed,
        "baseline_interval": pair.baseline.to_json(),
        "mcnemar": pair.mcnemar.to_json(),
        "baseline_seconds": round(baseline.seconds, 2),
        "categories": {},
    }
    by: dict[str, tuple[list[bool], list[bool]]] = {}
    for turn, a, b in zip(hset.turns, mine, theirs):
        side = by.setdefault(turn.category, ([], []))
        side[0].append(a)
        side[1].append(b)
    for name, (a, b) in sorted(by.items()):
        p = paired(a, b)
        out["categories"][name] = {
            "baseline_passed": p.baseline.passed,
            "baseline_interval": p.baseline.to_json(),
            "mcnemar": p.mcnemar.to_json(),
        }
    if alpha is not None:
        out["detectable"] = detectable_difference(pair.mcnemar, alpha).to_json("turns")
    return out


def with_baseline(figures: Mapping[str, Any], pairing: Mapping[str, Any]) -> dict[str, Any]:
    """The held-out figures with the paired ones merged in, per category too."""
    categories = {name: dict(v) for name, v in (figures.get("categories") or {}).items()}
    for name, extra in (pairing.get("categories") or {}).items():
        categories.setdefault(name, {}).update(extra)
    return {**figures, **{k: v for k, v in pairing.items() if k != "categories"}, "categories": categories}


def write_turns(path: Path, hset: HeldoutSet, run: HeldoutRun) -> Path:
    """gateN-heldout.jsonl: per turn its id, category, the reference's tools, the verdict and the reply."""
    rows = [
        {**s.to_json(), "category": t.category, "expect": t.expect, "reference_tools": list(t.tools), "response": text}
        for t, s, text in zip(hset.turns, run.scores, run.texts)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
