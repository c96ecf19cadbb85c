"""How the demo-agent's weights are made: set by construction from Punie's training conversations.

The demo-agent (punie_gates.model.demo_agent) ships these weights; this module
regenerates them (`punie-gates demo-model --agent DIR --retrain`):
- conversations: Punie's Phase 27 train split (when given) and the suite's own
  fixtures/demo-training, converted to Mistral form by the project's converter
  with the tools catalog, so every prompt carries the tools block a validation
  prompt carries;
- held out: any conversation holding a validation query's text, a tool result
  text or a distinctive answer fact of data/queries.toml is dropped
  (`held_out_strings`); the manifest records how many;
- weights: the random demo's architecture with weights set by construction (see
  "weights set by construction" below): a bag-of-words classifier fitted on the
  conversations' first replies decides between a call and text, and bigram chains
  taken from the conversations by fixed rules write them; shipped at 5 bits, the
  gates' target, so Gate 1 uses it as is.
"""

from __future__ import annotations

import copy
import json
import platform
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from punie_gates.formats.records import read_jsonl_bytes
from punie_gates.formats.to_mistral import to_mistral
from punie_gates.inputs import paths
from punie_gates.inputs.catalog import load_catalog
from punie_gates.inputs.facts import alternatives
from punie_gates.inputs.queries import load_queries
from punie_gates.model import artifacts
from punie_gates.model.demo import CONFIG, write_tokenizer_files
from punie_gates.model.quantize import _quantize_into
from punie_gates.model.tokenizer import load_tokenizers_backend, render_prompt_ids

SEED = 20261206
# Two system prompts train the model: the suite's data/system_prompt.txt (what a run on
# fixtures/demo-training asks with) for this share of examples, else the record's own
# (Phase 27's, what a run on Punie's data asks with).
SUITE_PROMPT_SHARE = 0.6


# -- what is held out ---------------------------------------------------------------

_DISTINCTIVE = re.compile(r"[._/]|[a-z][A-Z]|\d[A-Za-z]|[A-Za-z]\d")


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def held_out_strings(query_set) -> dict[str, tuple[str, ...]]:
    """What no training conversation may hold, by kind: the queries' texts, their tool
    result texts, and their distinctive answer facts.

    A fact counts as distinctive when it names something (a file, a symbol, a code:
    it holds '.', '_', '/', a camel-case join or letters glued to digits) and has at
    least 5 characters: a plain number ("3") or a plain word ("generator", "function")
    is said in any Python conversation and proves nothing. Compared case-insensitively,
    whitespace collapsed.
    """

    texts = tuple(sorted({_normal(q.text) for q in query_set.queries}))
    results = tuple(sorted({_normal(r) for q in query_set.queries for r in q.results.values()}))
    facts = tuple(
        sorted(
            {
                _normal(term)
                for q in query_set.queries
                for fact in q.answer_facts
                for term in alternatives(fact)
                if len(term) >= 5 and _DISTINCTIVE.search(term)
            }
        )
    )
    return {"query_text": texts, "tool_result": results, "answer_fact": facts}


def held_out_hits(text: str, held_out: Mapping[str, Sequence[str]]) -> list[str]:
    """Which held-out strings `text` holds ("kind: string")."""
    normal = _normal(text)
    return [f"{kind}: {s}" for kind, strings in held_out.items() for s in strings if s in normal]


def _record_text(record: Mapping) -> str:
    return json.dumps(record.get("messages", []), ensure_ascii=False)


# -- the conversations ---------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """The conversations the weights are trained on, and what was dropped."""

    records: tuple[dict, ...]
    files: tuple[Path, ...]
    read: int
    rejected: int  # lines the converter rejected
    held_out: int  # conversations dropped for holding a held-out string


def source_files(phase27_dir: Path | None) -> tuple[Path, ...]:
    files = [paths.fixtures_dir() / "demo-training" / "train.jsonl"]
    if phase27_dir is not None:
        files.insert(0, Path(phase27_dir) / "train.jsonl")
    return tuple(files)


def load_sources(phase27_dir: Path | None, catalog, query_set) -> Sources:
    """The training conversations in Mistral form, held-out ones dropped."""

    files = source_files(phase27_dir)
    held_out = held_out_strings(query_set)
    records: list[dict] = []
    read = rejected = dropped = 0
    for path in files:
        result = to_mistral(read_jsonl_bytes(path), tools=catalog.native_schemas(), source=str(path))
        read += result.read
        rejected += result.rejected
        for record in result.records:
            if held_out_hits(_record_text(record), held_out):
                dropped += 1
            else:
                records.append(record)
    return Sources(tuple(records), files, read, rejected, dropped)


