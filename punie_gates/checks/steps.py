"""Steps several gates share: validation prompts, answering queries, training, fusing,
retention and the judgments on them.

The gate modules stay declarative (fixtures and assertions); what they do to a
model and how they tally it lives here once, so Gates 4 and 5 train, fuse and
judge exactly alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from punie_gates.answering.answers import QueryAnswer, save_answers
from punie_gates.answering.prompts import prefix_mismatch, query_messages
from punie_gates.inputs.queries import Query
from punie_gates.model import artifacts
from punie_gates.model.fusion import fuse_and_quantize, fused_quantized_key, lora_retention
from punie_gates.model.loss_curve import plot_loss_curve, write_loss_curve
from punie_gates.model.sizes import GROUP_SIZE
from punie_gates.model.streamed_fusion import StreamedFusionError, fuse_and_quantize_streamed
from punie_gates.model.tokenizer import render_ids
from punie_gates.model.training import TrainSettings, train_lora


def query_conversations(queries, system_prompt: str) -> list[tuple[str, list[dict]]]:
    """(id, messages) per query: what a server is sent (it renders them with its own template)."""
    return [(q.id, query_messages(system_prompt, q.text)) for q in queries]


def answer_queries(answerer, queries, *, system_prompt, save_to: Path) -> list[QueryAnswer]:
    """Greedy answers through `answerer` (answering.answerer: the tools, the token budget and
    the batch size are its own), saved for `punie-gates score`."""

    answers = answerer.answer(query_conversations(queries, system_prompt))
    save_answers(save_to, answers)
    return answers


def time_queries(answerer, queries, *, system_prompt, max_tokens: int) -> list[QueryAnswer]:
    """Each query alone, one after the other, timed (Gate 2, and Gate 5's speed check).

    Through a server: streamed requests one at a time, so latency and time to first token
    are what a Punie user waits (the server's prompt cache keeps the shared head after the
    first). In-process: the plan's way, the full prompt prefilled every time.
    """
    return answerer.time_each(query_conversations(queries, system_prompt), max_tokens=max_tokens)


@dataclass(frozen=True)
class GateAnswers:
    """A trained gate's answers to its queries."""

    queries: tuple[Query, ...]
    """The queries asked, in order."""
    generations: Mapping[str, QueryAnswer]
    """Each query's answer, by query id (text, and the server's tool calls when asked through one)."""
    prompt_mismatch: str | None
    """How the validation prompt differs from a training prompt's head (None: it does not)."""


def answer_gate_queries(
    answerer, queries, first_training_record, *, catalog, system_prompt, save_to: Path
) -> GateAnswers:
    """A trained gate's answers (see answer_queries), and whether its prompts start as
    training's did, rendered with the tokenizer the answering path renders with."""

    mismatch = prefix_mismatch(
        answerer.prompt_tokenizer(),
        first_training_record,
        query_messages(system_prompt, queries[0].text),
        catalog.native_schemas(),
    )
    generations = answer_queries(answerer, queries, system_prompt=system_prompt, save_to=save_to)
    return GateAnswers(tuple(queries), {g.id: g for g in generations}, mismatch)


def train_for_gate(weights: Path, train, valid, gate_config, *, iters: int, progress):
    """LoRA with the suite's training settings (data/gates.toml [training])."""

    settings = TrainSettings.from_table(asdict(gate_config.settings.training), iters=iters, seed=gate_config.seed)
    return train_lora(weights, train, valid, settings, gate_config.work_dir, fresh=gate_config.fresh, progress=progress)


@dataclass(frozen=True)
class FusedModel:
    """A training gate's fused model at the target bits, and how it was made."""

    path: Path
    """The fused, quantized model folder."""
    method: str
    """The path that was run: "streamed" or "recipe" (both give the same folder, under the same key)."""
    requested: str
    """What the run asked for (--fusion, else the gate's `fusion` in data/gates.toml)."""
    cached: bool
    """Found complete in the work folder (made by an earlier run): nothing was fused now."""
    fallback: str | None
    """Why the streamed path could not promise the recipe's output and the recipe ran instead, or None."""

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "method": self.method,
            "requested": self.requested,
            "cached": self.cached,
            "fallback": self.fallback,
        }


