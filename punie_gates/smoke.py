"""Gate 1: get the candidate into memory as a 5-bit MLX model, and see it write code.

Steps, cheapest first:
1. a memory guard that reads safetensors headers only, so a model that cannot
   fit the budget fails in a second instead of swapping for an hour;
2. quantization to the target bits (5) with mlx-lm's own building blocks,
   cached in the work folder; that model is what every later gate uses;
3. one `mlx_lm.load`, timed, with MLX's peak memory;
4. the smoke test: a prime-number function prompt through the chat template,
   greedy, and the answer must be Python that parses and defines a function
   (analysed with `ast`, never run).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from punie_gates.candidate import CARRIED_FILES, Candidate, CandidateError, weight_files

SMOKE_PROMPT = "Write a Python function that checks whether a number is prime."
SMOKE_MAX_TOKENS = 200
TARGET_BITS = 5
GROUP_SIZE = 64  # mlx-lm's default for affine quantization
QUOTE_CHARS = 300  # how much of a failed answer an assertion quotes

# Loaded weights are not all a model needs: the KV cache, activations and MLX's
# buffers come on top. 10% plus half a GB covers greedy generation of a few
# thousand tokens on a dense 24B model; the measured peak is what Gate 1 judges,
# this estimate only refuses hopeless loads early.
OVERHEAD_FRACTION = 0.10
OVERHEAD_GB = 0.5
# Per weight, affine quantization stores `bits` plus a 16-bit scale and a 16-bit
# bias per group of 64: half a bit more.
_GROUP_OVERHEAD_BITS = 32 / GROUP_SIZE

_FLOAT_BITS = {"F64": 64, "F32": 32, "F16": 16, "BF16": 16, "F8_E4M3": 8, "F8_E5M2": 8}
_DTYPE_NAMES = {"float32": 32, "float16": 16, "bfloat16": 16}


class MemoryBudgetError(CandidateError):
    """The model would not fit the memory budget (raised before loading it)."""


# -- reading a model folder without loading it ---------------------------------


@dataclass(frozen=True)
class WeightsInfo:
    files: int
    bytes: int  # tensor bytes the headers declare
    float_bits: int | None  # bits of the dominant float dtype (16 for float16/bfloat16)


def read_weights_info(model_dir: Path) -> WeightsInfo:
    """Sizes and dtypes from the safetensors headers of `model*.safetensors` (no tensor is read)."""
    model_dir = Path(model_dir)
    files = weight_files(model_dir)
    if not files:
        raise CandidateError(f"{model_dir}: no model*.safetensors weights to estimate")
    total = 0
    by_bits: dict[int, int] = {}
    for file in files:
        for name, entry in _safetensors_header(file).items():
            if name == "__metadata__":
                continue
            start, end = entry["data_offsets"]
            total += end - start
            bits = _FLOAT_BITS.get(entry.get("dtype", ""))
            if bits:
                by_bits[bits] = by_bits.get(bits, 0) + end - start
    dominant = max(by_bits, key=by_bits.get) if by_bits else None
    return WeightsInfo(len(files), total, dominant)


def _safetensors_header(file: Path) -> dict:
    size = file.stat().st_size
    with file.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CandidateError(f"{file}: too short for a safetensors file ({size} bytes)")
        (length,) = struct.unpack("<Q", head)
        if length > 100_000_000 or 8 + length > size:
            raise CandidateError(f"{file}: not a safetensors file (header length {length}, file {size} bytes)")
        try:
            header = json.loads(fh.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CandidateError(f"{file}: unreadable safetensors header ({exc})") from None
    try:
        end = max((e["data_offsets"][1] for n, e in header.items() if n != "__metadata__"), default=0)
    except (KeyError, TypeError, IndexError):
        raise CandidateError(f"{file}: safetensors header without data_offsets") from None
    if 8 + length + end > size:
        raise CandidateError(
            f"{file}: truncated: its header declares {8 + length + end} bytes but the file has {size} "
            "(an interrupted download? delete it and fetch the model again)"
        )
    return header


def read_config(model_dir: Path) -> dict:
    file = Path(model_dir) / "config.json"
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CandidateError(f"{model_dir}: no config.json") from None
    except json.JSONDecodeError as exc:
        raise CandidateError(f"{file} line {exc.lineno}: not valid JSON ({exc.msg})") from None


def quantization_bits(config: Mapping[str, Any]) -> frozenset[int]:
    """Every bit width config.json's "quantization" names (empty when not quantized)."""
    quant = config.get("quantization") or config.get("quantization_config")
    if not isinstance(quant, Mapping) or "bits" not in quant:
        return frozenset()
    bits = {int(quant["bits"])}
    # mlx-lm records per-layer overrides (mixed recipes) as nested entries.
    bits |= {int(v["bits"]) for v in quant.values() if isinstance(v, Mapping) and "bits" in v}
    return frozenset(bits)


