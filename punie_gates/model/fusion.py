"""Fuse LoRA adapters into the base model, quantize the result, measure what survived.

The seed's recipe, with mlx-lm's own functions: fuse to 16-bit floats with
the base dequantized (what `mlx_lm fuse --dequantize` does), then quantize
that with `mlx_lm.convert` (what `mlx_lm convert -q --q-bits 5` does). Both
products are keyed artifacts (punie_gates.model.artifacts).

Quantizing after the fuse can round the adapter's small weight change away:
each weight snaps back to the grid it was trained on. Punie reported that a
4-bit fuse lost the delta and a 5-bit one kept it; the plan assumed the same
for this candidate. `lora_retention` measures it instead:

    retention = 1 - mean KL(adapter || fused) / mean KL(adapter || base)

over next-token distributions at the tail positions of validation
conversations. "adapter" is the base with the LoRA layers applied (what
training optimised), "base" the same model with them switched off, "fused"
the quantized fused model. 1.0: the fused model behaves like the adapter;
0: it has drifted from the adapter as far as the untouched base is (the delta
is gone); below 0: quantization noise moved it further still. A second,
prompt-free figure is reported beside it: the share of the weight delta that
the fused weights keep along the delta's direction,
sum <W_fused - W_base, D> / sum ||D||^2 over the adapted layers (near 1 when
kept, near 0 when rounded away; meaningless, often far above 1, when the
re-quantization noise is much larger than the delta).

Measured on the demo (random weights, 5-bit base): a delta of the size 10
iterations at 1e-4 give is kept at 5 bits (0.99) and a little less at 4
(0.96); a delta 10x smaller is rounded away at 5 bits (-0.09: the weights
snap back onto the 5-bit grid they were trained on) and kept only at 8 bits.
Whether the real candidate's delta survives is what Gates 4 and 5 measure.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from punie_gates.model import artifacts
from punie_gates.model.candidate import CARRIED_FILES
from punie_gates.model.disk import check_free_space
from punie_gates.model.folder import quantization_bits, read_config
from punie_gates.model.sizes import estimate_fused_bytes, estimate_quantized_bytes

ADAPTER_FILES = ("adapters.safetensors", "adapter_config.json")
MODEL_FILES = ("*.safetensors", "*.json", "*.jinja", "tokenizer.model")


@dataclass(frozen=True)
class Retention:
    value: float  # 1 - kl_adapter_vs_fused / kl_adapter_vs_base; nan when the adapter changed nothing
    kl_adapter_vs_base: float  # mean nats per position: how far the adapter moved the base
    kl_adapter_vs_fused: float  # ... and how far the quantized fuse is from the adapter
    prompts: int
    bits: int | None
    positions: int = 0  # next-token distributions compared, over all prompts
    delta_projection: float | None = None  # share of the weight delta kept along its direction
    delta_norm: float | None = None  # ||D|| over the adapted layers
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _carry_files(source: Path, dest: Path) -> None:
    for name in CARRIED_FILES:
        if (dest / name).is_file() and not (Path(source) / name).is_file():
            (dest / name).unlink()
        if (Path(source) / name).is_file():
            shutil.copyfile(Path(source) / name, dest / name)


def fused_float_model(base_path: Path, adapter_dir: Path):
    """(model, tokenizer, config, fused layers): the base with the adapter fused in and every layer
    dequantized, lazily (weights are read shard by shard as they are saved, not at once).
    The seed recipe's fuse step, which the streamed path runs too."""
    from mlx.utils import tree_unflatten
    from mlx_lm.utils import dequantize_model, load

    model, tokenizer, config = load(str(base_path), adapter_path=str(adapter_dir), lazy=True, return_config=True)
    fused = [(name, module.fuse(dequantize=True)) for name, module in model.named_modules() if hasattr(module, "fuse")]
    if not fused:
        raise ValueError(f"{adapter_dir}: no LoRA layers were applied to {base_path}; nothing to fuse")
    model.update_modules(tree_unflatten(fused))
    model = dequantize_model(model)
    config.pop("quantization", None)
    config.pop("quantization_config", None)
    return model, tokenizer, config, len(fused)


def fuse_dequantized(base_path: Path, adapter_dir: Path, work_dir: Path, *, fresh: bool = False) -> Path:
    """The base with the adapters merged in and dequantized (`mlx_lm fuse --dequantize`).

    Float weights keep the dtype the base's scales have, as mlx-lm's fuse
    leaves them (bfloat16 or float16 for a real model: the "float16 fuse").
    """
    from mlx_lm.utils import save

    base_path, adapter_dir = Path(base_path), Path(adapter_dir)
    parts = {
        "kind": "fused",
        "base": artifacts.tree_fingerprint(base_path, MODEL_FILES),
        "adapter": artifacts.tree_fingerprint(adapter_dir, ADAPTER_FILES),
        "versions": artifacts.library_versions(),
    }
    final = artifacts.artifact_dir(work_dir, "fused", parts)
    needed = estimate_fused_bytes(base_path)
    if (done := artifacts.cached(final, fresh)) is not None:
        return done
    sources = {"base": base_path, "adapter": adapter_dir}
    with artifacts.building(
        final, parts, sources=sources, needed_bytes=needed, what="the float fuse", work_dir=work_dir
    ) as partial:
        model, tokenizer, config, _ = fused_float_model(base_path, adapter_dir)
        save(partial, str(base_path), model, tokenizer, config)
        _carry_files(base_path, partial)
    return final


