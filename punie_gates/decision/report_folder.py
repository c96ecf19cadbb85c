"""The report folder of one run: held by that run alone, and never holding an older run's files.

A run that starts (`open_report_folder`):

1. takes the folder's lock (fcntl, a lock file named after the folder's path in
   punie_gates.model.artifacts.LOCK_DIR): a second run on the same --report-dir
   is refused at once with ReportFolderBusyError, naming the first;
2. moves the previous run's files into `previous/<when>-<run id>/`: the files its
   `run.json` lists, files that run created (newer than its start and not there
   before it, for a run that was killed before it could list them), and the
   names the suite writes (`gate-report.*`, `gate<N>-*`, `bench.json`, leftover
   temporary files); other files in the folder are left alone. The newest
   KEEP_PREVIOUS such folders are kept;
3. writes `run.json` (run id, pid, start, state "running", the files already
   there). A folder that cannot take it (full, read-only) stops the run before
   anything heavy runs.

At the end `finish` records the state (finished, interrupted, not judged) and
every file the run wrote, in run.json and (through the caller) in gate-report.json.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from punie_gates.errors import ReportFolderBusyError, UserError
from punie_gates.inputs import readers
from punie_gates.model.artifacts import LOCK_DIR
from punie_gates.progress import notice

RUN_FILE = "run.json"
PREVIOUS = "previous"
KEEP_PREVIOUS = 5
REPORT_FILES = ("gate-report.json", "gate-report.md", "gate-report.html")
# What the suite writes into a report folder (also found without a run.json).
SUITE_PATTERNS = ("gate-report.*", "gate[0-9]-*", "gate[0-9]_*", "bench.json", RUN_FILE, ".gate*.tmp", ".*.tmp")


class ReportFolderError(UserError, OSError):
    """The report folder cannot be created or written (full, read-only, not a folder)."""


@dataclass
class ReportFolder:
    """A report folder this run holds."""

    path: Path
    """The folder (--report-dir)."""
    run_id: str
    """This run's id (also in run.json and gate-report.json)."""
    started: float
    """When the run took the folder (seconds since the epoch)."""
    moved: tuple[str, ...] = ()
    """Names of the previous run's files moved aside."""
    moved_to: Path | None = None
    """Where they went (None: nothing to move)."""
    previous_state: str | None = None
    """What the previous run's run.json said about it ("running": it never finished)."""
    kept: frozenset[str] = frozenset()
    """Files in the folder that are not this run's (there before it, not the suite's)."""
    _fd: int | None = field(default=None, repr=False)

    def written(self) -> list[str]:
        """The files (top level) this run has written so far, by name."""
        try:
            names = {p.name for p in self.path.iterdir() if p.is_file()}
        except OSError:
            return []
        return sorted(names - set(self.kept) - {RUN_FILE})

    def finish(self, state: str, files: list[str]) -> None:
        """Record how the run ended and what it wrote (best effort: the report says so itself)."""
        doc = self._record(state) | {"files": files, "finished": time.time()}
        try:
            _write_json(self.path / RUN_FILE, doc)
        except OSError:
            pass

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def _record(self, state: str) -> dict:
        return {
            "run_id": self.run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": self.started,
            "state": state,
            "argv": sys.argv,
            "kept": sorted(self.kept),
        }


def lock_file(folder: Path) -> Path:
    resolved = os.path.realpath(os.path.abspath(folder))
    return LOCK_DIR / f"report-{hashlib.sha256(resolved.encode('utf-8')).hexdigest()[:32]}.lock"


