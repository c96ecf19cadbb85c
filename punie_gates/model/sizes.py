"""How many bytes a model takes: its weights as kept, quantized or fused, a training checkpoint, and a load's memory.

Every estimate reads safetensors headers and config.json (model.folder), never a
tensor, and counts only what mlx-lm keeps after its model's sanitize. The disk
estimates feed model.disk's free-space check before a large write; the memory
estimate refuses a hopeless load before it swaps. They are deliberately simple
(every linear weight whose width is a multiple of the group size is counted as
quantized, every other tensor at its float size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from punie_gates.errors import CandidateError, MemoryBudgetError
from punie_gates.model.folder import kept_tensors, read_config, weight_files

GROUP_SIZE = 64  # mlx-lm's default for affine quantization

# Loaded weights are not all a model needs: the KV cache, activations and MLX's
# buffers come on top. 10% plus half a GB covers greedy generation of a few
# thousand tokens on a dense 24B model; the measured peak is what Gate 1 judges,
# this estimate only refuses hopeless loads early.
OVERHEAD_FRACTION = 0.10
OVERHEAD_GB = 0.5

DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip
_FLOATS = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
_CONVERSION_DTYPES = {"float16": 2, "bfloat16": 2, "float32": 4}  # what mlx_lm convert casts to


@dataclass(frozen=True)
class _Tensor:
    dtype: str
    shape: tuple[int, ...]

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.elements * DTYPE_BYTES.get(self.dtype, 4)


def _tensors(model_dir: Path) -> dict[str, _Tensor]:
    # What mlx-lm keeps after its model's sanitize: a dropped vision tower is never written.
    return {name: _Tensor(dtype, shape) for name, (dtype, shape) in kept_tensors(Path(model_dir)).items()}


def _other_files_bytes(model_dir: Path) -> int:
    """Tokenizer, config and other non-weight files, which every derived model folder carries."""
    return sum(p.stat().st_size for p in Path(model_dir).iterdir() if p.is_file() and p.suffix != ".safetensors")


def _source_bits(quant: dict, prefix: str) -> int:
    layer = quant.get(prefix)
    if isinstance(layer, dict) and "bits" in layer:
        return int(layer["bits"])
    return int(quant.get("bits", 4))


def _dense_shape(name: str, tensor: _Tensor, tensors: dict[str, _Tensor], quant: dict) -> tuple[int, int] | None:
    """(rows, input width) of a quantized weight in the folder, unpacked; None when it is not one."""
    prefix = name[: -len(".weight")] if name.endswith(".weight") else None
    if prefix is None or f"{prefix}.scales" not in tensors or tensor.dtype != "U32":
        return None
    bits = _source_bits(quant, prefix)
    return math.prod(tensor.shape[:-1]), tensor.shape[-1] * 32 // bits


def _quantized_layer_bytes(rows: int, width: int, bits: int, group_size: int, scale_bytes: int) -> int:
    # packed weights plus one scale and one bias per group (affine)
    return rows * width * bits // 8 + 2 * rows * (width // group_size) * scale_bytes


def estimate_quantized_bytes(model_dir: Path, bits: int, group_size: int = 64) -> int:
    """Bytes of `model_dir` quantized to `bits` (affine, `group_size`), from its headers and config.

    Works from a float or an already quantized folder (each quantized layer is
    counted at its unpacked width). Floats take the dtype mlx-lm's convert casts
    to (the config's torch_dtype when it names one), else their own.
    """
    return quantized_weight_bytes(model_dir, bits, group_size) + _other_files_bytes(model_dir)


def quantized_weight_bytes(model_dir: Path, bits: int, group_size: int = 64) -> int:
    """The weights' share of estimate_quantized_bytes (what a load of that folder holds)."""
    config = read_config(model_dir)
    quant = config.get("quantization") or {}
    target = config.get("torch_dtype") or (config.get("text_config") or {}).get("dtype")
    tensors = _tensors(model_dir)
    total = 0
    for name, tensor in _counted(tensors):
        prefix, _, leaf = name.rpartition(".")
        float_bytes = _CONVERSION_DTYPES.get(str(target)) or DTYPE_BYTES.get(tensor.dtype, 2)
        dense = _dense_shape(name, tensor, tensors, quant)
        if dense is not None:
            scale_bytes = _CONVERSION_DTYPES.get(str(target)) or DTYPE_BYTES.get(tensors[f"{prefix}.scales"].dtype, 2)
            total += _quantized_layer_bytes(*dense, bits, group_size, scale_bytes)
        elif (
            leaf == "weight"
            and tensor.dtype in _FLOATS
            and len(tensor.shape) >= 2
            and tensor.shape[-1] % group_size == 0
        ):
            total += _quantized_layer_bytes(
                math.prod(tensor.shape[:-1]), tensor.shape[-1], bits, group_size, float_bytes
            )
        elif tensor.dtype in _FLOATS:
            total += tensor.elements * float_bytes
        else:
            total += tensor.nbytes
    return total


def estimate_fused_bytes(model_dir: Path) -> int:
    """Bytes of the dequantized fuse of `model_dir` (`mlx_lm fuse --dequantize`): every weight as a float.

    A quantized layer comes back in its scales' dtype (float16 or bfloat16 for a
    real model: the "float16 fuse"), every other tensor keeps its own.
    """
    config = read_config(model_dir)
    quant = config.get("quantization") or {}
    tensors = _tensors(model_dir)
    total = 0
    for name, tensor in _counted(tensors):
        prefix = name.rpartition(".")[0]
        dense = _dense_shape(name, tensor, tensors, quant)
        if dense is not None:
            total += dense[0] * dense[1] * DTYPE_BYTES.get(tensors[f"{prefix}.scales"].dtype, 2)
        else:
            total += tensor.nbytes
    return total + _other_files_bytes(model_dir)


def _counted(tensors: dict) -> list:
    """(name, tensor) of every tensor counted on its own: a quantized weight's scales and
    biases are counted with that weight."""
    out = []
    for name, tensor in tensors.items():
        prefix, _, leaf = name.rpartition(".")
        weight = tensors.get(f"{prefix}.weight")
        if leaf in ("scales", "biases") and weight is not None and weight.dtype == "U32":
            continue
        out.append((name, tensor))
    return out


def estimate_checkpoint_bytes(trainable_bytes: int, optimizer_copies: int = 2) -> int:
    """A training checkpoint: the adapters plus the optimizer's state (Adam: two moments each) and a little JSON."""
    return trainable_bytes * (1 + optimizer_copies) + 1024 * 1024


def estimate_adapter_bytes(trainable_bytes: int) -> int:
    """A finished adapter folder: the adapters, their config, the loss curve."""
    return trainable_bytes + 1024 * 1024


def estimate_weight_bytes(model_dir: Path, bits: int | None = None) -> int:
    """Bytes of the weights mlx-lm keeps from `model_dir` (kept_tensors), as stored, or
    quantized to `bits` (affine, group size 64) the way the suite quantizes them."""
    model_dir = Path(model_dir)
    if not weight_files(model_dir):
        raise CandidateError(f"{model_dir}: no model*.safetensors weights to estimate")
    if bits is None:
        return sum(math.prod(shape) * DTYPE_BYTES.get(dtype, 4) for dtype, shape in kept_tensors(model_dir).values())
    return quantized_weight_bytes(model_dir, bits, GROUP_SIZE)


def estimate_memory_gb(model_dir: Path, bits: int | None = None) -> float:
    """Memory to load `model_dir`, in GB: the weights mlx-lm keeps plus the stated overhead.

    With `bits`, the estimate is for the model quantized to that many bits (affine,
    group size 64): every weight mlx-lm quantizes at `bits` plus its scales and biases,
    the rest (norms) in their float dtype. A vision tower that sanitize drops costs nothing.
    """
    weights = estimate_weight_bytes(Path(model_dir), bits)
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
