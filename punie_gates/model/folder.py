"""A model folder as mlx-lm sees it, read without loading it.

config.json (its model types, quantization bits), the safetensors headers (tensor
bytes and dtypes), the tensors mlx-lm keeps and the size on disk: every gate and
command that asks one of these questions asks it here (model.sizes estimates from them).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie_gates.errors import CandidateError
from punie_gates.inputs import readers
from punie_gates.inputs.option_table import DEFAULT_CANDIDATE

_FLOAT_BITS = {"F64": 64, "F32": 32, "F16": 16, "BF16": 16, "F8_E4M3": 8, "F8_E5M2": 8}
_DTYPE_NAMES = {"float32": 32, "float16": 16, "bfloat16": 16}


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
    with readers.open_regular(file, "safetensors file", CandidateError) as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CandidateError(f"{file}: too short for a safetensors file ({size} bytes)")
        (length,) = struct.unpack("<Q", head)
        if length > 100_000_000 or 8 + length > size:
            raise CandidateError(f"{file}: not a safetensors file (header length {length}, file {size} bytes)")
        try:
            header = readers.parse_json(fh.read(length).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:  # not JSON, or nested too deep
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


# -- what mlx-lm keeps --------------------------------------------------------------

# safetensors dtypes as mlx 0.32 reads them: the FP8 ones come back as raw uint8 bytes.
_MX_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "uint8", "F8_E5M2": "uint8", "F8_E8M0": "uint8", "BOOL": "bool_",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8",
}  # fmt: skip
_SAFETENSORS_DTYPES = {mx_name: st for st, mx_name in _MX_DTYPES.items() if not st.startswith("F8_")}
# Dtypes mlx-lm cannot load faithfully, and what they are.
UNFAITHFUL_DTYPES = {"F8_E4M3": "FP8 (E4M3)", "F8_E5M2": "FP8 (E5M2)"}


def _raw_tensors(model_dir: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    found = {}
    for file in weight_files(Path(model_dir)):
        for name, entry in _safetensors_header(file).items():
            if name != "__metadata__":
                found[name] = (str(entry.get("dtype", "")), tuple(entry.get("shape", ())))
    return found


def _sanitized(config: Mapping[str, Any], tensors: Mapping[str, tuple[str, tuple[int, ...]]]):
    """`tensors` after the model class's own `sanitize`, as mlx-lm's load_model runs it, or
    None when mlx-lm has no class for this config. Placeholders are lazy zeros: nothing
    is allocated, so a 24B layout costs milliseconds."""
    import mlx.core as mx

    try:
        from mlx_lm.utils import _get_classes  # what load_model calls (its get_model_classes default)

        model_class, args_class = _get_classes(config=dict(config))
        model = model_class(args_class.from_dict(dict(config)))
    except Exception:  # an unknown model type, or a config mlx-lm rejects: its load says why
        return None
    placeholders = {
        name: mx.zeros(shape, dtype=getattr(mx, _MX_DTYPES.get(dtype, "float32")))
        for name, (dtype, shape) in tensors.items()
    }
    try:
        return model.sanitize(placeholders) if hasattr(model, "sanitize") else placeholders
    except Exception:  # a checkpoint the model's sanitize cannot read: loading will say so
        return None


def kept_tensors(model_dir: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (safetensors dtype, shape) of the weights mlx-lm keeps from `model_dir`.

    Read from the headers and passed through the model class's own `sanitize`, so
    what mlx-lm drops (a mistral3 checkpoint's `vision_tower` and
    `multi_modal_projector`, rotary caches, FP8 activation scales) is not counted,
    and an FP8 weight folded with its scale counts in the scale's dtype. Without a
    model class for the config the headers are taken as they are. No tensor is read.
    """
    model_dir = Path(model_dir)
    raw = _raw_tensors(model_dir)
    sanitized = _sanitized(read_config(model_dir), raw)
    if sanitized is None:
        return raw
    return {
        name: (_SAFETENSORS_DTYPES.get(str(a.dtype).removeprefix("mlx.core."), "F32"), tuple(a.shape))
        for name, a in sanitized.items()
    }


