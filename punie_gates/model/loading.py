"""Loading a model folder with mlx-lm once, refusing early what cannot fit, and releasing it."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from punie_gates.errors import MemoryBudgetError
from punie_gates.model.candidate import Candidate, CandidateError, resolve_candidate
from punie_gates.model.folder import (
    check_loadable,
    disk_gb,
    physical_memory_gb,
    quantization_bits,
    read_config,
)
from punie_gates.model.quantize import ensure_bits
from punie_gates.model.sizes import check_memory_budget

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class LoadedModel:
    model: Any  # mlx.nn.Module
    tokenizer: Any  # mlx_lm TokenizerWrapper, loaded for generation (see load_model)
    path: Path  # the folder loaded: the one at the target bits, which later gates use
    source_path: Path  # the candidate's own folder
    bits: int | None
    source_bits: int | None
    quantized_by_suite: bool
    quantize_seconds: float
    load_seconds: float
    peak_memory_gb: float
    estimated_memory_gb: float
    disk_gb: float
    is_demo: bool
    name: str

    def __repr__(self) -> str:  # never the model's module tree: pytest prints reprs in assertions
        return f"LoadedModel(name={self.name!r}, path='{self.path}', bits={self.bits})"

    def figures(self) -> dict[str, Any]:
        """What Gate 1 records about the load."""
        return {
            "name": self.name,
            "is_demo": self.is_demo,
            "path": str(self.path),
            "source_path": str(self.source_path),
            "bits": self.bits,
            "source_bits": self.source_bits,
            "quantized_by_suite": self.quantized_by_suite,
            "quantize_seconds": round(self.quantize_seconds, 2),
            "load_seconds": round(self.load_seconds, 2),
            "peak_memory_gb": round(self.peak_memory_gb, 3),
            "estimated_memory_gb": round(self.estimated_memory_gb, 3),
            "disk_gb": round(self.disk_gb, 3),
        }


def load_model(
    candidate: Candidate,
    *,
    work_dir: Path,
    memory_budget_gb: float,
    bits: int,
    fresh: bool = False,
    progress=None,
) -> LoadedModel:
    """Quantize (if needed) and load `candidate` once, refusing early what cannot fit.

    The tokenizer is loaded in mistral-common's default "test" mode: generation
    prompts end with a user (or tool) turn, which "finetuning" mode refuses
    ("Expected last role Assistant for finetuning"). Training loads its own
    finetuning-mode tokenizer from `path`.
    """
    import mlx.core as mx
    from mlx_lm import load

    source = candidate.path
    label = f"candidate {candidate.name!r}"
    check_loadable(source, label=label)  # FP8 is refused before its memory is even estimated
    check_memory_budget(source, memory_budget_gb, bits=bits, label=label)
    quantized = ensure_bits(source, work_dir, bits, fresh=fresh, progress=progress)
    estimate = check_memory_budget(quantized.path, memory_budget_gb, label=f"{label} at {bits} bits")
    _check_free_memory(estimate, label)

    mx.clear_cache()
    mx.reset_peak_memory()
    started = time.perf_counter()
    try:
        model, tokenizer = load(str(quantized.path))
    except (ValueError, FileNotFoundError, KeyError) as exc:
        raise CandidateError(f"{label}: mlx-lm cannot load {quantized.path}: {exc}") from exc
    load_seconds = time.perf_counter() - started
    peak = mx.get_peak_memory() / 1e9
    loaded_bits = quantization_bits(read_config(quantized.path))
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        path=quantized.path,
        source_path=source,
        bits=max(loaded_bits) if loaded_bits else None,
        source_bits=quantized.source_bits,
        quantized_by_suite=quantized.quantized_by_suite,
        quantize_seconds=quantized.seconds,
        load_seconds=load_seconds,
        peak_memory_gb=peak,
        estimated_memory_gb=estimate,
        disk_gb=disk_gb(quantized.path),
        is_demo=candidate.is_demo,
        name=candidate.name,
    )


def _check_free_memory(estimate_gb: float, label: str) -> None:
    # A second model in the same process (a --baseline beside the candidate)
    # adds to what is already resident; both must fit the machine.
    import mlx.core as mx

    physical = physical_memory_gb()
    resident = mx.get_active_memory() / 1e9
    if physical and resident + estimate_gb > 0.9 * physical:
        raise MemoryBudgetError(
            f"{label}: needs about {estimate_gb:.1f} GB but {resident:.1f} GB is already in use by MLX in this "
            f"process and the machine has {physical:.1f} GB; loading it would swap"
        )


def release() -> None:
    """Hand a dropped model's memory back: collect it, then clear MLX's buffer cache."""
    import mlx.core as mx

    gc.collect()
    mx.clear_cache()


@contextlib.contextmanager
def holding(load: Callable[[], T]) -> Iterator[T]:
    """A model loaded for a with-block and released after it (gates, the bench).

    A 24B model at 5 bits is ~16 GB and Gates 4 and 5 load training copies, so a
    model is held for one gate module at a time; releasing before loading as well
    keeps the next one from starting beside the last one's buffers.
    """
    release()
    value = load()
    try:
        yield value
    finally:
        del value
        release()


def load_folder(path: Path) -> tuple[Any, Any]:
    """(model, tokenizer) of a folder the suite made (a fused model), for generation."""
    from mlx_lm import load

    try:
        return load(str(path))
    except (ValueError, FileNotFoundError, KeyError) as exc:
        raise CandidateError(f"mlx-lm cannot load {path}: {exc}") from exc


def load_named(spec: str, options, *, progress=None) -> LoadedModel:
    """A candidate or baseline named as the user names it, loaded the way every gate loads
    one: resolved (weights fetched unless offline), at the run's target bits, within budget.
    `options` is the run's inputs.options.GateConfig."""
    resolved = resolve_candidate(spec, cache_dir=options.cache_dir, offline=options.offline, need_weights=True)
    return load_model(
        resolved,
        work_dir=options.work_dir,
        memory_budget_gb=options.settings.gate1.memory_budget_gb,
        bits=options.target_bits,
        fresh=options.fresh,
        progress=progress,
    )