def fuse_for_gate(weights: Path, adapter_dir: Path, gate_config, *, gate: str, progress) -> FusedModel:
    """The adapter fused in and quantized to the target bits (cached), the gate's way.

    "streamed" (the default) fuses and quantizes layer by layer with no float16 copy
    on disk; when it cannot promise the recipe's output for this model it raises
    StreamedFusionError, and the recipe (fuse with dequantize to float16, then
    quantize: the reference) runs instead, which the result records.
    """

    requested, bits, work = gate_config.settings.of(gate).fusion, gate_config.target_bits, gate_config.work_dir
    key = fused_quantized_key(weights, adapter_dir, bits, GROUP_SIZE)
    cached = not gate_config.fresh and artifacts.is_complete(artifacts.artifact_dir(work, f"fused-q{bits}", key))
    how = {"bits": bits, "group_size": GROUP_SIZE, "fresh": gate_config.fresh, "progress": progress}
    fallback = None
    if requested == "streamed":
        try:
            return FusedModel(
                fuse_and_quantize_streamed(weights, adapter_dir, work, **how), "streamed", requested, cached, None
            )
        except StreamedFusionError as exc:
            fallback = str(exc)
    return FusedModel(fuse_and_quantize(weights, adapter_dir, work, **how), "recipe", requested, cached, fallback)


def measure_retention(tokenizer, weights: Path, adapter_dir: Path, fused: Path, records):
    """How much of the adapter's effect the fused, quantized model keeps, on `records`
    rendered as training renders them (the session's finetuning-mode tokenizer: the
    quantized folders carry the candidate's tokenizer files byte for byte)."""
    prompts = [render_ids(tokenizer, r["messages"], r.get("tools")) for r in records]
    return lora_retention(weights, adapter_dir, fused, prompts)


def retention_problem(retention, need: float) -> str | None:
    """Why the fused model did not keep enough of the adapter's effect, or None."""
    if not retention.kl_adapter_vs_base > 0:
        return "the adapter does not change the model's predictions: nothing to retain"
    if retention.value < need:
        return (
            f"the {retention.bits}-bit fuse keeps {retention.value:.2f} of the adapter's effect on next-token "
            f"predictions (KL adapter->fused {retention.kl_adapter_vs_fused:.4g} vs adapter->base "
            f"{retention.kl_adapter_vs_base:.4g} nats); expected >= {need}: quantization rounded the LoRA delta away"
        )
    return None


def training_figures(trained, report_dir: Path, gate: str, title: str) -> dict[str, Any]:
    """What a training gate records about its LoRA run: the loss curve (json, png) and the run."""
    curve = trained.curve
    png = plot_loss_curve(curve, report_dir / f"{gate}-loss-curve.png", title)
    write_loss_curve(curve, report_dir / f"{gate}-loss-curve.json")
    return {
        "loss_curve": curve.to_json(),
        "loss_curve_png": str(png),
        "loss": curve.summary(),
        "training": {
            "iters": trained.iters_done,
            "resumed_from": trained.resumed_from,
            "cached": trained.cached,
            "seconds": round(trained.seconds, 1),
            "lora_layers": trained.lora_layers,
            "adapter_dir": str(trained.adapter_dir),
            "settings": trained.info.get("settings"),
        },
    }


def generation_figures(generations, gate_config) -> dict:
    """What generating the answers cost, beside what the plan's one-at-a-time way would have
    prefilled (every prompt in full): the prefix cache's saving (the suite's in-process, or
    the server's prompt cache), measured on this run."""
    gens = list(generations)
    return {
        "queries": len(gens),
        "via": gens[0].via if gens else None,
        "batch_size": gate_config.gen_batch_size,
        "max_tokens": gate_config.max_tokens,
        "prefill_tokens_naive": sum(g.prompt_tokens or 0 for g in gens),
        "prefill_tokens_suite": sum(g.prefill_tokens or 0 for g in gens),
        "generated_tokens": sum(g.generated_tokens or 0 for g in gens),
    }
