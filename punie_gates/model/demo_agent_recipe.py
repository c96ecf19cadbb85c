"""How the demo-agent's weights are made: the random demo fully fine-tuned on Punie's training data.

The demo-agent (punie_gates.model.demo_agent) ships these weights; this module
regenerates them (`punie-gates demo-model --agent DIR --retrain`). The recipe:
- conversations: Punie's Phase 27 train split (when given) and the suite's own
  fixtures/demo-training, converted to Mistral form by the project's converter
  with the tools catalog, so every example carries the tools block a validation
  prompt carries;
- held out: any conversation holding a validation query's text, a tool result
  text or a distinctive answer fact of data/queries.toml is dropped
  (`held_out_strings`); the manifest records how many;
- examples: each conversation's first assistant turn and every assistant turn
  right after a tool result, rendered with the demo's own chat template; the
  loss counts only the assistant turn's tokens (the prompt is context);
- training: full fine-tune (every weight) of the random demo with Adam, from a
  fixed seed, in plain MLX; then 5-bit quantization with mlx-lm, the gates'
  target bits, so Gate 1 uses it as is.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SEED = 20261206
# Two system prompts train the model: the suite's data/system_prompt.txt (what a run on
# fixtures/demo-training asks with) for this share of examples, else the record's own
# (Phase 27's, what a run on Punie's data asks with).
SUITE_PROMPT_SHARE = 0.6
MAX_TOKENS = 1400  # longer examples are left out: they cost time and teach little here


@dataclass(frozen=True)
class Example:
    """One training example: a rendered prompt and the assistant turn it is trained to write."""

    ids: tuple[int, ...]  # prompt + assistant turn (ending with </s>)
    prompt_len: int  # the first prompt_len ids are context; the rest are the target
    kind: str  # "first" (the reply to the user) | "after_result" (the reply to a tool result)


@dataclass(frozen=True)
class Settings:
    """The training run's settings (all recorded in the manifest)."""

    iters: int = 3000
    batch_tokens: int = 6000  # examples per step: as many as fit this many padded tokens
    learning_rate: float = 2e-3
    warmup: int = 100
    seed: int = SEED
    log_every: int = 50


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
    from punie_gates.inputs.facts import alternatives

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
    from punie_gates.inputs import paths

    files = [paths.fixtures_dir() / "demo-training" / "train.jsonl"]
    if phase27_dir is not None:
        files.insert(0, Path(phase27_dir) / "train.jsonl")
    return tuple(files)


def load_sources(phase27_dir: Path | None, catalog, query_set) -> Sources:
    """The training conversations in Mistral form, held-out ones dropped."""
    from punie_gates.formats.convert import read_jsonl_bytes, to_mistral

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


def make_examples(records: Iterable[Mapping], tokenizer, suite_prompt: str, *, seed: int = SEED,
                  max_tokens: int = MAX_TOKENS) -> list[Example]:
    """Rendered examples (see the module docstring); `tokenizer` renders as mlx_lm.server does."""
    from punie_gates.model.tokenizer import render_ids, render_prompt_ids

    rng = random.Random(seed)
    examples: list[Example] = []
    for record in records:
        messages = [dict(m) for m in record["messages"]]
        if rng.random() < SUITE_PROMPT_SHARE:
            messages = _with_system(messages, suite_prompt)
        tools = record.get("tools")
        for index, kind in target_turns(messages):
            prompt = render_prompt_ids(tokenizer, messages[:index], tools)
            full = render_ids(tokenizer, messages[: index + 1], tools)
            if full[: len(prompt)] != prompt or len(full) <= len(prompt) or len(full) > max_tokens:
                continue
            examples.append(Example(tuple(full), len(prompt), kind))
    return examples


