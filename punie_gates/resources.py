"""What one step of a gate cost: seconds, memory and disk.

    with measure("fuse", folders=[work_dir]) as step:
        fuse_and_quantize(...)
    step.cost  # StepCost(step="fuse", seconds=..., peak_memory_gb=..., ...)

Three figures, and what each one means:

- `peak_memory_gb`: MLX's peak allocation during the step. MLX's counter is
  reset when the step starts. Code inside the step that resets it again (the
  model loader does, to time its own load) leaves the peak since that reset, a
  lower bound for the step.
- `peak_rss_gb`: the process's peak resident set (what the OS saw: Python,
  tokenizers, memory-mapped files, MLX). On Linux the kernel's high-water mark
  is reset when the step starts (`/proc/self/clear_refs`), so this is the
  step's own peak (`rss_scope="step"`). Where it cannot be reset, the value is
  the process's peak since it started (`rss_scope="process"`): it covers the
  step only when the step set a new record; compare it with the value before.
- `bytes_written`: how much the watched folders grew, total file size after
  minus before (a folder inside another given one is counted once). A step
  that writes a temporary and deletes it shows only what stays; one that
  replaces a file shows the difference.

Steps may nest: an inner step resetting the counters first folds what the outer
ones saw so far into their peaks.

A leaf module: nothing from punie_gates, mlx imported only when present.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

_GB = 1e9
_HWM = re.compile(r"^VmHWM:\s+(\d+)\s+kB", re.MULTILINE)


@dataclass(frozen=True)
class StepCost:
    """What one measured step cost."""

    step: str  # the step's name, as given to measure()
    seconds: float  # wall time
    peak_memory_gb: float | None  # MLX's peak allocation during the step; None without mlx
    peak_rss_gb: float | None  # peak resident set, of the step or the process (see rss_scope)
    rss_scope: str | None  # "step" (high-water mark reset at the start), "process" (since start), None (unknown)
    bytes_written: int | None  # net growth of the watched folders in bytes; None when none were given
    ok: bool = True  # False when the step raised

    def to_json(self) -> dict:
        return asdict(self)


class Measurement:
    """The handle measure() yields; `cost` is set when the step ends (also when it raised)."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.cost: StepCost | None = None
        self._mlx_seen = 0.0  # bytes: MLX peaks folded in before a nested reset
        self._rss_seen = 0  # bytes: the same for the resident set


_active: list[Measurement] = []


def folder_bytes(folder: Path) -> int:
    """Total size of the regular files under `folder` (0 when it does not exist); symlinks are not followed."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                stat = os.lstat(os.path.join(root, name))
            except OSError:  # removed while we walked
                continue
            if not os.path.islink(os.path.join(root, name)):
                total += stat.st_size
    return total


def _outermost(folders: Iterable[Path]) -> list[Path]:
    """The folders without those inside another one (each file is counted once)."""
    absolute = sorted({Path(os.path.abspath(f)) for f in folders}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for folder in absolute:
        if not any(folder.is_relative_to(outer) for outer in kept):
            kept.append(folder)
    return kept


def _mlx():
    if "mlx.core" in sys.modules:
        return sys.modules["mlx.core"]
    try:
        import mlx.core as mx
    except ImportError:
        return None
    return mx


def _rss_peak() -> int | None:
    """The kernel's resident-set high-water mark of this process, in bytes (None off Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            found = _HWM.search(fh.read())
    except OSError:
        found = None
    if found:
        return int(found.group(1)) * 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # macOS reports bytes, Linux KiB


def _reset_rss_peak() -> bool:
    """Reset the high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _fold_into_active(mx) -> None:
    mlx_now = mx.get_peak_memory() if mx is not None else 0
    rss_now = _rss_peak() or 0
    for outer in _active:
        outer._mlx_seen = max(outer._mlx_seen, mlx_now)
        outer._rss_seen = max(outer._rss_seen, rss_now)


@contextlib.contextmanager
def measure(step: str, folders: Iterable[Path] = ()) -> Iterator[Measurement]:
    """Measure the block as step `step`; the yielded handle's `cost` holds the StepCost afterwards."""
    folders = _outermost(folders)
    handle = Measurement(step)
    mx = _mlx()
    _fold_into_active(mx)
    if mx is not None:
        mx.reset_peak_memory()
    scope = "step" if _reset_rss_peak() else "process"
    before = sum(folder_bytes(f) for f in folders) if folders else None
    _active.append(handle)
    started = time.perf_counter()
    ok = False
    try:
        yield handle
        ok = True
    finally:
        seconds = time.perf_counter() - started
        _active.remove(handle)
        mlx_peak = max(handle._mlx_seen, mx.get_peak_memory()) if mx is not None else None
        rss = _rss_peak()
        rss_peak = max(handle._rss_seen, rss) if rss is not None else None
        after = sum(folder_bytes(f) for f in folders) if folders else None
        handle.cost = StepCost(
            step=step,
            seconds=seconds,
            peak_memory_gb=None if mlx_peak is None else mlx_peak / _GB,
            peak_rss_gb=None if rss_peak is None else rss_peak / _GB,
            rss_scope=scope if rss_peak is not None else None,
            bytes_written=None if before is None else after - before,
            ok=ok,
        )
