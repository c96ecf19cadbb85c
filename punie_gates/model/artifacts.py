"""Work folders keyed by what went into them, trusted only once completely written.

A 6-9 day evaluation must survive a full disk, a killed process or a reboot.
Every expensive product (converted data, LoRA adapters, fused and quantized
models) lives in `<work_dir>/<kind>/<key>` where `key` is a sha256 over the
canonical JSON of its inputs: change a setting, a source file or the mlx-lm
version and the key changes, so a stale product is never picked up.

A folder is built as `<final>.partial-<pid>`, ends with a `COMPLETE` manifest
(file list and sizes, written last) and is then renamed into place. A later
run trusts a folder only when its manifest is there and every listed file
still has its recorded size; anything else is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

MARKER = "COMPLETE"
INPUTS = "inputs.json"
# Files up to this size are hashed whole; larger ones (multi-GB safetensors
# shards) by size plus three 1 MiB samples, so keying a 16 GB model takes
# milliseconds instead of a minute. Safetensors headers (names, shapes, dtypes,
# offsets) sit in the first sample.
FULL_HASH_LIMIT = 64 * 1024 * 1024
_SAMPLE = 1024 * 1024


def canonical_json(value: object) -> str:
    """Deterministic JSON: sorted keys, no whitespace, paths as strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def key_of(key_parts: Mapping) -> str:
    """sha256 hex digest of the canonical JSON of `key_parts`."""
    return hashlib.sha256(canonical_json(dict(key_parts)).encode("utf-8")).hexdigest()


def file_fingerprint(path: Path) -> dict:
    """Size and content hash of one file (sampled above FULL_HASH_LIMIT)."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        if size <= FULL_HASH_LIMIT:
            for chunk in iter(lambda: fh.read(_SAMPLE), b""):
                digest.update(chunk)
            how = "sha256"
        else:
            for offset in (0, size // 2, size - _SAMPLE):
                fh.seek(offset)
                digest.update(fh.read(_SAMPLE))
            how = "sha256-sampled"
    return {"size": size, how: digest.hexdigest()}


def tree_fingerprint(folder: Path, patterns: tuple[str, ...] = ("*",)) -> dict:
    """Fingerprints of the files directly in `folder` matching `patterns`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder, cannot fingerprint it")
    names = sorted({p.name for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
    return {name: file_fingerprint(folder / name) for name in names if name not in (MARKER, INPUTS)}


def records_fingerprint(records) -> dict:
    """Count and hash of JSON-able records (converted training data)."""
    digest = hashlib.sha256()
    count = 0
    for record in records:
        digest.update(canonical_json(record).encode("utf-8"))
        digest.update(b"\n")
        count += 1
    return {"count": count, "sha256": digest.hexdigest()}


def library_versions() -> dict:
    """Versions whose change invalidates cached models and adapters."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("mlx", "mlx-lm", "transformers", "mistral-common"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def artifact_dir(work_dir: Path, kind: str, key_parts: Mapping) -> Path:
    """`<work_dir>/<kind>/<first 16 hex of the key>` (not created)."""
    if not kind or "/" in kind or kind.startswith("."):
        raise ValueError(f"artifact kind must be a plain folder name, got {kind!r}")
    return Path(work_dir) / kind / key_of(key_parts)[:16]


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
    """Write COMPLETE listing every file under `folder` with its size (call last)."""
    folder = Path(folder)
    files = {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER
    }
    manifest = {"files": files, **dict(extra or {})}
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    _fsync_file(tmp)
    os.replace(tmp, folder / MARKER)
    return manifest


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_partials(final: Path) -> list[Path]:
    """Remove `<final>.partial-<pid>` (and `.stale-<pid>`) folders whose process is gone."""
    final = Path(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    leftovers = [*final.parent.glob(f"{final.name}.partial-*"), *final.parent.glob(f"{final.name}.stale-*")]
    for candidate in sorted(leftovers):
        pid = candidate.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed


def discard(folder: Path) -> None:
    """Remove a finished or broken artifact folder (rename first: removal is not atomic)."""
    folder = Path(folder)
    if not folder.exists():
        return
    doomed = folder.with_name(f"{folder.name}.stale-{os.getpid()}")
    try:
        os.replace(folder, doomed)
    except FileNotFoundError:  # someone else removed it first
        return
    shutil.rmtree(doomed, ignore_errors=True)


@contextlib.contextmanager
def building(final: Path, key_parts: Mapping | None = None) -> Iterator[Path]:
    """Build an artifact in a private partial folder, publish it atomically.

    Yields the partial folder. On normal exit writes inputs.json (the key
    parts, for humans), then the COMPLETE manifest, then renames the folder to
    `final`, replacing what was there (an incomplete, stale or --fresh one). On any exception the
    partial folder is removed and nothing at `final` changes.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_partials(final)
    partial = final.with_name(f"{final.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        yield partial
        if key_parts is not None:
            (partial / INPUTS).write_text(
                json.dumps(dict(key_parts), indent=1, sort_keys=True, default=str), encoding="utf-8"
            )
        for path in partial.rglob("*"):
            if path.is_file():
                _fsync_file(path)
        write_manifest(partial)
        publish(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def publish(partial: Path, final: Path) -> None:
    """Rename a finished folder into place, replacing whatever is there."""
    discard(final)
    try:
        os.replace(partial, final)
    except OSError:
        # Another process published the same key between the two calls: its
        # folder is as good as ours.
        if not is_complete(final):
            raise
        shutil.rmtree(partial, ignore_errors=True)


def cached(final: Path, fresh: bool = False) -> Path | None:
    """`final` when it is a complete artifact and `fresh` is off, else None."""
    final = Path(final)
    if not fresh and is_complete(final):
        return final
    return None
