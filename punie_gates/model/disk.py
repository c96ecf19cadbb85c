"""Refuse a large write before it starts when the disk cannot hold it.

A 24B model quantized to 5 bits is ~16 GB, its float16 fuse ~48 GB. Running
out of space halfway wastes the hour already spent and leaves a partial folder
behind; so every large artifact is sized first (from safetensors headers, no
tensor is read) and compared with the free space of the disk it goes to.

    check_free_space(dest, estimate_quantized_bytes(model_dir, 5), what="...", work_dir=work)

raises DiskSpaceError naming the figures, the folder and what to do, before
anything is written. The estimates are deliberately simple (every linear weight
whose width is a multiple of the group size is counted as quantized, every
other tensor at its float size) and a headroom is added on top.

Tests replace the free-space probe with `free_space_override(fn)` (a fake disk),
so no real disk has to be filled.
"""

from __future__ import annotations

from punie_gates.errors import DiskSpaceError  # noqa: F401  (raised here; defined with the other user errors)

import contextlib
import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Room kept free beyond the estimate: the estimate is approximate, and a disk
# filled to the last byte breaks everything else on the machine too.
HEADROOM_FRACTION = 0.05
HEADROOM_BYTES = 64 * 1024 * 1024

_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip
_FLOATS = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
_CONVERSION_DTYPES = {"float16": 2, "bfloat16": 2, "float32": 4}  # what mlx_lm convert casts to

FreeSpace = Callable[[Path], int]




@dataclass(frozen=True)
class SpaceCheck:
    """The figures of one passed check."""

    what: str  # the artifact, as the message names it
    checked: Path  # the existing folder whose disk was asked
    needed_bytes: int  # the estimate
    required_bytes: int  # estimate plus headroom
    free_bytes: int  # free on that disk before writing


def _disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


_free_space: FreeSpace = _disk_free


@contextlib.contextmanager
def free_space_override(fn: FreeSpace) -> Iterator[None]:
    """Use `fn(existing_folder) -> free bytes` instead of the real disk while the block runs (tests)."""
    global _free_space
    previous, _free_space = _free_space, fn
    try:
        yield
    finally:
        _free_space = previous


def nearest_existing(path: Path) -> Path:
    """`path` or its closest parent that exists (where the artifact's folder will be created)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Free bytes on the disk `path` (or its nearest existing parent) is on."""
    return _free_space(nearest_existing(path))


def required_with_headroom(needed_bytes: int) -> int:
    return int(needed_bytes * (1 + HEADROOM_FRACTION)) + HEADROOM_BYTES


def check_free_space(dest: Path, needed_bytes: int, *, what: str, work_dir: Path | None = None) -> SpaceCheck:
    """SpaceCheck when `dest`'s disk has room for `needed_bytes` plus headroom, else DiskSpaceError."""
    checked = nearest_existing(dest)
    free = _free_space(checked)
    required = required_with_headroom(needed_bytes)
    if free < required:
        where = f"the work folder {work_dir}" if work_dir is not None else str(dest)
        raise DiskSpaceError(
            f"not enough disk space for {what} in {where}: it needs about {_gb(needed_bytes)} "
            f"({_gb(required)} with {HEADROOM_FRACTION:.0%} + {_gb(HEADROOM_BYTES)} headroom) but only "
            f"{_gb(free)} is free on the disk of {checked}. Nothing was written. Free at least "
            f"{_gb(required - free)} there (`punie-gates work --work-dir {work_dir or checked} prune --stale` "
            "removes cached artifacts no run would reuse), or point --work-dir (PUNIE_GATES_WORK_DIR) at a "
            "disk with more room"
        )
    return SpaceCheck(what=what, checked=checked, needed_bytes=needed_bytes, required_bytes=required, free_bytes=free)


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if abs(n) >= 1e8 else f"{n / 1e6:.1f} MB"


# -- estimates -----------------------------------------------------------------


@dataclass(frozen=True)
class _Tensor:
    dtype: str
    shape: tuple[int, ...]

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.elements * _DTYPE_BYTES.get(self.dtype, 4)


def _tensors(model_dir: Path) -> dict[str, _Tensor]:
    # What mlx-lm keeps after its model's sanitize: a dropped vision tower is never written.
    from punie_gates.model.folder import kept_tensors

    return {name: _Tensor(dtype, shape) for name, (dtype, shape) in kept_tensors(Path(model_dir)).items()}


def _other_files_bytes(model_dir: Path) -> int:
    """Tokenizer, config and other non-weight files, which every derived model folder carries."""
    return sum(p.stat().st_size for p in Path(model_dir).iterdir() if p.is_file() and p.suffix != ".safetensors")


def _config(model_dir: Path) -> dict:
    from punie_gates.model.folder import read_config

    return read_config(model_dir)


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
    config = _config(model_dir)
    quant = config.get("quantization") or {}
    target = config.get("torch_dtype") or (config.get("text_config") or {}).get("dtype")
    tensors = _tensors(model_dir)
    total = 0
    for name, tensor in tensors.items():
        prefix, _, leaf = name.rpartition(".")
        if leaf in ("scales", "biases") and f"{prefix}.weight" in tensors and tensors[f"{prefix}.weight"].dtype == "U32":
            continue  # counted with its weight
        float_bytes = _CONVERSION_DTYPES.get(str(target)) or _DTYPE_BYTES.get(tensor.dtype, 2)
        dense = _dense_shape(name, tensor, tensors, quant)
        if dense is not None:
            scale_bytes = _CONVERSION_DTYPES.get(str(target)) or _DTYPE_BYTES.get(tensors[f"{prefix}.scales"].dtype, 2)
            total += _quantized_layer_bytes(*dense, bits, group_size, scale_bytes)
        elif leaf == "weight" and tensor.dtype in _FLOATS and len(tensor.shape) >= 2 and tensor.shape[-1] % group_size == 0:
            total += _quantized_layer_bytes(math.prod(tensor.shape[:-1]), tensor.shape[-1], bits, group_size, float_bytes)
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
    config = _config(model_dir)
    quant = config.get("quantization") or {}
    tensors = _tensors(model_dir)
    total = 0
    for name, tensor in tensors.items():
        prefix, _, leaf = name.rpartition(".")
        if leaf in ("scales", "biases") and f"{prefix}.weight" in tensors and tensors[f"{prefix}.weight"].dtype == "U32":
            continue
        dense = _dense_shape(name, tensor, tensors, quant)
        if dense is not None:
            total += dense[0] * dense[1] * _DTYPE_BYTES.get(tensors[f"{prefix}.scales"].dtype, 2)
        else:
            total += tensor.nbytes
    return total + _other_files_bytes(model_dir)


def estimate_checkpoint_bytes(trainable_bytes: int, optimizer_copies: int = 2) -> int:
    """A training checkpoint: the adapters plus the optimizer's state (Adam: two moments each) and a little JSON."""
    return trainable_bytes * (1 + optimizer_copies) + 1024 * 1024


def estimate_adapter_bytes(trainable_bytes: int) -> int:
    """A finished adapter folder: the adapters, their config, the loss curve."""
    return trainable_bytes + 1024 * 1024
