"""Refuse a large write before it starts when the disk cannot hold it.

A 24B model quantized to 5 bits is ~16 GB, its float16 fuse ~48 GB. Running
out of space halfway wastes the hour already spent and leaves a partial folder
behind; so every large artifact is sized first (model.sizes: from safetensors
headers, no tensor is read) and compared with the free space of the disk it goes to.

    check_free_space(dest, estimate_quantized_bytes(model_dir, 5), what="...", work_dir=work)

raises DiskSpaceError naming the figures, the folder and what to do, before
anything is written. The estimates are approximate, so a headroom is added on top.

Tests replace the free-space probe with `free_space_override(fn)` (a fake disk),
so no real disk has to be filled.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from punie_gates.errors import DiskSpaceError  # noqa: F401  (raised here; defined with the other user errors)

# Room kept free beyond the estimate: the estimate is approximate, and a disk
# filled to the last byte breaks everything else on the machine too.
HEADROOM_FRACTION = 0.05
HEADROOM_BYTES = 64 * 1024 * 1024

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