def _convert_into(source: Path, partial: Path, bits: int, group_size: int) -> None:
    from mlx_lm.convert import convert

    partial.rmdir()  # convert refuses an existing folder; building() only needs it back when done
    convert(str(source), str(partial), quantize=True, q_bits=bits, q_group_size=group_size)
    _carry_files(source, partial)


def fused_quantized_key(base_path: Path, adapter_dir: Path, bits: int, group_size: int) -> dict:
    """What a fused, quantized model depends on (its artifact key; the streamed path shares it)."""
    return {
        "kind": "fused-quantized",
        "base": artifacts.tree_fingerprint(base_path, MODEL_FILES),
        "adapter": artifacts.tree_fingerprint(adapter_dir, ADAPTER_FILES),
        "bits": bits,
        "group_size": group_size,
        "versions": artifacts.library_versions(),
    }


def fuse_and_quantize(
    base_path: Path,
    adapter_dir: Path,
    work_dir: Path,
    bits: int = 5,
    group_size: int = 64,
    *,
    fresh: bool = False,
    keep_fused: bool = False,
    progress=None,
) -> Path:
    """Fuse (dequantized, 16-bit) then quantize to `bits`; returns the quantized model folder.

    Keyed by the base, the adapter and the quantization, so a rerun finds it
    without fusing again. The 16-bit fuse is deleted afterwards unless
    `keep_fused` (for a 24B model it is ~48 GB).
    """
    base_path, adapter_dir = Path(base_path), Path(adapter_dir)
    parts = fused_quantized_key(base_path, adapter_dir, bits, group_size)
    final = artifacts.artifact_dir(work_dir, f"fused-q{bits}", parts)
    quantized_bytes = estimate_quantized_bytes(base_path, bits, group_size)
    both = estimate_fused_bytes(base_path) + quantized_bytes  # the float fuse exists until the quantized copy is done
    if (done := artifacts.cached(final, fresh)) is not None:
        return done
    report = progress or (lambda *args, **kwargs: None)
    try:  # the claim cached() took is ours until the quantized copy is published
        check_free_space(final, both, what=f"the float fuse and its {bits}-bit copy", work_dir=work_dir)
        report("fuse", 0, 2, bits=bits)
        fused = fuse_dequantized(base_path, adapter_dir, work_dir, fresh=fresh)
        report("fuse", 1, 2, bits=bits)
    except BaseException:
        artifacts.release(final)
        raise
    sources = {"base": base_path, "adapter": adapter_dir}
    what = f"the fused model at {bits} bits"
    with artifacts.building(
        final, parts, sources=sources, needed_bytes=quantized_bytes, what=what, work_dir=work_dir
    ) as partial:
        _convert_into(fused, partial, bits, group_size)
    report("fuse", 2, 2, bits=bits)
    if not keep_fused:
        artifacts.discard(fused)
    return final


# -- retention -----------------------------------------------------------------


def _lora_modules(model) -> list:
    from mlx_lm.tuner.lora import LoRALinear

    return [m for _, m in model.named_modules() if isinstance(m, LoRALinear)]


def _tail_logits(model, tokens: list[int], positions: int):
    """Next-token logits at the last `positions` positions.

    When the model has mlx-lm's usual layout (a body `model` and an `lm_head`
    or tied embeddings, possibly inside `language_model`), the output layer
    runs on those positions only: with a 131072-token vocabulary it is most of
    the cost on a small model. Otherwise the whole model runs.
    """
    import mlx.core as mx

    x = mx.array(tokens)[None]
    inner = getattr(model, "language_model", model)
    body = getattr(inner, "model", None)
    args = getattr(inner, "args", None)
    if (
        body is not None
        and hasattr(body, "embed_tokens")
        and type(inner).__call__.__module__.startswith("mlx_lm.models")
    ):
        if hasattr(inner, "lm_head") and not getattr(args, "tie_word_embeddings", False):
            return inner.lm_head(body(x)[:, -positions:])[0]
        if getattr(args, "tie_word_embeddings", False) and not hasattr(inner, "lm_head"):
            return body.embed_tokens.as_linear(body(x)[:, -positions:])[0]
    return model(x)[0, -positions:]


def _tail_log_probs(model, tokens: list[int], positions: int):
    """log-softmax of the next-token logits at the last `positions` positions (float32)."""
    import mlx.core as mx

    logits = _tail_logits(model, tokens, positions).astype(mx.float32)
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def _kl_sum(p_log, q_log) -> float:
    """Sum over positions of KL(p || q) in nats."""
    import mlx.core as mx

    return mx.sum(mx.exp(p_log) * (p_log - q_log)).item()