def check_loadable(model_dir: Path, label: str = "") -> None:
    """CandidateError, before anything is quantized or loaded, when mlx-lm cannot load the
    weights faithfully: FP8 (F8_E4M3/F8_E5M2) tensors that mlx reads as raw uint8 bytes.

    mlx-lm's sanitize then multiplies those bytes by their scales (ministral3 does), so
    the model would load garbage and write gibberish, blamed on the model. FP8 that mlx-lm
    keeps packed as mxfp8 (power-of-two ue8m0 scales over 32x32 blocks) loads fine; FP8
    tensors that sanitize drops (a vision tower) do not matter.
    """
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    quant = config.get("quantization_config") or (config.get("text_config") or {}).get("quantization_config") or {}
    if isinstance(quant, Mapping) and (
        quant.get("quant_method") == "mxfp8"
        or (
            quant.get("quant_method") == "fp8"
            and quant.get("scale_fmt") == "ue8m0"
            and list(quant.get("weight_block_size") or ()) == [32, 32]
        )
    ):
        return
    raw = _raw_tensors(model_dir)
    unfaithful = {name: entry for name, entry in raw.items() if entry[0] in UNFAITHFUL_DTYPES}
    if not unfaithful:
        return
    survivors = _sanitized(config, unfaithful)
    kept = list(survivors) if survivors is not None else list(unfaithful)
    if not kept:
        return  # only dropped tensors (a vision tower) are FP8
    dtype = UNFAITHFUL_DTYPES[next(iter(unfaithful.values()))[0]]
    method = (
        f" (config.json quantization_config: quant_method {quant.get('quant_method')!r})"
        if quant.get("quant_method")
        else ""
    )

    raise CandidateError(
        f"{label or model_dir}: {len(kept)} weight tensors mlx-lm would load are {dtype}{method}, e.g. {kept[0]}; "
        "mlx reads FP8 as raw uint8 bytes, so mlx-lm would multiply bytes by their scales and load garbage "
        "weights (gibberish blamed on the model). Refused before quantizing or loading anything. Use an MLX "
        f"conversion instead (mlx-community publishes 4-bit, 8-bit and bf16 ones, e.g. {DEFAULT_CANDIDATE})"
    )


def physical_memory_gb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return None


def disk_gb(folder: Path) -> float:
    """Bytes on disk of the files in a model folder, in GB (1e9)."""
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file()) / 1e9


# -- quantizing ----------------------------------------------------------------


# -- loading -------------------------------------------------------------------


TOKENIZER_MARKERS = ("tekken.json", "tokenizer.json", "tokenizer.model")


_MISTRAL_TYPES = {"mistral", "mistral3", "ministral", "ministral3", "mistral4", "mixtral", "pixtral"}


def config_family(path: Path) -> str:
    """ "mistral", "qwen3" or "unknown", from config.json's model types, else the tokenizer files."""
    types = set()
    config = read_config(Path(path), required=False)
    if config:
        types.add(str(config.get("model_type", "")))
        text = config.get("text_config")
        if isinstance(text, dict):
            types.add(str(text.get("model_type", "")))
    if types & _MISTRAL_TYPES:
        return "mistral"
    if any(t.startswith("qwen3") for t in types):
        return "qwen3"
    if (Path(path) / "tekken.json").is_file():
        return "mistral"
    return "unknown"


def weight_files(path: Path) -> list[Path]:
    """The safetensors files mlx-lm would load from `path`."""
    return sorted(Path(path).glob("model*.safetensors"))


def read_config(path: Path, *, required: bool = True, label: str = "", fix: str = "") -> dict | None:
    """config.json as a dict; a missing or malformed one raises CandidateError naming the
    file, line and fix (or gives None when not `required`)."""
    file = Path(path) / "config.json"
    who = f"candidate {label!r}: " if label else ""
    fix = f"; {fix}" if fix else ""
    if not os.path.lexists(file):
        if required:
            raise CandidateError(f"{who}no config.json in {path}{fix}")
        return None
    try:  # a FIFO, folder, non-UTF-8 or deeply nested config.json is refused, never waited on or crashed on
        text = readers.read_text(file, "config.json", CandidateError)
        config = readers.parse_json(text)
    except CandidateError as exc:
        if required:
            raise CandidateError(f"{who}{exc}{fix}") from None
        return None
    except json.JSONDecodeError as exc:
        if required:
            raise CandidateError(
                f"{who}{file} line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})"
            ) from None
        return None
    except readers.NestingError as exc:
        if required:
            raise CandidateError(f"{who}{file}: config.json is {exc}") from None
        return None
    if not isinstance(config, dict):
        if required:
            raise CandidateError(f"{who}{file} line 1: expected a JSON object")
        return None
    return config
