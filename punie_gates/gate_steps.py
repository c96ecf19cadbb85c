"""Steps several gates share: validation prompts, answering queries, training and fusing.

The gate modules stay declarative (fixtures and assertions); what they do to a
model lives here once, so Gates 4 and 5 train and fuse exactly alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def validation_prompts(tokenizer, queries, system_prompt: str, tools: Sequence[dict]) -> list[tuple[str, list[int]]]:
    """(id, token ids) per query, through the model's own template with the tools passed natively."""
    from punie_gates.prompts import query_messages, render_prompt

    return [(q.id, render_prompt(tokenizer, query_messages(system_prompt, q.text), tools)) for q in queries]


def answer_queries(model, tokenizer, queries, *, catalog, system_prompt, gate_config, progress, save_as: str):
    """Greedy answers (the suite's batched, prefix-cached path), saved for `punie-gates score`."""
    from punie_gates.generation import generate_answers, save_responses

    prompts = validation_prompts(tokenizer, queries, system_prompt, catalog.native_schemas())
    generations = generate_answers(
        model,
        tokenizer,
        prompts,
        max_tokens=gate_config.max_tokens,
        batch_size=gate_config.gen_batch_size,
        progress=progress,
    )
    save_responses(gate_config.report_dir / save_as, generations)
    return generations


def train_for_gate(weights: Path, train, valid, gate_config, *, iters: int, progress):
    """LoRA with the suite's training settings (data/gates.toml [training])."""
    from punie_gates.training import TrainSettings, train_lora

    settings = TrainSettings.from_table(gate_config.thresholds.get("training", {}), iters=iters, seed=gate_config.seed)
    return train_lora(weights, train, valid, settings, gate_config.work_dir, fresh=gate_config.fresh, progress=progress)


def fuse_for_gate(weights: Path, adapter_dir: Path, gate_config, *, progress) -> Path:
    """Fused to float16 with dequantize, then quantized to the target bits (cached)."""
    from punie_gates.fusion import fuse_and_quantize

    bits = int(gate_config.gate("gate1").get("target_bits", 5))
    return fuse_and_quantize(weights, adapter_dir, gate_config.work_dir, bits=bits, fresh=gate_config.fresh, progress=progress)


def measure_retention(tokenizer, weights: Path, adapter_dir: Path, fused: Path, records):
    """How much of the adapter's effect the fused, quantized model keeps, on `records`
    rendered as training renders them (the session's finetuning-mode tokenizer: the
    quantized folders carry the candidate's tokenizer files byte for byte)."""
    from punie_gates.fusion import lora_retention
    from punie_gates.tokenizer_check import render_ids

    prompts = [render_ids(tokenizer, r["messages"], r.get("tools")) for r in records]
    return lora_retention(weights, adapter_dir, fused, prompts)


def generation_figures(generations, gate_config) -> dict:
    """What generating the answers cost, beside what the plan's one-at-a-time way would have
    prefilled (every prompt in full): the prefix cache's saving, measured on this run."""
    gens = list(generations)
    return {
        "queries": len(gens),
        "batch_size": gate_config.gen_batch_size,
        "max_tokens": gate_config.max_tokens,
        "prefill_tokens_naive": sum(g.prompt_tokens for g in gens),
        "prefill_tokens_suite": sum(g.prefill_tokens_computed for g in gens),
        "generated_tokens": sum(g.generated_tokens for g in gens),
    }