def lora_retention(
    base_path: Path,
    adapter_dir: Path,
    fused_path: Path,
    prompts: list[list[int]],
    *,
    positions: int = 32,
    compute_dtype: str | None = "float32",
) -> Retention:
    """How much of the adapter's effect on next-token distributions the fused model keeps.

    `prompts` are token sequences (validation conversations rendered as in
    training); the last `positions` predictions of each are compared. Models
    are loaded one at a time, so peak memory is one model plus the adapter's
    log-probabilities (prompts x positions x vocabulary floats). Computing in
    float32 keeps the comparison about the weights, not the arithmetic.
    """
    import mlx.core as mx
    from mlx_lm import load

    if not prompts or any(len(p) < 2 for p in prompts):
        raise ValueError("lora_retention needs prompts of at least 2 tokens each")
    started = time.perf_counter()
    cast = getattr(mx, compute_dtype) if compute_dtype else None

    model, _ = load(str(base_path), adapter_path=str(adapter_dir))
    if cast is not None:
        model.set_dtype(cast)
    loras = _lora_modules(model)
    if not loras:
        raise ValueError(f"{adapter_dir}: no LoRA layers in the adapted model")
    spans = [min(positions, len(p) - 1) for p in prompts]
    adapted = []
    for tokens, span in zip(prompts, spans):
        log_p = _tail_log_probs(model, tokens, span)
        mx.eval(log_p)
        adapted.append(log_p)
    scales = [m.scale for m in loras]
    for m in loras:
        m.scale = 0.0  # the LoRA term becomes exactly zero: the base as trained on
    kl_base = sum(_kl_sum(a, _tail_log_probs(model, t, s)) for a, t, s in zip(adapted, prompts, spans))
    for m, scale in zip(loras, scales):
        m.scale = scale
    del model, loras
    mx.clear_cache()

    fused_model, _ = load(str(fused_path))
    if cast is not None:
        fused_model.set_dtype(cast)
    kl_fused = sum(_kl_sum(a, _tail_log_probs(fused_model, t, s)) for a, t, s in zip(adapted, prompts, spans))
    del fused_model, adapted
    mx.clear_cache()

    count = sum(spans)
    mean_base, mean_fused = kl_base / count, kl_fused / count
    value = 1.0 - mean_fused / mean_base if mean_base > 1e-12 else float("nan")
    projection, norm = delta_projection(base_path, adapter_dir, fused_path)
    return Retention(
        value=value,
        kl_adapter_vs_base=mean_base,
        kl_adapter_vs_fused=mean_fused,
        prompts=len(prompts),
        bits=_loaded_bits(fused_path),
        positions=count,
        delta_projection=projection,
        delta_norm=norm,
        seconds=time.perf_counter() - started,
    )


def _weights(path: Path) -> dict:
    import mlx.core as mx

    weights = {}
    for file in sorted(Path(path).glob("*.safetensors")):
        weights.update(mx.load(str(file)))  # lazy: only the tensors used are read
    return weights


def _dense(weights: dict, prefix: str, quant: dict):
    """The float32 weight matrix of linear layer `prefix`, dequantized if needed."""
    import mlx.core as mx

    weight = weights[f"{prefix}.weight"]
    if f"{prefix}.scales" not in weights:
        return weight.astype(mx.float32)
    params = quant.get(prefix, quant) if isinstance(quant.get(prefix), dict) else quant
    return mx.dequantize(
        weight,
        weights[f"{prefix}.scales"],
        weights.get(f"{prefix}.biases"),
        group_size=params.get("group_size", 64),
        bits=params.get("bits", 4),
        mode=params.get("mode", "affine"),
    ).astype(mx.float32)


def delta_projection(base_path: Path, adapter_dir: Path, fused_path: Path) -> tuple[float | None, float]:
    """(sum <W_fused - W_base, D> / sum ||D||^2, ||D||) over the adapted linear layers.

    D = scale * B^T A^T is the adapter's weight change (mlx-lm's LoRALinear.fuse).
    None when the delta is zero (nothing to keep).
    """
    import mlx.core as mx

    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    scale = float(config["lora_parameters"]["scale"])
    adapters = mx.load(str(Path(adapter_dir) / "adapters.safetensors"))
    base, fused = _weights(base_path), _weights(fused_path)
    base_q = json.loads((Path(base_path) / "config.json").read_text(encoding="utf-8")).get("quantization") or {}
    fused_q = json.loads((Path(fused_path) / "config.json").read_text(encoding="utf-8")).get("quantization") or {}
    kept = total = 0.0
    for name in sorted(k for k in adapters if k.endswith(".lora_a")):
        layer = prefix = name[: -len(".lora_a")]
        a = adapters[name].astype(mx.float32)
        b = adapters[f"{prefix}.lora_b"].astype(mx.float32)
        delta = (scale * b.T) @ a.T
        change = _dense(fused, layer, fused_q) - _dense(base, layer, base_q)
        kept += mx.sum(change * delta).item()
        total += mx.sum(delta * delta).item()
    if total <= 0.0:
        return None, 0.0
    return kept / total, math.sqrt(total)


def _loaded_bits(path: Path) -> int | None:
    bits = quantization_bits(read_config(path, required=False) or {})
    return max(bits) if bits else None