def holder_of(folder: Path) -> dict | None:
    """What the lock file says about the run holding `folder` (pid, host, since)."""
    try:
        return json.loads(lock_file(folder).read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None


def open_report_folder(folder: Path) -> ReportFolder:
    """Take `folder` for this run: lock it, move the previous run's files aside, write run.json."""
    folder = Path(folder)
    fd = _lock(folder)
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReportFolderError(f"--report-dir {folder} cannot be created: {exc.strerror or exc}") from None
        run = ReportFolder(folder, uuid.uuid4().hex[:12], time.time(), _fd=fd)
        _move_previous(run)
        run.kept = frozenset(p.name for p in folder.iterdir() if p.name != PREVIOUS)
        try:
            _write_json(folder / RUN_FILE, run._record("running") | {"files": []})
        except OSError as exc:
            raise ReportFolderError(
                f"--report-dir {folder} cannot be written ({exc.strerror or exc}): free space there or "
                "pass another --report-dir; nothing was run"
            ) from None
        return run
    except BaseException:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise


def _lock(folder: Path) -> int:
    path = lock_file(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = holder_of(folder) or {}
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0))) if holder else "?"
        raise ReportFolderBusyError(
            f"--report-dir {folder} is in use by another run (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}, since {since}); its report would be overwritten: wait for it to finish "
            "or pass another --report-dir"
        ) from None
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "folder": str(folder)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
    return fd


def _previous_files(folder: Path, previous: dict | None) -> list[Path]:
    entries = [p for p in folder.iterdir() if p.name != PREVIOUS and (p.is_file() or p.is_symlink())]
    listed = set(previous.get("files") or []) if previous else set()
    kept = set(previous.get("kept") or []) if previous else set()
    started = float(previous.get("started") or 0) if previous else None

    def theirs(p: Path) -> bool:
        if p.name in listed or any(fnmatch.fnmatch(p.name, pattern) for pattern in SUITE_PATTERNS):
            return True
        # A run killed before it could list its files: what it created after it started.
        return started is not None and p.name not in kept and _mtime(p) >= started

    return sorted(p for p in entries if theirs(p))


def _move_previous(run: ReportFolder) -> None:
    folder = run.path
    previous = _read_json(folder / RUN_FILE)
    files = _previous_files(folder, previous)
    if not files:
        return
    state = (previous or {}).get("state")
    if state == "running" and not _alive(previous):
        state = "killed"  # it never recorded an end: killed, or the machine stopped
    run.previous_state = state
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(float((previous or {}).get("started") or _mtime(files[0]))))
    dest = folder / PREVIOUS / f"{stamp}-{(previous or {}).get('run_id') or 'unknown'}"
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for path in files:
            os.replace(path, dest / path.name)
    except OSError as exc:
        # No room to move them: an old verdict must still never pass for this run's.
        for path in files:
            if path.exists() and (path.name in REPORT_FILES or path.name == RUN_FILE or path.name.endswith(".tmp")):
                path.unlink(missing_ok=True)
        notice(f"could not move the previous run's report files aside ({exc.strerror or exc}); "
               f"removed its gate-report files from {folder}")  # fmt: skip
        return
    run.moved, run.moved_to = tuple(p.name for p in files), dest
    ended = {"killed": " (that run never finished: it was killed or the machine stopped)",
             "running": " (that run is still alive?)"}.get(state or "", "")  # fmt: skip
    notice(f"moved the previous run's {len(files)} report file{'s' if len(files) != 1 else ''} to {dest}{ended}")
    _prune_previous(folder / PREVIOUS)


def _prune_previous(root: Path) -> None:
    olds = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
    for old in olds[:-KEEP_PREVIOUS]:
        shutil.rmtree(old, ignore_errors=True)


def _alive(record: dict | None) -> bool:
    if not record or record.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(record.get("pid", -1)), 0)
    except (ProcessLookupError, ValueError, OverflowError):
        return False
    except PermissionError:
        return True
    return int(record.get("pid", -1)) != os.getpid()


def _write_json(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_json(path: Path) -> dict | None:
    try:  # a FIFO, binary or deeply nested run.json is no record of a run: ignored, never a hang or a crash
        value = readers.read_json(path, "run record")
    except UserError:
        return None
    return value if isinstance(value, dict) else None


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0