def stored_bits(model_dir: Path, config: Mapping[str, Any] | None = None) -> int | None:
    """Bits per weight as stored: the quantization's (the widest when mixed), else the float dtype's."""
    config = read_config(model_dir) if config is None else config
    qbits = quantization_bits(config)
    if qbits:
        return max(qbits)
    info = read_weights_info(model_dir) if weight_files(model_dir) else None
    if info and info.float_bits:
        return info.float_bits
    dtype = config.get("torch_dtype") or config.get("dtype") or (config.get("text_config") or {}).get("dtype")
    return _DTYPE_NAMES.get(str(dtype))


def estimate_memory_gb(model_dir: Path, bits: int | None = None) -> float:
    """Memory to load `model_dir`, in GB: tensor bytes plus the stated overhead.

    With `bits`, the estimate is for the model quantized to that many bits
    (affine, group size 64), scaled from what is stored now.
    """
    model_dir = Path(model_dir)
    weights = read_weights_info(model_dir).bytes
    if bits is not None:
        config = read_config(model_dir)
        now = stored_bits(model_dir, config)
        if now:
            per_weight_now = now + (_GROUP_OVERHEAD_BITS if quantization_bits(config) else 0)
            weights = weights * (bits + _GROUP_OVERHEAD_BITS) / per_weight_now
    return weights / 1e9 * (1 + OVERHEAD_FRACTION) + OVERHEAD_GB


def check_memory_budget(model_dir: Path, budget_gb: float, bits: int | None = None, label: str = "") -> float:
    """The estimate, or MemoryBudgetError before anything is loaded when it exceeds `budget_gb`."""
    estimate = estimate_memory_gb(model_dir, bits)
    if estimate > budget_gb:
        weights = (estimate - OVERHEAD_GB) / (1 + OVERHEAD_FRACTION)
        what = f"at {bits} bits " if bits is not None else ""
        raise MemoryBudgetError(
            f"{label or model_dir}: needs about {estimate:.1f} GB {what}(weights {weights:.1f} GB + "
            f"{OVERHEAD_FRACTION:.0%} + {OVERHEAD_GB} GB overhead) but the memory budget is {budget_gb:g} GB; "
            "refusing to load it (it would swap). Use a smaller quantization, or raise --memory-budget-gb "
            "if this machine really has the memory"
        )
    return estimate


def physical_memory_gb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return None


def disk_gb(folder: Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file()) / 1e9


# -- quantizing ----------------------------------------------------------------


@dataclass(frozen=True)
class Quantized:
    path: Path  # the folder at the target bits
    source_bits: int | None
    quantized_by_suite: bool
    seconds: float  # spent quantizing now (0 when cached or not needed)
    cached: bool


def ensure_bits(
    source: Path, work_dir: Path, bits: int = TARGET_BITS, *, fresh: bool = False, progress=None
) -> Quantized:
    """`source` itself when it is already at `bits`, else a cached copy quantized to `bits`.

    mlx-lm's `convert` refuses to dequantize and quantize in one call, and going
    through a float16 copy on disk would write ~48 GB for a 24B model; so this
    runs convert's own steps (lazy load_model, dequantize_model, quantize_model,
    save_model, save_config) in one pass, lazily, one shard at a time.
    """
    from punie_gates import artifacts
    from punie_gates.model.disk import estimate_quantized_bytes

    source = Path(source)
    config = read_config(source)
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
    what = f"{source.name} quantized to {bits} bits"
    with artifacts.building(final, parts, sources={"source": source}, needed_bytes=needed, what=what, work_dir=work_dir) as partial:
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


