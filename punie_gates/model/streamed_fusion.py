"""Fuse LoRA adapters and quantize in one pass, tensor by tensor, with no float copy on disk.

The reference recipe (punie_gates.model.fusion.fuse_and_quantize) runs
`mlx_lm fuse --dequantize`, which writes the whole model in float (~48 GB for
Devstral Small 2), then `mlx_lm convert -q` on that copy. This module runs the
same mlx-lm functions in the same order on one lazily loaded model, and skips
the round trip through the disk:

1. `mlx_lm.load(base, adapter_path=..., lazy=True)`: the recipe's own load;
   nothing is read yet;
2. every LoRA layer's `fuse(dequantize=True)` (mlx-lm's LoRALinear.fuse: the
   base weight dequantized in its scales' dtype, plus
   `(scale * B^T @ A^T).astype(that dtype)`), then `dequantize_model` for the
   remaining quantized layers, the quantization keys dropped from the config:
   what the fuse step saves;
3. the config written and read back as the convert step reads the fused
   folder (save_config, load_config), every floating parameter cast to the
   config's dtype as convert does, then `quantize_model` with convert's
   arguments (its per-layer predicate, the model's own `quant_predicate`);
4. the result saved in the shards `save_model` would write (same names, same
   split, same index), except that each tensor is computed on its own
   (`mx.eval` one at a time) and each shard is written and dropped before the
   next is computed. A safetensors file read lazily loads only the tensors a
   computation needs, so peak memory is one shard of the quantized output
   (mlx-lm splits at 5 GB) plus one layer in float, instead of a float model's
   worth of disk writes and reads;
5. the rest of the recipe's output folder as the recipe makes it: the
   tokenizer saved by mlx-lm, `*.py` and generation_config.json copied, the
   model card, the candidate's tokenizer files carried byte for byte.

The disk round trip changes nothing in the values (safetensors stores each
dtype exactly), so the output is the recipe's, tensor for tensor; the
self-test checks it (tests/selftest/test_streamed_fusion.py). Two steps of the
reload could differ in principle and are checked instead of assumed: the
model's `sanitize` must leave the fused weights untouched, and a model built
from the reloaded config must have the same parameters. When either does not
hold, this raises and the recipe is the way.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from punie_gates.model import artifacts
from punie_gates.model.fusion import _carry_files, fused_float_model, fused_quantized_key
from punie_gates.model.sizes import estimate_quantized_bytes


class StreamedFusionError(RuntimeError):
    """The streamed path cannot promise the recipe's output for this model; use the recipe."""


@dataclass(frozen=True)
class StreamedFusion:
    """What one streamed fuse + quantize wrote."""

    path: Path  # the output folder
    tensors: int  # tensors written
    shards: int  # safetensors files written
    fused_layers: int  # adapter layers merged in
    seconds: float


def fuse_and_quantize_streamed(
    base_path: Path,
    adapter_dir: Path,
    work_dir: Path,
    bits: int = 5,
    group_size: int = 64,
    *,
    fresh: bool = False,
    progress=None,
) -> Path:
    """The recipe's `fuse_and_quantize` output, built without the float copy on disk.

    Shares the recipe's artifact key: the two paths produce the same folder,
    so either one's result is reused by both.
    """
    base_path, adapter_dir = Path(base_path), Path(adapter_dir)
    parts = fused_quantized_key(base_path, adapter_dir, bits, group_size)
    final = artifacts.artifact_dir(work_dir, f"fused-q{bits}", parts)
    needed = estimate_quantized_bytes(base_path, bits, group_size)
    if (done := artifacts.cached(final, fresh)) is not None:
        return done
    sources = {"base": base_path, "adapter": adapter_dir}
    what = f"the fused model at {bits} bits"
    with artifacts.building(
        final, parts, sources=sources, needed_bytes=needed, what=what, work_dir=work_dir
    ) as partial:
        stream_fuse_quantize_into(base_path, adapter_dir, partial, bits, group_size, progress=progress)
    return final