# -- training ------------------------------------------------------------------------
#
# Two shortcuts make a full fine-tune fit ~20 minutes on 2 shared CPU cores, where MLX's
# CPU backend manages well under 1 GFLOP/s:
# - every prompt opens with the same ~700-token head (system prompt + tools block), so
#   each step computes the head's keys and values once (no gradient through them) and
#   runs only the rest of each example, attending to that cached head;
# - the 131072-wide output layer is trained only on the tokens the targets use; every
#   other row is set to zero afterwards, so those tokens score 0, and the loss holds a
#   fixed 0 logit for "any other token" that the right token must beat.


class _HeadCache:
    """One layer's cached head keys/values, shared by a batch; the suffix is appended."""

    def __init__(self, keys, values):
        self.keys, self.values = keys, values
        self.offset = keys.shape[2]

    def update_and_fetch(self, keys, values):
        import mlx.core as mx

        batch = keys.shape[0]
        head_k = mx.broadcast_to(self.keys, (batch, *self.keys.shape[1:]))
        head_v = mx.broadcast_to(self.values, (batch, *self.values.shape[1:]))
        return mx.concatenate([head_k, keys], axis=2), mx.concatenate([head_v, values], axis=2)

    def make_mask(self, n, return_array=False, window_size=None):
        import mlx.core as mx

        rows = mx.arange(n)[:, None] + self.offset
        return mx.arange(self.offset + n)[None, :] <= rows


def _head_caches(text_model, head: Sequence[int]):
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache

    caches = [KVCache() for _ in text_model.layers]
    text_model(mx.array([list(head)]), cache=caches)
    return [_HeadCache(mx.stop_gradient(c.keys[..., : c.offset, :]), mx.stop_gradient(c.values[..., : c.offset, :]))
            for c in caches]


def split_heads(examples: Sequence[Example], heads: Sequence[Sequence[int]]) -> dict[tuple[int, ...], list[Example]]:
    """Examples grouped by which head they open with (the longest that matches)."""
    groups: dict[tuple[int, ...], list[Example]] = {tuple(h): [] for h in heads}
    for e in examples:
        for head in sorted(groups, key=len, reverse=True):
            if e.ids[: len(head)] == head and e.prompt_len >= len(head):
                groups[head].append(e)
                break
    return groups


def _batches(groups: Mapping[tuple[int, ...], Sequence[Example]], batch_tokens: int, rng: random.Random):
    """(head, examples) batches of similar suffix length, in a shuffled order."""
    out = []
    for head, examples in groups.items():
        ordered = sorted(examples, key=lambda e: len(e.ids))
        current: list[Example] = []
        for example in ordered:
            if current and (len(example.ids) - len(head)) * (len(current) + 1) > batch_tokens:
                out.append((head, current))
                current = []
            current.append(example)
        if current:
            out.append((head, current))
    rng.shuffle(out)
    return out


def _arrays(head: Sequence[int], batch: Sequence[Example], vocab_index: Mapping[int, int]):
    import mlx.core as mx
    import numpy as np

    start = len(head)
    width = max(len(e.ids) for e in batch) - start - 1
    inputs = np.zeros((len(batch), width), dtype=np.int32)
    targets = np.zeros((len(batch), width), dtype=np.int32)
    mask = np.zeros((len(batch), width), dtype=bool)
    for row, e in enumerate(batch):
        ids = np.asarray(e.ids[start:], dtype=np.int32)
        inputs[row, : len(ids) - 1] = ids[:-1]
        targets[row, : len(ids) - 1] = [vocab_index.get(int(t), 0) for t in ids[1:]]  # prompt positions: masked out
        mask[row, e.prompt_len - start - 1 : len(ids) - 1] = True
    flat = np.flatnonzero(mask.reshape(-1)).astype(np.int32)
    return mx.array(inputs), mx.array(targets.reshape(-1)[flat]), mx.array(flat)


