"""The token chains the demo-agent writes (a call, a text reply, an answer to a tool result),
chosen from the training conversations by fixed rules.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from punie_gates.model.demo_agent_sources import target_turns


@dataclass(frozen=True)
class Chains:
    """The token chains the constructed model writes, and where they came from."""

    call: tuple[int, ...]  # [TOOL_CALLS] ... </s>
    text: tuple[int, ...]  # a text reply ... </s>
    answer: tuple[int, ...]  # the reply after a tool result ... </s>
    described: Mapping[str, str]


def _most_common_call(records, one_argument: set[str]) -> tuple[str, str, str]:
    """(typed tool, its first string argument, the field read) most common in first replies' code,
    among the typed tools a call with one argument satisfies (`one_argument`)."""

    calls, args, fields = Counter(), Counter(), Counter()
    for record in records:
        messages = record["messages"]
        turns = target_turns(messages)
        if not turns:
            continue
        for call in messages[turns[0][0]].get("tool_calls") or ():
            arguments = call["function"]["arguments"]
            arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
            code = arguments.get("code") or ""
            for tool, arg in re.findall(r"\b([a-z_]+)\(\s*\"([^\"]*)\"", code):
                calls[tool] += 1
                args[(tool, arg)] += 1
            for var, tool in re.findall(r"\b(\w+) = ([a-z_]+)\(", code):
                for field in re.findall(rf"\b{re.escape(var)}\.(\w+)", code):
                    fields[(tool, field)] += 1
    known = {t for t, _ in fields} & one_argument
    tool = next(t for t, _ in calls.most_common() if t in known)
    arg = next(a for (t, a), _ in args.most_common() if t == tool)
    field = next(f for (t, f), _ in fields.most_common() if t == tool)
    return tool, arg, field


def _most_common_text(texts, tokenizer, taken: set[int]) -> tuple[str, tuple[int, ...]]:
    """The most common text whose tokens are distinct and not in `taken` (ties: shortest)."""

    for text, _count in sorted(Counter(t for t in texts if t).items(), key=lambda kv: (-kv[1], len(kv[0]))):
        ids = tuple(tokenizer.encode(text, add_special_tokens=False))
        if len(set(ids)) == len(ids) and not set(ids) & taken and len(ids) <= 14:
            return text, ids
    raise ValueError("no text in the training data has distinct tokens")


def make_chains(records, tokenizer, catalog) -> Chains:
    """The three chains, chosen from the training conversations by fixed rules."""
    special = tokenizer.convert_tokens_to_ids
    eos = special("</s>")
    one_argument = {
        name
        for name, t in catalog.typed.items()
        if t.params and not t.returns_text and all(p in t.defaults for p in t.params[1:])
    }
    tool, arg, field = _most_common_call(records, one_argument)
    code = f'print({tool}("{arg}").{field})'
    arguments = json.dumps({"code": code})
    call = (
        special("[TOOL_CALLS]"),
        *tokenizer.encode("execute_code", add_special_tokens=False),
        special("[ARGS]"),
        *tokenizer.encode(arguments, add_special_tokens=False),
    )
    if len(set(call)) != len(call):
        raise ValueError(f"the call {arguments} repeats a token")
    direct, answers = [], []
    for record in records:
        messages = record["messages"]
        for index, kind in target_turns(messages):
            reply = messages[index]
            if kind == "first" and not reply.get("tool_calls"):
                direct.append(reply.get("content") or "")
            elif kind == "after_result":
                answers.append(reply.get("content") or "")
    taken = set(call) | {eos, special("[/INST]"), special("[/TOOL_RESULTS]")}
    text_str, text = _most_common_text(direct, tokenizer, taken)
    answer_str, answer = _most_common_text(answers, tokenizer, taken | set(text))
    return Chains(
        call + (eos,),
        text + (eos,),
        answer + (eos,),
        {
            "call": f"execute_code {arguments}",
            "text": text_str,
            "answer": answer_str,
            "rule": "the most common typed tool, argument and field of the first replies' calls; the most "
            "common text-only first reply and reply to a tool result with distinct tokens",
        },
    )
