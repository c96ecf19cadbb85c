"""Build locks: one builder per artifact key, across threads and processes.

`cached()` of a missing artifact takes an exclusive lock (fcntl.flock on a lock
file named after the artifact's path, in LOCK_DIR) and returns None holding it;
`building()` keeps it until the folder is published or the build failed. A second
process (or thread) asking for the same key meanwhile waits, printing that it
waits (at most `WAIT_S`), then reuses what the first one published. The lock
files live outside the work folder so a killed builder leaves nothing there; the
kernel drops its lock with it. A holder that raised between `cached()` and
`building()` keeps its claim until it calls either again, `release()`, or exits.
`punie-gates work prune` skips locked artifacts (punie_gates.model.workdir).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from punie_gates.errors import ArtifactBusyError
from punie_gates.progress import notice

# Where the build locks live; PUNIE_GATES_LOCK_DIR overrides (it must be the
# same for every process sharing a work folder, which /tmp is on one machine).
LOCK_DIR = Path(
    os.environ.get("PUNIE_GATES_LOCK_DIR") or Path(tempfile.gettempdir()) / f"punie-gates-locks-{os.getuid()}"
)
WAIT_S = 6 * 3600.0  # how long a second builder waits for the first (a fuse of a 24B model takes ~1 h)
NOTE_EVERY_S = 60.0  # how often a waiting builder says so
_POLL_S = 0.2


class _Claim:
    def __init__(self, fd: int, thread: int) -> None:
        self.fd, self.thread = fd, thread


_claims: dict[str, _Claim] = {}  # lock file -> the claim this process holds on it
_claims_guard = threading.Lock()


def lock_path(final: Path) -> Path:
    """The lock file of the artifact at `final` (named after its absolute, resolved path)."""
    resolved = os.path.realpath(os.path.abspath(final))
    return LOCK_DIR / f"{hashlib.sha256(resolved.encode('utf-8')).hexdigest()[:32]}.lock"


def claim(final: Path, *, wait_s: float | None = None) -> None:
    """Take the build lock of `final` for this thread, waiting for its holder (re-entrant per thread)."""
    path = lock_path(final)
    me = threading.get_ident()
    with _claims_guard:
        held = _claims.get(str(path))
        if held is not None and held.thread == me:
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    limit = WAIT_S if wait_s is None else wait_s
    started = time.monotonic()
    next_note = started
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                holder = _describe(read_holder(path))
                if waited >= limit:
                    raise ArtifactBusyError(
                        f"{final} is being built by {holder}; waited {waited:.0f} s for it to finish "
                        f"(at most {limit:.0f} s). Let that run finish and start again, stop it, or use "
                        "another --work-dir"
                    ) from None
                if time.monotonic() >= next_note:
                    notice(f"waiting for {holder} to finish building {final} "
                           f"(waited {waited:.0f} s, at most {limit:.0f} s)")  # fmt: skip
                    next_note += NOTE_EVERY_S
                time.sleep(_POLL_S)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "thread": me, "final": str(final),
                  "since": time.time()}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
    except BaseException:
        os.close(fd)
        raise
    with _claims_guard:
        _claims[str(path)] = _Claim(fd, me)


def release(final: Path) -> None:
    """Give back this thread's build lock of `final` (nothing when it holds none)."""
    path = str(lock_path(final))
    with _claims_guard:
        held = _claims.get(path)
        if held is None or held.thread != threading.get_ident():
            return
        del _claims[path]
    try:
        os.ftruncate(held.fd, 0)
        fcntl.flock(held.fd, fcntl.LOCK_UN)
    finally:
        os.close(held.fd)


def read_holder(path: Path) -> dict | None:
    """What the lock file at `path` says about its holder (pid, host, since), if anything."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')} (since {since})"


def building_now(final: Path) -> dict | None:
    """The holder of `final`'s build lock when someone (this process included) holds it, else None."""
    path = lock_path(final)
    if not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(path) or {}
    finally:
        os.close(fd)  # closing drops the lock if we got it
    return None
