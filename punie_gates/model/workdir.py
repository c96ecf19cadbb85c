"""The work folder under control: what is cached there, and what can go.

A work folder holds keyed artifacts (punie_gates.model.artifacts):
`<work>/<kind>/<key>` with a COMPLETE manifest, plus what builds leave while
they run or when they die: `<key>.partial-<pid>` (a build), `<key>.stale-<pid>`
(a removal), `<key>.resume` (a training run's checkpoints). Every one of those
names starts with the 16 hex digits of a key; anything else is not ours and is
listed as "other" and never removed.

An entry is **stale** when no run with the inputs and libraries present now
would reuse it. Precisely, one of:

1. `partial`/`leftover`: a `.partial-<pid>` or `.stale-<pid>` folder whose
   process is gone (a killed build or removal; the next build sweeps it too);
2. `incomplete`: a key folder without a valid manifest (missing, unreadable, or
   a listed file missing or resized): `cached()` never returns it;
3. other library versions: its recorded inputs name mlx / mlx-lm /
   transformers / mistral-common versions other than the installed ones; every
   key includes them, so no run here computes that key again;
4. its sources changed: a folder it was built from (recorded at build time) is
   gone, or a file of it no longer has the fingerprint its key recorded. A
   source that was itself an artifact is exempt from "gone": rebuilding it
   recreates it at the same path with the same content;
5. a `.resume` folder (training checkpoints) whose adapters are complete
   (training finished), that holds no complete checkpoint, or whose recorded
   inputs are stale by 3 or 4.

Never stale, whatever the above says: an entry whose build lock is held (a
running session is building it: punie_gates.model.artifacts.building_now) and a
partial folder whose process is alive. Removal takes the artifact's build lock
first, so no build can start on it meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from punie_gates.model import artifacts
from punie_gates.model.training import RESUME_SOURCES
from punie_gates.resources import folder_bytes

_KEY = re.compile(r"^(?P<key>[0-9a-f]{16})(?:\.(?P<suffix>partial|stale)-(?P<pid>\d+)|(?P<resume>\.resume))?$")
RESUME_INPUTS = artifacts.INPUTS


@dataclass(frozen=True)
class Entry:
    """One cached artifact (or leftover) in a work folder."""

    name: str  # "<kind>/<folder>", relative to the work folder
    path: Path
    kind: str  # the artifact kind: the folder it sits in (quantized, lora, fused-q5, ...)
    state: str  # complete | incomplete | partial | leftover | resume | other
    bytes: int  # total size of its files
    built_at: float | None  # when it was published (its manifest's mtime)
    last_used: float | None  # when a run last reused it (LAST_USED), else built_at
    building: dict | None  # the build lock's holder (or the live pid of a partial) when in use now
    stale: str | None  # why no current input would reuse it; None: keep it
    inputs: dict | None = field(default=None, repr=False)  # its recorded key parts
    sources: dict = field(default_factory=dict, repr=False)  # {role: {"path", "artifact"}} recorded at build

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "kind": self.kind,
            "state": self.state,
            "bytes": self.bytes,
            "built_at": self.built_at,
            "last_used": self.last_used,
            "building": self.building,
            "stale": self.stale,
            "sources": self.sources,
        }


def scan(work_dir: Path) -> list[Entry]:
    """Every entry under `work_dir`, sorted by name (an absent folder has none)."""
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        return []
    versions = _json_safe(artifacts.library_versions())
    found = []
    for kind_dir in sorted(p for p in work_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for folder in sorted(p for p in kind_dir.iterdir() if p.is_dir()):
            found.append(_entry(work_dir, kind_dir, folder, versions))
    return found


def _entry(work_dir: Path, kind_dir: Path, folder: Path, versions: dict) -> Entry:
    match = _KEY.match(folder.name)
    common = {"name": f"{kind_dir.name}/{folder.name}", "path": folder, "kind": kind_dir.name, "bytes": _size(folder)}
    if match is None:
        return Entry(**common, state="other", built_at=None, last_used=None, building=None, stale=None)
    final = kind_dir / match["key"]
    holder = artifacts.building_now(final)
    if match["suffix"]:
        pid = int(match["pid"])
        state = "partial" if match["suffix"] == "partial" else "leftover"
        alive = pid == os.getpid() or artifacts._pid_alive(pid)
        building = holder or ({"pid": pid} if alive else None)
        stale = None if building else f"left by process {pid}, which is gone"
        return Entry(**common, state=state, built_at=None, last_used=None, building=building, stale=stale)
    if match["resume"]:
        inputs = _read_json(folder / RESUME_INPUTS)
        sources = _resume_sources(folder)
        stale = _resume_stale(folder, final, inputs, sources, versions)
        return Entry(**common, state="resume", built_at=None, last_used=_mtime(folder), building=holder,
                     stale=None if holder else stale, inputs=inputs, sources=sources)  # fmt: skip
    manifest = artifacts.read_manifest(folder)
    inputs = _read_json(folder / artifacts.INPUTS)
    sources = (manifest or {}).get("sources") or {}
    if not artifacts.is_complete(folder):
        stale = "incomplete: no valid COMPLETE manifest, so no run reuses it (the next build replaces it)"
        return Entry(**common, state="incomplete", built_at=None, last_used=None, building=holder,
                     stale=None if holder else stale, inputs=inputs, sources=sources)  # fmt: skip
    built = _mtime(folder / artifacts.MARKER)
    return Entry(**common, state="complete", built_at=built, last_used=artifacts.last_used(folder), building=holder,
                 stale=None if holder else _inputs_stale(inputs, sources, versions),
                 inputs=inputs, sources=sources)  # fmt: skip


def _resume_sources(folder: Path) -> dict:
    recorded = _read_json(folder / RESUME_SOURCES) or {}
    return {role: {"path": path, "artifact": artifacts.is_complete(Path(path))} for role, path in recorded.items()}


def _resume_stale(folder: Path, final: Path, inputs, sources: dict, versions: dict) -> str | None:
    if artifacts.is_complete(final):
        return f"training finished ({final.name} is complete); these checkpoints are left over"
    if not any(artifacts.is_complete(p) for p in folder.glob("ckpt-*")):
        return "holds no complete checkpoint to resume from"
    return _inputs_stale(inputs, sources, versions)


def _inputs_stale(inputs, sources: dict, versions: dict) -> str | None:
    """Rules 3 and 4 of the module docstring, on recorded key parts and sources."""
    if isinstance(inputs, dict) and isinstance(inputs.get("versions"), dict):
        recorded = inputs["versions"]
        changed = sorted(k for k in set(recorded) | set(versions) if recorded.get(k) != versions.get(k))
        if changed:
            what = ", ".join(f"{k} {recorded.get(k)} -> {versions.get(k)}" for k in changed)
            return f"built with other library versions ({what})"
    for role, source in sorted(sources.items()):
        path = Path(source.get("path", ""))
        if not path.is_dir():
            if source.get("artifact"):
                continue
            return f"its {role} {path} is gone"
        fingerprints = inputs.get(role) if isinstance(inputs, dict) else None
        if not isinstance(fingerprints, dict):
            continue
        for name, recorded in sorted(fingerprints.items()):
            if not (isinstance(recorded, dict) and "size" in recorded):
                continue
            try:
                now = artifacts.file_fingerprint(path / name)
            except OSError:
                return f"its {role} {path} no longer has {name}"
            if now != recorded:
                return f"its {role} {path / name} changed since it was built"
    return None


def resolve(work_dir: Path, name: str) -> Entry:
    """The entry called `name`: "<kind>/<folder>", a folder name, a unique key prefix, or a path."""
    entries = scan(work_dir)
    as_path = Path(name).expanduser()
    hits = [e for e in entries if e.name == name or (as_path.is_absolute() and e.path.absolute() == as_path)]
    if not hits:
        hits = [e for e in entries if e.path.name == name]
    if not hits:
        hits = [e for e in entries if e.path.name.startswith(name) and len(name) >= 4]
    if len(hits) != 1:
        names = ", ".join(e.name for e in hits[:5]) if hits else "none"
        raise LookupError(
            f"{name!r}: {'no' if not hits else 'more than one'} entry in {work_dir} matches (matches: {names}); "
            "`punie-gates work list` shows the names"
        )
    return hits[0]


@dataclass(frozen=True)
class Removal:
    """What remove() did with one entry."""

    entry: Entry
    removed: bool
    reason: str  # why it was removed or skipped


def remove(entry: Entry, *, dry_run: bool = False) -> Removal:
    """Remove `entry` unless a running session holds it (checked again under its build lock)."""
    if entry.building:
        return Removal(entry, False, f"in use: {_holder(entry.building)}")
    if entry.state == "other":
        return Removal(entry, False, "not an artifact folder of punie-gates; left alone")
    if dry_run:
        return Removal(entry, False, "dry run")
    final = entry.path.parent / entry.path.name[:16]
    try:
        artifacts.claim(final, wait_s=0.0)
    except artifacts.ArtifactBusyError:
        return Removal(entry, False, "a build started on it meanwhile")
    try:
        if entry.state in ("partial", "leftover"):
            pid = int(entry.path.name.rsplit("-", 1)[-1])
            if pid != os.getpid() and artifacts._pid_alive(pid):
                return Removal(entry, False, f"process {pid} is alive")
        artifacts.discard(entry.path)
    finally:
        artifacts.release(final)
    return Removal(entry, True, "removed")


def prune_stale(work_dir: Path, *, dry_run: bool = False) -> list[Removal]:
    """Remove every stale entry (module docstring); returns what was done with each."""
    return [remove(entry, dry_run=dry_run) for entry in scan(work_dir) if entry.stale]


def _holder(holder: dict) -> str:
    since = holder.get("since")
    when = f" since {time.strftime('%Y-%m-%d %H:%M', time.localtime(since))}" if since else ""
    return f"pid {holder.get('pid', '?')}{when}"


def _size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _json_safe(value):
    return json.loads(json.dumps(value, default=str))


def work_folder_figures(work_dir: Path) -> dict[str, Any]:
    """The work folder and its size at the end of the run (cached models, adapters, fused models)."""
    return {"path": str(work_dir), "bytes": folder_bytes(work_dir) if Path(work_dir).is_dir() else 0}
