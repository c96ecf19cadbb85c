"""The COMPLETE manifest: an artifact folder is trusted only once completely written.

A folder is built as `<final>.partial-<pid>`, ends with a `COMPLETE` manifest
(file list, sizes and a BLAKE2b content hash of every file, written last) and
is then renamed into place. A later run reuses a folder only when its manifest
is there and every listed file still has its recorded size and content
(`verify`). Hashing is the cost of that check: BLAKE2b over
64 MiB chunks hashed in parallel threads, measured on this project's 2-core
shared Linux machine at 0.55 GB/s (a 16 GiB file in 31.5 s; one core: 86 s)
and 0.25 GB/s beside a running gate suite, so a 16 GB model costs 30-65 s
there and a few seconds on an Apple Silicon machine's 8-12 cores
(benchmarks/content_check_cost.py measures it); each file is hashed at most
once per process (a file whose inode, size, mtime and ctime are unchanged
keeps its digest).

Reusing an artifact records when (`LAST_USED`, a file ignored by fingerprints).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MARKER = "COMPLETE"
INPUTS = "inputs.json"
LAST_USED = "LAST_USED"
# Bookkeeping files inside an artifact folder: never part of what it holds.
BOOKKEEPING = (MARKER, INPUTS, LAST_USED)
# Content hashes in the manifest ("blake2b": {file: hex}): BLAKE2b-256 of the
# file's size and the BLAKE2b-256 digests of its 64 MiB chunks, so the chunks
# of one large file hash in parallel (hashlib releases the GIL).
CONTENT_HASH = "blake2b"
_CHUNK = 64 * 1024 * 1024
_BLOCK = 4 * 1024 * 1024


def read_manifest(folder: Path) -> dict | None:
    """The COMPLETE manifest of `folder`, or None when absent or unreadable."""
    try:
        return json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(folder: Path) -> bool:
    """True when `folder` has its manifest and every listed file has its size."""
    manifest = read_manifest(folder)
    if not manifest or not isinstance(manifest.get("files"), dict):
        return False
    for name, size in manifest["files"].items():
        try:
            if (Path(folder) / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def write_manifest(folder: Path, extra: Mapping | None = None) -> dict:
    """Write COMPLETE listing every file under `folder` with its size and content hash (call last)."""
    folder = Path(folder)
    paths = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER]
    files = {str(p.relative_to(folder)): p.stat().st_size for p in paths}
    digests = content_digests(paths)
    hashes = {str(p.relative_to(folder)): digests[p] for p in paths}
    manifest = {"files": files, CONTENT_HASH: hashes, **dict(extra or {})}
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    fsync_file(tmp)
    os.replace(tmp, folder / MARKER)
    return manifest


# -- content checks --------------------------------------------------------------

_digest_memo: dict[tuple, str] = {}  # (dev, inode, size, mtime_ns, ctime_ns) -> content digest
_memo_guard = threading.Lock()


def _stat_key(st: os.stat_result) -> tuple:
    # Any write through the file system changes mtime and ctime, and ctime cannot be
    # set back: a file with the same key has the same bytes as when it was hashed.
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _chunk_digest(path: Path, offset: int, length: int) -> bytes:
    digest = hashlib.blake2b(digest_size=32)
    with open(path, "rb", buffering=0) as fh:
        fh.seek(offset)
        left = length
        while left > 0:
            block = fh.read(min(_BLOCK, left))
            if not block:
                raise OSError(f"{path}: shorter than {offset + length} bytes while hashing it")
            digest.update(block)
            left -= len(block)
    return digest.digest()


def content_digests(paths: Iterable[Path], *, workers: int | None = None) -> dict[Path, str]:
    """CONTENT_HASH digest of each file (chunks of all files hashed in parallel threads)."""
    paths = [Path(p) for p in paths]
    stats = {p: p.stat() for p in paths}
    found: dict[Path, str] = {}
    with _memo_guard:
        for p in paths:
            if (known := _digest_memo.get(_stat_key(stats[p]))) is not None:
                found[p] = known
    todo = [p for p in paths if p not in found]
    jobs = [(p, off, min(_CHUNK, stats[p].st_size - off)) for p in todo for off in range(0, stats[p].st_size, _CHUNK)]
    with ThreadPoolExecutor(max_workers=max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))) as pool:
        chunks = list(pool.map(lambda job: _chunk_digest(*job), jobs))
    per_file: dict[Path, list[bytes]] = {p: [] for p in todo}
    for (p, _, _), chunk in zip(jobs, chunks):
        per_file[p].append(chunk)
    for p in todo:
        digest = hashlib.blake2b(str(stats[p].st_size).encode("ascii"), digest_size=32)
        for chunk in per_file[p]:
            digest.update(chunk)
        found[p] = digest.hexdigest()
        with _memo_guard:
            _digest_memo[_stat_key(stats[p])] = found[p]
    return found


def verify(folder: Path) -> str | None:
    """Why `folder` is not the artifact its manifest describes (missing, resized or changed
    files), or None when every listed file still has its size and content."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not manifest or not isinstance(manifest.get("files"), dict):
        return f"its {MARKER} manifest is missing or unreadable"
    problems, present = [], []
    for name, size in manifest["files"].items():
        try:
            found = (folder / name).stat().st_size
        except OSError:
            problems.append(f"{name} is missing")
            continue
        if found != size:
            problems.append(f"{name} has {found} bytes, {size} when it was built")
        else:
            present.append(name)
    hashes = manifest.get(CONTENT_HASH)
    if isinstance(hashes, dict):  # manifests written before content hashes carry sizes only
        checked = [n for n in present if n in hashes]
        try:
            digests = content_digests([folder / n for n in checked])
        except OSError as exc:
            return f"a file cannot be read: {exc}"
        problems += [f"{n}'s content changed since it was built ({CONTENT_HASH} differs; same size)"
                     for n in checked if digests[folder / n] != hashes[n]]  # fmt: skip
    if not problems:
        return None
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


def fsync_file(path: Path) -> None:
    """Flush one file's bytes to the disk (a manifest must never name bytes still in a cache)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mark_used(final: Path) -> None:
    """Record that `final` was reused now (best effort: a read-only folder is left alone)."""
    try:
        (Path(final) / LAST_USED).write_text(
            json.dumps({"last_used": time.time(), "pid": os.getpid()}), encoding="utf-8"
        )
    except OSError:
        pass


def last_used(final: Path) -> float | None:
    """When `final` was last reused (epoch seconds), else when it was published; None when neither is known."""
    for name in (LAST_USED, MARKER):
        try:
            return (Path(final) / name).stat().st_mtime
        except OSError:
            continue
    return None
