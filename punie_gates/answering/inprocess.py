"""Greedy answers for many prompts that share one long head, computed once.

Every validation prompt starts with the same system prompt and tools block: on a
24B model at 5 bits each prefilled token costs real time, so the key/value cache
for the longest common token prefix is computed once and every query starts from a
copy of it. Queries can also be decoded together with mlx-lm's BatchGenerator.
`batch_size=1` with `prefix_cache=False` is the plan's way (`generate_naive`): one
query at a time, full prompt, the reference the others are compared with.

The gates ask through mlx_lm.server by default (answering/server.py, serving.py), whose
LRU prompt cache and BatchGenerator do what the prefix cache and batching here do; for
that path these copies are redundant. They stay for `--answer-via inprocess`, the
reference the server path is checked against (tests/selftest/test_answer_via.py), for
machines where no server runs, and for Gate 1's smoke test and `punie-gates bench`.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

Prompts = Sequence[tuple[str, list[int]]]
_PREFILL_STEP = 2048  # mlx-lm's default chunk for prompt processing


@dataclass(frozen=True)
class Generation:
    """One query's greedy answer and what it cost.

    In batched runs latency and ttft are wall-clock times from the start of the run
    to this query's last / first token (queueing included), and the rates are this
    query's share of a batch that computes several queries at once.
    """

    id: str
    text: str
    prompt_tokens: int
    generated_tokens: int
    prefill_tokens_computed: int  # tokens this query pushed through the model before decoding
    latency_s: float
    ttft_s: float
    prompt_tps: float
    generation_tps: float
    tokens: tuple[int, ...] = ()
    finish_reason: str = ""  # "stop" (EOS) or "length" (hit max_tokens)


def shared_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the longest common token prefix, leaving every prompt at least one token."""
    if len(prompts) < 2:
        return 0
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for i in range(max(n, 0)):
        if any(p[i] != first[i] for p in prompts):
            return i
    return max(n, 0)