# -- examples ------------------------------------------------------------------------


def _with_system(messages: list[dict], prompt: str) -> list[dict]:
    if messages and messages[0].get("role") == "system":
        return [{"role": "system", "content": prompt}, *messages[1:]]
    return [{"role": "system", "content": prompt}, *messages]


def target_turns(messages: Sequence[Mapping]) -> list[tuple[int, str]]:
    """Indexes of the assistant turns trained on: the first one, and each one after a tool result."""
    out = []
    for i, m in enumerate(messages):
        if m.get("role") != "assistant":
            continue
        if not out:
            out.append((i, "first"))
        elif messages[i - 1].get("role") == "tool":
            out.append((i, "after_result"))
    return out


# -- the whole recipe ----------------------------------------------------------------


def retrain(dest: Path, phase27_dir: Path | None, log=print) -> dict:
    """Build the demo-agent's shipped files into `dest` (model.safetensors at 5 bits,
    config.json, manifest.json) from the training conversations."""

    from mlx_lm.models import mistral3

    started = time.perf_counter()
    dest = Path(dest)
    catalog = load_catalog()
    query_set = load_queries(catalog=catalog)
    sources = load_sources(phase27_dir, catalog, query_set)
    log(f"{len(sources.records)} conversations ({sources.held_out} left out as held out)")
    suite_prompt = (paths.data_dir() / "system_prompt.txt").read_text(encoding="utf-8").strip()
    config = copy.deepcopy(CONFIG)
    with tempfile.TemporaryDirectory(prefix="punie-gates-demo-agent-") as scratch:
        tokenizer = load_tokenizers_backend(write_tokenizer_files(Path(scratch) / "tokenizer"))
        weights, figures = construct(sources.records, tokenizer, catalog, suite_prompt, config)
        log(f"classifier: {figures['training_accuracy']:.1%} right on the {figures['first_replies']} first replies")
        model = mistral3.Model(mistral3.ModelArgs.from_dict(copy.deepcopy(config)))
        model.load_weights(list(weights.items()))
        ship(model, config, dest, Path(scratch))
    manifest = make_manifest(sources, query_set, figures, time.perf_counter() - started)
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def ship(model, config: dict, dest: Path, scratch: Path) -> None:
    """The model's weights at 5 bits and its config, written into `dest`."""

    full = write_tokenizer_files(Path(scratch) / "float32")
    (full / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    model.save_weights(str(full / "model.safetensors"))
    built = Path(scratch) / "q5"
    built.mkdir()
    _quantize_into(full, built, 5, dequantize_first=False)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "config.json"):
        (dest / name).write_bytes((built / name).read_bytes())


def make_manifest(sources: Sources, query_set, figures: dict, seconds: float) -> dict:
    """What the weights were built from: manifest.json."""

    return {
        "what": "punie-gates demo-agent weights (see punie_gates/model/demo_agent_recipe.py)",
        "sources": [
            {"name": _source_name(path), "records": _count_lines(path), **artifacts.file_fingerprint(path)}
            for path in sources.files
        ],
        "conversations": {"read": sources.read, "rejected": sources.rejected, "trained_on": len(sources.records)},
        "held_out": {
            "conversations_dropped": sources.held_out,
            "strings": {k: len(v) for k, v in held_out_strings(query_set).items()},
            "queries_file": artifacts.file_fingerprint(paths.data_dir() / "queries.toml"),
        },
        "construction": figures,
        "settings": {
            "seed": SEED,
            "suite_prompt_share": SUITE_PROMPT_SHARE,
            "chain_logit": CHAIN_LOGIT,
            "decision_logit": DECISION_LOGIT,
            "architecture": "the random demo's (punie_gates.model.demo)",
        },
        "bits": 5,
        "versions": {**artifacts.library_versions(), "python": platform.python_version()},
        "seconds": round(seconds, 1),
    }


def _source_name(path: Path) -> str:
    path = Path(path)
    if path.parent.name == "demo-training" and path.parent.parent == paths.fixtures_dir():
        return f"fixtures/demo-training/{path.name}"
    return f"Punie Phase 27 {path.name}"


def _count_lines(path: Path) -> int:
    with Path(path).open("rb") as fh:
        return sum(1 for line in fh if line.strip())


