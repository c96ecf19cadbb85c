"""The candidate at the target bits: itself when already there, else a cached quantized copy."""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from punie_gates.model import artifacts
from punie_gates.model.candidate import CARRIED_FILES, CandidateError
from punie_gates.model.folder import check_loadable, quantization_bits, read_config, stored_bits
from punie_gates.model.sizes import GROUP_SIZE, check_memory_budget, estimate_quantized_bytes


@dataclass(frozen=True)
class Quantized:
    path: Path  # the folder at the target bits
    source_bits: int | None
    quantized_by_suite: bool
    seconds: float  # spent quantizing now (0 when cached or not needed)
    cached: bool


def ensure_bits(
    source: Path,
    work_dir: Path,
    bits: int,
    *,
    fresh: bool = False,
    progress=None,
    memory_budget_gb: float | None = None,
) -> Quantized:
    """`source` itself when it is already at `bits`, else a cached copy quantized to `bits`.

    Before anything is quantized: weights mlx-lm cannot load faithfully (FP8) are
    refused (folder.check_loadable), and so is a model whose estimate at `bits`
    exceeds `memory_budget_gb` when one is given; a refusal costs seconds, not the
    minutes and gigabytes of a quantization.

    mlx-lm's `convert` refuses to dequantize and quantize in one call, and going
    through a float16 copy on disk would write ~48 GB for a 24B model; so this
    runs convert's own steps (lazy load_model, dequantize_model, quantize_model,
    save_model, save_config) in one pass, lazily, one shard at a time.
    """
    source = Path(source)
    config = read_config(source)
    check_loadable(source, label=f"candidate {source.name!r}")
    if memory_budget_gb is not None:
        check_memory_budget(source, memory_budget_gb, bits=bits, label=f"candidate {source.name!r}")
    now = stored_bits(source, config)
    if quantization_bits(config) == {bits}:
        return Quantized(source, now, False, 0.0, False)
    needed = estimate_quantized_bytes(source, bits, GROUP_SIZE)  # headers only; before the build lock
    parts = {
        "source": artifacts.tree_fingerprint(source, ("*.safetensors", "*.json", "*.jinja", "tokenizer.model")),
        "bits": bits,
        "group_size": GROUP_SIZE,
        "mode": "affine",
        "versions": artifacts.library_versions(),
    }
    final = artifacts.artifact_dir(work_dir, "quantized", parts)
    if (done := artifacts.cached(final, fresh)) is not None:
        return Quantized(done, now, True, 0.0, True)
    if progress is not None:
        progress("quantize", 0, 1, bits=bits)
    started = time.perf_counter()
    what = f"{source} quantized to {bits} bits"
    with artifacts.building(
        final, parts, sources={"source": source}, needed_bytes=needed, what=what, work_dir=work_dir
    ) as partial:
        _quantize_into(source, partial, bits, dequantize_first=bool(quantization_bits(config)))
    seconds = time.perf_counter() - started
    if progress is not None:
        progress("quantize", 1, 1, bits=bits, seconds=round(seconds, 1))
    return Quantized(final, now, True, seconds, False)


def _quantize_into(source: Path, dest: Path, bits: int, *, dequantize_first: bool) -> None:
    from mlx_lm.utils import dequantize_model, load_model, quantize_model, save_config, save_model

    # Weights and config only: the tokenizer files are copied, not re-saved
    # (see CARRIED_FILES), so loading the tokenizer would be wasted seconds.
    try:
        model, config = load_model(source, lazy=True)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        raise CandidateError(f"{source}: mlx-lm cannot load these weights to quantize them: {exc}") from exc
    if dequantize_first:
        model = dequantize_model(model)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    # mlx-lm prints its bits-per-weight line on stdout; commands whose stdout is
    # JSON (punie-gates bench) must not get it there.
    with contextlib.redirect_stdout(sys.stderr):
        model, config = quantize_model(model, config, GROUP_SIZE, bits, mode="affine")
    keep_vision = "vision_tower" in getattr(model, "model", {})  # as mlx_lm.utils.save decides
    save_model(dest, model, donate_model=True)
    save_config(config, config_path=dest / "config.json", keep_vision_config=keep_vision)
    for name in CARRIED_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, dest / name)