def generate_answers(
    model,
    tokenizer,
    prompts: Prompts,
    *,
    max_tokens: int | Sequence[int],
    batch_size: int = 1,
    prefix_cache: bool = True,
    progress: Callable[..., None] | None = None,
) -> list[Generation]:
    """Greedy (temperature 0) answers, stopping at EOS or `max_tokens`, in input order.

    `max_tokens` is one cap for every prompt or one per prompt (the bench's
    answer lengths drawn from the training data).
    """
    _check_prompts(prompts)
    caps = [max_tokens] * len(prompts) if isinstance(max_tokens, int) else [int(c) for c in max_tokens]
    if len(caps) != len(prompts):
        raise ValueError(f"max_tokens: {len(caps)} caps for {len(prompts)} prompts")
    if any(c < 1 for c in caps):
        raise ValueError(f"max_tokens must be >= 1, got {min(caps)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not prompts:
        return []
    import mlx.core as mx

    prefix_len = shared_prefix_len([ids for _, ids in prompts]) if prefix_cache else 0
    cache, prefix_s = _prefill(model, prompts[0][1][:prefix_len]) if prefix_len else (None, 0.0)
    run = _generate_one_by_one if batch_size == 1 else _generate_batched
    out = run(model, tokenizer, prompts, prefix_len, cache, prefix_s, caps, batch_size, progress)
    mx.clear_cache()
    return out


def generate_naive(
    model, tokenizer, prompts: Prompts, *, max_tokens: int | Sequence[int], progress=None
) -> list[Generation]:
    """The plan's way: one query at a time, the full prompt prefilled every time."""
    return generate_answers(
        model, tokenizer, prompts, max_tokens=max_tokens, batch_size=1, prefix_cache=False, progress=progress
    )


def save_responses(path: Path, generations: Sequence[Generation]) -> Path:
    """Write `{"id", "response"}` JSONL: the input of `punie-gates score --responses`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for g in generations:
            f.write(json.dumps({"id": g.id, "response": g.text}, ensure_ascii=False) + "\n")
    return path


def _check_prompts(prompts: Prompts) -> None:
    seen: set[str] = set()
    for n, item in enumerate(prompts):
        qid, ids = item
        if not ids:
            raise ValueError(f"prompt {n} ({qid!r}) has no tokens")
        if qid in seen:
            raise ValueError(f"prompt id {qid!r} appears twice")
        seen.add(qid)


def _prefill(model, prefix: Sequence[int]):
    """The model's KV cache after reading `prefix`, and the seconds it took."""
    import mlx.core as mx
    from mlx_lm.generate import generation_stream
    from mlx_lm.models.cache import make_prompt_cache

    tic = time.perf_counter()
    cache = make_prompt_cache(model)
    tokens = mx.array(list(prefix))
    with mx.stream(generation_stream):
        for start in range(0, len(prefix), _PREFILL_STEP):
            model(tokens[start : start + _PREFILL_STEP][None], cache=cache)
            mx.eval([c.state for c in cache])
    return cache, time.perf_counter() - tic


def _greedy():
    from mlx_lm.sample_utils import make_sampler

    return make_sampler(temp=0.0)


def _eos_ids(tokenizer) -> set[int]:
    # mlx-lm's TokenizerWrapper knows every EOS id (config + tokenizer); a bare tokenizer one.
    ids = getattr(tokenizer, "eos_token_ids", None) or {tokenizer.eos_token_id}
    return {int(i) for i in ids if i is not None}


def _decode(tokenizer, tokens: Sequence[int]) -> str:
    # Keep control tokens: a tool call is `[TOOL_CALLS]name[ARGS]{...}` and scoring reads them.
    return tokenizer.decode(list(tokens), skip_special_tokens=False)


def _generate_one_by_one(model, tokenizer, prompts, prefix_len, cache, prefix_s, caps, _batch, progress):
    # mlx-lm's generate_step is the engine under stream_generate; used directly so
    # that no streaming detokenizer runs (mlx-lm's BPE one raised KeyError on some
    # tekken ids here) and text is decoded once, the same way as the batched path.
    import mlx.core as mx
    from mlx_lm.generate import generate_step, generation_stream, wired_limit

    sampler, eos, out, start = _greedy(), _eos_ids(tokenizer), [], time.perf_counter()
    with wired_limit(model, [generation_stream]):
        for n, (qid, ids) in enumerate(prompts):
            tic = time.perf_counter()
            kwargs = {"prompt_cache": copy.deepcopy(cache)} if cache is not None else {}
            steps = generate_step(mx.array(ids[prefix_len:]), model, max_tokens=caps[n], sampler=sampler, **kwargs)
            tokens, ttft, reason = [], None, "length"
            for token, _ in steps:
                ttft = time.perf_counter() - tic if ttft is None else ttft
                if token in eos:
                    reason = "stop"
                    break
                tokens.append(token)
            steps.close()
            latency = time.perf_counter() - tic
            shared = prefix_s if n == 0 else 0.0  # only the first query paid for the prefix
            out.append(_result(tokenizer, (qid, ids), n, prefix_len, shared, tokens, ttft, latency, reason))
            _report(progress, "generate", n + 1, len(prompts), out, time.perf_counter() - start + prefix_s)
    return out


def _generate_batched(model, tokenizer, prompts, prefix_len, cache, prefix_s, caps, batch_size, progress):
    from mlx_lm.generate import BatchGenerator

    gen = BatchGenerator(
        model,
        max_tokens=max(caps),
        stop_tokens=[[t] for t in sorted(_eos_ids(tokenizer))],
        sampler=_greedy(),
        completion_batch_size=batch_size,
        prefill_batch_size=batch_size,
    )
    try:
        tic = time.perf_counter()
        # Merging per-sequence caches into a batch cache copies them, so one
        # prefix cache serves every query without being modified.
        caches = [cache] * len(prompts) if cache is not None else None
        uids = gen.insert([ids[prefix_len:] for _, ids in prompts], max_tokens=caps, caches=caches)
        index = {uid: n for n, uid in enumerate(uids)}
        tokens: dict[int, list[int]] = {uid: [] for uid in uids}
        first: dict[int, float] = {}
        results: dict[int, Generation] = {}
        while responses := gen.next_generated():
            now = time.perf_counter() - tic
            for r in responses:
                first.setdefault(r.uid, now)
                if r.finish_reason != "stop":  # the stop token itself is not part of the answer
                    tokens[r.uid].append(r.token)
                if r.finish_reason is not None:
                    n = index[r.uid]
                    results[r.uid] = _result(
                        tokenizer,
                        prompts[n],
                        n,
                        prefix_len,
                        prefix_s,
                        tokens[r.uid],
                        first[r.uid],
                        now,
                        r.finish_reason,
                    )
                    _report(progress, "generate", len(results), len(prompts), results.values(), now + prefix_s)
    finally:
        gen.close()
    missing = [prompts[index[u]][0] for u in uids if u not in results]
    if missing:
        raise RuntimeError(f"batch generation ended without answers for {missing}")
    return [results[u] for u in uids]


def _result(tokenizer, prompt, n, prefix_len, prefix_s, toks, ttft, latency, reason) -> Generation:
    """A Generation; the first query is charged with the shared prefix it paid for."""
    qid, ids = prompt
    computed = len(ids) - prefix_len + (prefix_len if n == 0 else 0)
    ttft, latency = ttft + prefix_s, latency + prefix_s
    return Generation(
        id=qid,
        text=_decode(tokenizer, toks),
        prompt_tokens=len(ids),
        generated_tokens=len(toks),
        prefill_tokens_computed=computed,
        latency_s=latency,
        ttft_s=ttft,
        prompt_tps=computed / max(ttft, 1e-9),
        generation_tps=len(toks) / max(latency - ttft, 1e-9),
        tokens=tuple(toks),
        finish_reason=reason,
    )


def _report(progress, step: str, done: int, total: int, out, elapsed: float) -> None:
    if progress is None:
        return
    gen_tokens = sum(g.generated_tokens for g in out)
    progress(step, done, total, tokens_per_s=round(gen_tokens / elapsed, 1) if elapsed > 0 else 0.0)