# -- weights set by construction -------------------------------------------------------
#
# A full fine-tune of the demo on these conversations, 20 minutes on 2 shared CPU cores
# (MLX's CPU backend ran at well under 1 GFLOP/s there), reached loss 1.8 and wrote
# call-shaped text that never closed its JSON, on every prompt. So the weights are set
# by construction, from the same conversations:
# - layer 0's attention has zero queries, so every position attends uniformly to all
#   before it: its output is the mean, over the prompt, of one number per token, written
#   into the residual's dimension 0. That number is a bag-of-words logistic regression,
#   fitted on the training conversations' first replies (called a tool or not);
# - every other layer and every MLP adds nothing, so the last hidden state is the current
#   token's embedding (plus that mean): a bigram table. Three chains of distinct tokens,
#   each taken from the training data by a fixed rule, are laid out one embedding
#   dimension per token: after `[/INST]` the call chain or the text chain (the classifier
#   decides), after `[/TOOL_RESULTS]` the answer chain; each ends with `</s>`.

CLASSIFIER_DIM, CONSTANT_DIM, FIRST_ID_DIM = 0, 1, 2
CHAIN_LOGIT = 40.0  # a chain token's next token scores this (over the final norm)
DECISION_LOGIT = 20.0  # the call/text decision's margin scale


@dataclass(frozen=True)
class Chains:
    """The token chains the constructed model writes, and where they came from."""

    call: tuple[int, ...]  # [TOOL_CALLS] ... </s>
    text: tuple[int, ...]  # a text reply ... </s>
    answer: tuple[int, ...]  # the reply after a tool result ... </s>
    described: Mapping[str, str]


def _first_replies(records, tokenizer, suite_prompt: str, seed: int):
    """(prompt ids, called a tool, reply message) of each record's first reply."""

    rng = random.Random(seed)
    out = []
    for record in records:
        messages = [dict(m) for m in record["messages"]]
        if rng.random() < SUITE_PROMPT_SHARE:
            messages = _with_system(messages, suite_prompt)
        turns = target_turns(messages)
        if not turns:
            continue
        index = turns[0][0]
        prompt = render_prompt_ids(tokenizer, messages[:index], record.get("tools"))
        out.append((prompt, bool(messages[index].get("tool_calls")), messages[index]))
    return out


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


def _fit_logistic(X, y, l2: float = 1.0, iters: int = 400):
    """Bag-of-words logistic regression by L-BFGS (scipy): weights and bias."""
    import numpy as np
    from scipy.optimize import minimize

    d = X.shape[1]
    sign = np.where(y, 1.0, -1.0)

    def loss(p):
        w, b = p[:-1], p[-1]
        z = sign * (X @ w + b)
        value = np.logaddexp(0, -z).sum() + 0.5 * l2 * (w @ w)
        g = -sign / (1 + np.exp(z))
        return value, np.concatenate([X.T @ g + l2 * w, [g.sum()]])

    result = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": iters})
    return result.x[:-1], result.x[-1]