# -- loading -------------------------------------------------------------------


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
    bits: int = TARGET_BITS,
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


# -- the smoke test ------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str) -> str:
    """The first ```python block (else the first fenced block), else the whole text.

    A block the generation budget cut short (no closing fence) runs to the end.
    """
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    for lang, body in blocks:
        if lang in ("python", "py", "python3"):
            return body
    for lang, body in blocks:
        if not lang:
            return body
    return text


@dataclass(frozen=True)
class CodeCheck:
    ok: bool
    reason: str  # why not, or what was found
    functions: tuple[str, ...]  # names of the functions with a real body


def check_defines_function(text: str) -> CodeCheck:
    """Does `text` hold Python that parses and defines a function with a real body?

    A body of only a docstring, `pass` or `...` does not count: a stub is not
    a function that checks anything.
    """
    code = extract_code(text).strip()
    if not code:
        return CodeCheck(False, "no code in the answer", ())
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return CodeCheck(False, f"the code does not parse: line {exc.lineno}: {exc.msg}", ())
    defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    real = tuple(n.name for n in defined if not _is_stub(n.body))
    if real:
        return CodeCheck(True, f"defines {', '.join(real)}", real)
    if defined:
        return CodeCheck(False, f"only stub functions ({', '.join(n.name for n in defined)}): no body", ())
    return CodeCheck(False, "parses, but defines no function", ())


def _is_stub(body: list[ast.stmt]) -> bool:
    for stmt in body:
        if isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            if isinstance(stmt.value.value, str) or stmt.value.value is Ellipsis:
                continue
        return False
    return True


@dataclass(frozen=True)
class SmokeResult:
    prompt: str
    output: str
    check: CodeCheck
    prompt_tokens: int
    generated_tokens: int
    finish_reason: str | None
    seconds: float
    peak_memory_gb: float  # during generation, the resident model included

    @property
    def passed(self) -> bool:
        return self.check.ok

    def failure_message(self) -> str:
        quoted = self.output[:QUOTE_CHARS] + ("..." if len(self.output) > QUOTE_CHARS else "")
        return (
            f"smoke test: expected Python that parses and defines a function for {self.prompt!r}; "
            f"found: {self.check.reason} ({self.generated_tokens} tokens, finish: {self.finish_reason}). "
            f"Output (first {QUOTE_CHARS} chars): {quoted!r}"
        )

    def figures(self) -> dict[str, Any]:
        return {
            "smoke_passed": self.passed,
            "smoke_reason": self.check.reason,
            "smoke_output": self.output[:QUOTE_CHARS],
            "smoke_prompt_tokens": self.prompt_tokens,
            "smoke_generated_tokens": self.generated_tokens,
            "smoke_finish_reason": self.finish_reason,
            "smoke_seconds": round(self.seconds, 2),
            "smoke_peak_memory_gb": round(self.peak_memory_gb, 3),
        }


def run_smoke(model, tokenizer, prompt: str = SMOKE_PROMPT, max_tokens: int = SMOKE_MAX_TOKENS) -> SmokeResult:
    """Greedy answer to `prompt` through the chat template, judged by check_defines_function."""
    import mlx.core as mx
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    from punie_gates.prompts import render_prompt

    ids = render_prompt(tokenizer, [{"role": "user", "content": prompt}], None)
    mx.reset_peak_memory()
    started = time.perf_counter()
    text, last = "", None
    for last in stream_generate(model, tokenizer, ids, max_tokens=max_tokens, sampler=make_sampler(temp=0.0)):
        text += last.text
    seconds = time.perf_counter() - started
    return SmokeResult(
        prompt=prompt,
        output=text,
        check=check_defines_function(text),
        prompt_tokens=len(ids),
        generated_tokens=last.generation_tokens if last else 0,
        finish_reason=last.finish_reason if last else None,
        seconds=seconds,
        peak_memory_gb=mx.get_peak_memory() / 1e9,
    )