def _trainee(text, rows):
    """What training updates: the transformer layers and norms, and the output rows of the
    target vocabulary (as a small layer of their own); the embeddings stay the demo's."""
    import mlx.nn as nn

    class Trainee(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = text.model
            self.head = nn.Linear(text.lm_head.weight.shape[1], rows.shape[0], bias=False)
            self.head.weight = text.lm_head.weight[rows]
            self.body.embed_tokens.freeze()

    return Trainee()


def target_vocabulary(examples: Iterable[Example]) -> list[int]:
    """The token ids the assistant turns use: the only output rows training touches."""
    return sorted({t for e in examples for t in e.ids[e.prompt_len :]})


def train(model, examples: Sequence[Example], heads: Sequence[Sequence[int]], settings: Settings, log=print,
          checkpoint=None) -> dict:
    """Full fine-tune of `model` (an mlx-lm mistral3 Model) on `examples`; returns figures.

    `heads`: the shared prompt heads (one per system prompt). Output rows of tokens no
    target uses are zeroed at the end (see above).
    """
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    mx.random.seed(settings.seed)
    rng = random.Random(settings.seed)
    text = model.language_model
    vocab = target_vocabulary(examples)
    vocab_index = {t: i for i, t in enumerate(vocab)}
    rows = mx.array(vocab)
    groups = split_heads(examples, heads)
    used = sum(len(v) for v in groups.values())
    trainee = _trainee(text, rows)

    def loss_fn(trainee, inputs, targets, flat, caches):
        hidden = trainee.body(inputs, cache=caches)
        hidden = hidden.reshape(-1, hidden.shape[-1])[flat]
        logits = trainee.head(hidden)
        logits = mx.concatenate([logits, mx.zeros((logits.shape[0], 1), logits.dtype)], axis=1)
        return nn.losses.cross_entropy(logits, targets, reduction="mean")

    schedule = optim.join_schedules(
        [optim.linear_schedule(1e-7, settings.learning_rate, settings.warmup),
         optim.cosine_decay(settings.learning_rate, max(1, settings.iters - settings.warmup), settings.learning_rate / 20)],
        [settings.warmup],
    )
    optimizer = optim.Adam(learning_rate=schedule)
    step = nn.value_and_grad(trainee, loss_fn)
    batches: list = []
    started = time.perf_counter()
    losses: list[float] = []
    for it in range(1, settings.iters + 1):
        if not batches:
            batches = _batches(groups, settings.batch_tokens, rng)
        head, batch = batches.pop()
        caches = _head_caches(text.model, head)
        inputs, targets, flat = _arrays(head, batch, vocab_index)
        loss, grads = step(trainee, inputs, targets, flat, caches)
        optimizer.update(trainee, grads)
        mx.eval(trainee.parameters(), optimizer.state, loss)
        losses.append(loss.item())
        if it % settings.log_every == 0 or it == settings.iters:
            recent = losses[-settings.log_every :]
            log(f"iter {it}/{settings.iters}: loss {sum(recent) / len(recent):.3f} ({time.perf_counter() - started:.0f} s)")
            if checkpoint is not None:
                checkpoint(it)
    text.lm_head.weight = mx.zeros_like(text.lm_head.weight).at[rows].add(trainee.head.weight)
    mx.eval(model.parameters())
    recent = losses[-50:]
    return {"seconds": round(time.perf_counter() - started, 1), "final_loss": round(sum(recent) / len(recent), 4),
            "examples": used, "target_vocabulary": len(vocab)}


# -- the whole recipe ----------------------------------------------------------------

LAYERS = 2  # the demo's first two layers: enough for this, and affordable on 2 CPU cores
MAX_EXAMPLE_TOKENS = 920  # prompt head (~710) + at most ~210 tokens of user turn, result and answer
RECIPE_SETTINGS = Settings(iters=170, batch_tokens=1500, learning_rate=4e-3, warmup=15, log_every=10)


def agent_config() -> dict:
    """The demo's config with LAYERS layers."""
    import copy

    from punie_gates.model.demo import CONFIG

    config = copy.deepcopy(CONFIG)
    config["text_config"]["num_hidden_layers"] = LAYERS
    return config


def retrain(dest: Path, phase27_dir: Path | None, settings: Settings = RECIPE_SETTINGS, log=print) -> dict:
    """Build the demo-agent's shipped files into `dest` (model.safetensors at 5 bits,
    config.json, manifest.json) from the random demo and the training conversations."""
    import copy
    import platform
    import tempfile

    import mlx.core as mx
    from mlx_lm.models import mistral3

    from punie_gates.answering.prompts import prompt_head
    from punie_gates.inputs import paths
    from punie_gates.inputs.catalog import load_catalog
    from punie_gates.inputs.queries import load_queries
    from punie_gates.model import artifacts
    from punie_gates.model.demo import SEED as DEMO_SEED, build_demo_model, write_tokenizer_files
    from punie_gates.model.quantize import _quantize_into
    from punie_gates.model.tokenizer import load_tokenizers_backend

    started = time.perf_counter()
    dest = Path(dest)
    catalog = load_catalog()
    query_set = load_queries(catalog=catalog)
    sources = load_sources(phase27_dir, catalog, query_set)
    suite_prompt = (paths.data_dir() / "system_prompt.txt").read_text(encoding="utf-8").strip()
    tools = catalog.native_schemas()
    with tempfile.TemporaryDirectory(prefix="punie-gates-demo-agent-") as scratch:
        demo = build_demo_model(Path(scratch) / "demo")
        tokenizer = load_tokenizers_backend(demo)
        examples = [e for e in make_examples(sources.records, tokenizer, suite_prompt, seed=settings.seed)
                    if len(e.ids) < MAX_EXAMPLE_TOKENS]
        prompts = {m[0]["content"] for r in sources.records if (m := r["messages"])[0].get("role") == "system"}
        heads = sorted(tuple(prompt_head(tokenizer, [{"role": "system", "content": p}], tools))
                       for p in prompts | {suite_prompt})
        config = agent_config()
        model = mistral3.Model(mistral3.ModelArgs.from_dict(copy.deepcopy(config)))
        weights = mx.load(str(demo / "model.safetensors"))
        model.load_weights([(k, v) for k, v in weights.items() if _layer_of(k) < LAYERS])
        log(f"{len(examples)} examples from {len(sources.records)} conversations; training {settings.iters} iterations")
        figures = train(model, examples, heads, settings, log=log)
        full = write_tokenizer_files(Path(scratch) / "float32")
        (full / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        model.save_weights(str(full / "model.safetensors"))
        built = Path(scratch) / "q5"
        built.mkdir()
        _quantize_into(full, built, 5, dequantize_first=False)
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "config.json"):
            (dest / name).write_bytes((built / name).read_bytes())
    manifest = {
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
        "examples": figures["examples"],
        "start": {"from": "the random demo (punie_gates.model.demo)", "demo_seed": DEMO_SEED, "layers_kept": LAYERS},
        "settings": {**settings.__dict__, "max_example_tokens": MAX_EXAMPLE_TOKENS,
                     "suite_prompt_share": SUITE_PROMPT_SHARE},
        "training": figures,
        "bits": 5,
        "versions": {**artifacts.library_versions(), "python": platform.python_version()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _layer_of(key: str) -> int:
    match = re.search(r"\.layers\.(\d+)\.", key)
    return int(match.group(1)) if match else -1


def _source_name(path: Path) -> str:
    from punie_gates.inputs import paths

    path = Path(path)
    if path.parent.name == "demo-training" and path.parent.parent == paths.fixtures_dir():
        return f"fixtures/demo-training/{path.name}"
    return f"Punie Phase 27 {path.name}"


def _count_lines(path: Path) -> int:
    with Path(path).open("rb") as fh:
        return sum(1 for line in fh if line.strip())
