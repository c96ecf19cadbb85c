"""One-line progress for the long steps (conversion, training, fusion, generation).

A progress callable is `progress(step, done, total, **figures)`; figures such as
`loss=1.23` or `tokens_per_s=41.0` are shown as given. Lines are throttled (one
every ~2 s per step, plus the completing one) so a 500-iteration training run
does not bury pytest's summary, and `-q` prints nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol


class Progress(Protocol):
    def __call__(self, step: str, done: int, total: int, **figures: float | int | str) -> None: ...


def null_progress(step: str, done: int, total: int, **figures: float | int | str) -> None:
    """Progress that shows nothing."""


# -- notices: one line a user should see at once, from anywhere -----------------
# (a cached artifact reused, damaged or rebuilt, a training run resumed, a wait for
# another run). Commands print them on stderr; the pytest plugin routes them through
# its terminal reporter so that output capture does not swallow them.

_notice_writer: Callable[[str], None] | None = None


def notice(text: str) -> None:
    """Show `text` as one "[punie-gates] ..." line now (never throttled, shown even with -q)."""
    line = f"[punie-gates] {text}"
    if _notice_writer is not None:
        _notice_writer(line)
    else:
        print(line, file=sys.stderr, flush=True)


def set_notice_writer(write: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Send notices to `write` (None: stderr); returns the writer it replaces."""
    global _notice_writer
    previous, _notice_writer = _notice_writer, write
    return previous


def progress_printer(
    write: Callable[[str], None], *, interval: float = 2.0, clock: Callable[[], float] = time.monotonic
) -> Progress:
    """Progress that formats lines and hands them to `write`, at most one per `interval` per step."""
    started: dict[str, tuple[float, int]] = {}  # step -> (time, done) of its first call
    last_shown: dict[str, float] = {}

    def progress(step: str, done: int, total: int, **figures: float | int | str) -> None:
        now = clock()
        if step not in started or done < started[step][1]:  # a step that starts over begins a new timing
            started[step] = (now, done)
            last_shown.pop(step, None)
        complete = total > 0 and done >= total
        if not complete and step in last_shown and now - last_shown[step] < interval:
            return
        last_shown[step] = now
        write(format_line(step, done, total, figures, eta_s=_eta(started[step], now, done, total)))
        if complete:
            started.pop(step, None)
            last_shown.pop(step, None)

    return progress


def format_line(step: str, done: int, total: int, figures: dict, *, eta_s: float | None) -> str:
    parts = [f"[punie-gates] {step} {done}/{total}" if total else f"[punie-gates] {step} {done}"]
    if total:
        parts[0] += f" ({100 * done / total:.0f}%)"
    parts += [f"{key}={_fmt(value)}" for key, value in figures.items()]
    if eta_s is not None:
        parts.append(f"ETA {format_seconds(eta_s)}")
    return " ".join(parts)


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _eta(start: tuple[float, int], now: float, done: int, total: int) -> float | None:
    t0, done0 = start
    if not total or done >= total or done <= done0 or now <= t0:
        return None
    rate = (done - done0) / (now - t0)
    return (total - done) / rate


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