def stream_fuse_quantize_into(
    base_path: Path,
    adapter_dir: Path,
    dest: Path,
    bits: int = 5,
    group_size: int = 64,
    *,
    mode: str = "affine",
    progress=None,
) -> StreamedFusion:
    """Write the fused model quantized to `bits` into the (existing, empty) folder `dest`."""
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_map, tree_map_with_path
    from mlx_lm.convert import MODEL_CONVERSION_DTYPES
    from mlx_lm.utils import (
        create_model_card,
        get_total_parameters,
        make_shards,
        quantize_model,
        save_config,
    )

    started = time.perf_counter()
    base_path, adapter_dir, dest = Path(base_path), Path(adapter_dir), Path(dest)
    report = progress or (lambda *args, **kwargs: None)

    # 1-2: the fuse step, as punie_gates.model.fusion.fuse_dequantized runs it.
    model, tokenizer, config, fused_count = fused_float_model(base_path, adapter_dir)
    keep_vision = "vision_tower" in getattr(model, "model", {})

    # 3: the convert step, as it would see the fused folder.
    reloaded = _reloaded_config(config, base_path, keep_vision)
    _check_reload_is_identity(model, reloaded)
    dtype = reloaded.get("torch_dtype", None)
    if dtype is None and (text_config := reloaded.get("text_config", None)):
        dtype = text_config.get("dtype", None)
    if dtype in MODEL_CONVERSION_DTYPES:
        dtype = getattr(mx, dtype)
        cast_predicate = getattr(model, "cast_predicate", lambda _: True)

        def set_dtype(k, v):
            if cast_predicate(k) and mx.issubdtype(v.dtype, mx.floating):
                return v.astype(dtype)
            return v

        model.update(tree_map_with_path(set_dtype, model.parameters()))
    with contextlib.redirect_stdout(sys.stderr):  # mlx-lm prints its bits-per-weight line
        model, quantized_config = quantize_model(model, reloaded, group_size, bits, mode=mode)

    # 4: save_model's files, one tensor computed at a time, one shard held at a time.
    keep_vision = "vision_tower" in getattr(model, "model", {})
    weights = dict(tree_flatten(model.parameters()))
    shards = make_shards(weights)
    name_format = "model-{:05d}-of-{:05d}.safetensors" if len(shards) > 1 else "model.safetensors"
    index = {
        "metadata": {
            "total_size": sum(v.nbytes for v in weights.values()),
            "total_parameters": get_total_parameters(model),
        },
        "weight_map": {},
    }
    count = len(weights)
    # Only the shards reference the lazy results now: a written shard is freed.
    model.update(tree_map(lambda _: mx.array([]), model.parameters()))
    weights.clear()
    done = 0
    for i in range(len(shards)):
        shard, shards[i] = shards[i], None
        for value in shard.values():
            mx.eval(value)
            done += 1
            report("fuse", done, count, bits=bits)
        shard_name = name_format.format(i + 1, len(shards))
        mx.save_safetensors(str(dest / shard_name), shard, metadata={"format": "mlx"})
        for weight_name in shard:
            index["weight_map"][weight_name] = shard_name
        del shard
        mx.clear_cache()
    index["weight_map"] = {k: index["weight_map"][k] for k in sorted(index["weight_map"])}
    with open(dest / "model.safetensors.index.json", "w") as fh:
        json.dump(index, fh, indent=4)

    # 5: the rest of mlx_lm.utils.save, then the carried tokenizer files.
    save_config(quantized_config, config_path=dest / "config.json", keep_vision_config=keep_vision)
    tokenizer.save_pretrained(dest)
    for pattern in ("*.py", "generation_config.json"):
        for file in base_path.glob(pattern):
            shutil.copy(file, dest)
    create_model_card(dest, None)
    _carry_files(base_path, dest)
    return StreamedFusion(dest, count, len(shards), fused_count, time.perf_counter() - started)


def _reloaded_config(config: dict, base_path: Path, keep_vision: bool) -> dict:
    """The config `mlx_lm convert` would read back from the fused folder.

    Written and read with mlx-lm's own save_config and load_config (which adds
    generation_config.json's eos ids, copied there from the base), then the one
    adjustment its load_model makes before building the model.
    """
    from mlx_lm.utils import load_config, save_config

    with tempfile.TemporaryDirectory(prefix="punie-gates-fuse-config-") as tmp:
        # a copy: save_config drops keys from the dict it is given
        save_config(copy.deepcopy(config), config_path=Path(tmp) / "config.json", keep_vision_config=keep_vision)
        if (base_path / "generation_config.json").is_file():
            shutil.copy(base_path / "generation_config.json", tmp)
        reloaded = load_config(Path(tmp))
    if "quantization_config" not in reloaded:
        text_config = reloaded.get("text_config", {})
        if "quantization_config" in text_config:
            reloaded["quantization_config"] = text_config["quantization_config"]
    if reloaded.get("quantization") or reloaded.get("quantization_config"):
        raise StreamedFusionError(
            f"{base_path}/config.json: the fused model's config still names a quantization "
            f"({reloaded.get('quantization') or reloaded.get('quantization_config')}); mlx-lm's convert would "
            "treat it as such when reloading, which the streamed path does not mirror; use the recipe "
            "(punie_gates.model.fusion.fuse_and_quantize)"
        )
    return reloaded


def _check_reload_is_identity(model, reloaded: dict) -> None:
    """Raise unless reloading the fused weights would give this model's parameters unchanged.

    The recipe's convert step builds a fresh model from the reloaded config and
    loads the saved weights through the model's `sanitize`: both are lazy here
    (no tensor is computed), and both must be no-ops for the streamed output to
    be the recipe's.
    """
    from mlx.utils import tree_flatten
    from mlx_lm.utils import _get_classes

    ours = dict(tree_flatten(model.parameters()))
    if hasattr(model, "sanitize"):
        sanitized = model.sanitize(dict(ours))
        changed = sorted(set(ours) ^ set(sanitized))
        changed += sorted(k for k in ours if k in sanitized and sanitized[k] is not ours[k])
        if changed:
            raise StreamedFusionError(
                f"reloading the fused weights would pass them through {type(model).__name__}.sanitize, which "
                f"changes {len(changed)} of them (first: {changed[:3]}); the streamed path cannot promise the "
                "recipe's output: use punie_gates.model.fusion.fuse_and_quantize"
            )
    model_class, args_class = _get_classes(config=reloaded)
    fresh = dict(tree_flatten(model_class(args_class.from_dict(reloaded)).parameters()))
    shapes = {k: tuple(v.shape) for k, v in ours.items()}
    fresh_shapes = {k: tuple(v.shape) for k, v in fresh.items()}
    if shapes != fresh_shapes:
        differ = sorted(set(shapes) ^ set(fresh_shapes)) or sorted(k for k in shapes if shapes[k] != fresh_shapes[k])
        raise StreamedFusionError(
            f"a model built from the fused config has other parameters than the fused model ({differ[:3]}); "
            "use punie_gates.model.fusion.fuse_and_quantize"
        )