def construct(records, tokenizer, catalog, suite_prompt: str, config: dict, seed: int = SEED):
    """The model's weights (a dict of mlx arrays for mistral3.Model) and what they were made from."""
    import mlx.core as mx
    import numpy as np

    text_cfg = config["text_config"]
    hidden, vocab, layers = text_cfg["hidden_size"], text_cfg["vocab_size"], text_cfg["num_hidden_layers"]
    heads, kv_heads, head_dim = (text_cfg["num_attention_heads"], text_cfg["num_key_value_heads"], text_cfg["head_dim"])
    inter = text_cfg["intermediate_size"]
    chains = make_chains(records, tokenizer, catalog)
    special = tokenizer.convert_tokens_to_ids
    starts = {special("[/INST]"): None, special("[/TOOL_RESULTS]"): chains.answer[0]}
    sources = list(starts) + [t for chain in (chains.call, chains.text, chains.answer) for t in chain[:-1]]
    if len(sources) > hidden - FIRST_ID_DIM:
        raise ValueError(f"{len(sources)} chain tokens do not fit {hidden - FIRST_ID_DIM} dimensions")
    slot = {t: FIRST_ID_DIM + i for i, t in enumerate(sources)}

    # The classifier: one number per token, fitted on counts over each first reply's prompt.
    replies = _first_replies(records, tokenizer, suite_prompt, seed)
    words = sorted({t for prompt, _, _ in replies for t in prompt} - set(slot))
    column = {t: i for i, t in enumerate(words)}
    X = np.zeros((len(replies), len(words)))
    for row, (prompt, _, _) in enumerate(replies):
        for t in prompt:
            if t in column:
                X[row, column[t]] += 1.0 / len(prompt)
    y = np.array([called for _, called, _ in replies])
    scale = 100.0  # counts / length are small: fit on a readable scale
    w, _ = _fit_logistic(X * scale, y)
    a = np.zeros(vocab, dtype=np.float32)
    a[np.array(words)] = w / max(1e-9, np.abs(w).max())  # |a| <= 1

    # Each token's number is shifted so that the fitted threshold sits near 0, and computed
    # on the values the 5-bit model will hold: a small difference of large numbers would
    # not survive quantization.
    shift, threshold = 0.0, 0.0
    for _ in range(4):
        shift += threshold / 8.0  # RMSNorm scales dimension 0 by about sqrt(hidden) = 8
        embed = np.zeros((vocab, hidden), dtype=np.float32)
        embed[:, CLASSIFIER_DIM] = a - shift
        embed[:, CONSTANT_DIM] = 1.0
        for t, dim in slot.items():
            embed[t, CLASSIFIER_DIM] = 0.0
            embed[t, dim] = 1.0
        embed = _as_quantized(embed)
        rms = np.sqrt((embed.astype(np.float64) ** 2).mean(axis=1) + text_cfg["rms_norm_eps"])
        value = embed[:, CLASSIFIER_DIM] / rms
        f = np.array([value[np.array(prompt)].mean() for prompt, _, _ in replies])
        coef, bias = _fit_logistic(((f - f.mean()) / f.std())[:, None], y, l2=1e-3)
        threshold = f.mean() - bias * f.std() / coef[0]
    gain = DECISION_LOGIT / max(1e-9, np.abs(f - threshold).max())
    accuracy = float(((f > threshold) == y).mean())

    head = np.zeros((vocab, hidden), dtype=np.float32)
    for source, dim in slot.items():
        following = starts.get(source, "chain")
        if following == "chain":
            chain = next(c for c in (chains.call, chains.text, chains.answer) if source in c[:-1])
            following = chain[chain.index(source) + 1]
        if following is not None:
            head[following, dim] = CHAIN_LOGIT
    inst = slot[special("[/INST]")]
    call0, text0 = chains.call[0], chains.text[0]
    # At [/INST]: call iff gain * (mean - threshold) > 0 (both rows stay above every 0 row).
    head[call0, inst], head[call0, CLASSIFIER_DIM] = CHAIN_LOGIT - gain * threshold, gain
    head[text0, inst], head[text0, CLASSIFIER_DIM] = CHAIN_LOGIT + gain * threshold, -gain

    weights = {
        "language_model.model.embed_tokens.weight": embed,
        "language_model.lm_head.weight": head,
        "language_model.model.norm.weight": np.ones(hidden, np.float32),
    }
    for i in range(layers):
        p = f"language_model.model.layers.{i}."
        v = np.zeros((kv_heads * head_dim, hidden), np.float32)
        o = np.zeros((hidden, heads * head_dim), np.float32)
        if i == 0:
            v[0, CLASSIFIER_DIM] = 1.0  # kv head 0 carries the token's number
            o[CLASSIFIER_DIM, 0] = 1.0  # query head 0 (reads kv head 0) writes the mean back
        weights.update(
            {
                p + "self_attn.q_proj.weight": np.zeros((heads * head_dim, hidden), np.float32),
                p + "self_attn.k_proj.weight": np.zeros((kv_heads * head_dim, hidden), np.float32),
                p + "self_attn.v_proj.weight": v,
                p + "self_attn.o_proj.weight": o,
                p + "mlp.gate_proj.weight": np.zeros((inter, hidden), np.float32),
                p + "mlp.up_proj.weight": np.zeros((inter, hidden), np.float32),
                p + "mlp.down_proj.weight": np.zeros((hidden, inter), np.float32),
                p + "input_layernorm.weight": np.ones(hidden, np.float32),
                p + "post_attention_layernorm.weight": np.ones(hidden, np.float32),
            }
        )
    figures = {
        "classifier_words": len(words),
        "first_replies": len(replies),
        "called": int(y.sum()),
        "training_accuracy": round(accuracy, 4),
        "shift": round(float(shift), 6),
        "threshold": round(float(threshold), 6),
        "chains": dict(chains.described),
    }
    return {k: mx.array(v) for k, v in weights.items()}, figures


def _as_quantized(matrix):
    """`matrix` as mlx-lm's 5-bit affine quantization (group 64) will hold it."""
    import mlx.core as mx
    import numpy as np

    arr = mx.array(matrix)
    packed, scales, biases = mx.quantize(arr, group_size=64, bits=5)
    return np.array(mx.dequantize(packed, scales, biases, group_size=64, bits=5))
