"""Work folders keyed by what went into them, built privately and published atomically.

The lifecycle of an artifact: `cached()` says whether a complete, undamaged copy
exists (else claims the build), `building()` builds it in `<final>.partial-<pid>`
and publishes it with its manifest, `discard()` and `sweep_partials()` clean up.
The parts live apart: keys (`artifact_keys`), the COMPLETE manifest and content
hashes (`manifest`), build locks (`build_locks`) and the damage policy (`damage`);
their public names are re-exported here for callers.

A build may record the folders it was made from (`sources=`, in the manifest) so
that a pruner can tell when they are gone or changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from punie_gates.errors import ArtifactBusyError, DamagedArtifactError
from punie_gates.model.artifact_keys import (
    FULL_HASH_LIMIT,
    artifact_dir,
    artifact_label,
    canonical_json,
    file_fingerprint,
    key_of,
    library_versions,
    records_fingerprint,
    tree_fingerprint,
)
from punie_gates.model.build_locks import (
    LOCK_DIR,
    NOTE_EVERY_S,
    WAIT_S,
    building_now,
    claim,
    lock_path,
    read_holder,
    release,
)
from punie_gates.model.damage import DAMAGE_POLICIES, reusable, set_damage_policy
from punie_gates.model.disk import check_free_space
from punie_gates.model.manifest import (
    BOOKKEEPING,
    CONTENT_HASH,
    INPUTS,
    LAST_USED,
    MARKER,
    content_digests,
    fsync_file,
    is_complete,
    last_used,
    mark_used,
    read_manifest,
    verify,
    write_manifest,
)
from punie_gates.progress import notice

__all__ = [
    "BOOKKEEPING", "CONTENT_HASH", "DAMAGE_POLICIES", "FULL_HASH_LIMIT", "INPUTS", "LAST_USED", "LOCK_DIR",
    "MARKER", "NOTE_EVERY_S", "WAIT_S", "ArtifactBusyError", "DamagedArtifactError", "artifact_dir",
    "building", "building_now", "cached", "canonical_json", "claim", "content_digests", "discard",
    "file_fingerprint", "is_complete", "key_of", "last_used", "library_versions", "lock_path", "mark_used",
    "publish", "read_holder", "read_manifest", "records_fingerprint", "release", "set_damage_policy",
    "sweep_partials", "tree_fingerprint", "verify", "write_manifest",
]  # fmt: skip


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
def building(
    final: Path,
    key_parts: Mapping | None = None,
    *,
    sources: Mapping[str, Path] | None = None,
    needed_bytes: int | None = None,
    what: str | None = None,
    work_dir: Path | None = None,
    wait_s: float | None = None,
    keep_claim: bool = False,
) -> Iterator[Path]:
    """Build an artifact in a private partial folder, publish it atomically.

    Yields the partial folder. On normal exit writes inputs.json (the key
    parts, for humans), then the COMPLETE manifest, then renames the folder to
    `final`, replacing what was there (an incomplete, stale or --fresh one). On any exception the
    partial folder is removed and nothing at `final` changes.

    Holds the build lock of `final` throughout (taken here unless `cached()`
    already claimed it for this thread). With `needed_bytes`, the free space
    of `final`'s disk is checked first and DiskSpaceError raised before
    anything is created (`what`, `work_dir`: how the message names it).
    `sources` ({role: folder}) are recorded in the manifest. With `keep_claim`
    the lock stays this thread's after publishing (the caller releases it).
    """
    final = Path(final)
    claim(final, wait_s=wait_s)
    try:
        if needed_bytes is not None:
            check_free_space(final, needed_bytes, what=what or artifact_label(final), work_dir=work_dir)
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
                    fsync_file(path)
            write_manifest(partial, {"sources": _sources(sources)} if sources else None)
            publish(partial, final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    except BaseException:
        release(final)
        raise
    if not keep_claim:
        release(final)


def _sources(sources: Mapping[str, Path]) -> dict:
    # "artifact": the source is itself a keyed artifact, which a rebuild would
    # recreate at the same path; a pruner must not call its absence stale.
    return {
        role: {"path": str(Path(path).absolute()), "artifact": is_complete(Path(path))}
        for role, path in sources.items()
    }


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


def cached(final: Path, fresh: bool = False, *, wait_s: float | None = None) -> Path | None:
    """`final` when it is a complete artifact and `fresh` is off, else None, holding its build lock.

    When another process or thread is building `final`, waits for it (at most
    `wait_s`, default WAIT_S) and returns what it published. None means: build
    it now; the claim is this thread's until `building(final)` ends (or
    `release(final)`). A reuse is recorded in `final/LAST_USED` and said once per
    process; a damaged folder (`verify`) is named and rebuilt, or refused with
    DamagedArtifactError under the "refuse" policy.
    """
    final = Path(final)
    if not fresh and reusable(final):
        return final
    claim(final, wait_s=wait_s)
    try:
        if not fresh and reusable(final):  # published while we waited
            release(final)
            return final
    except BaseException:
        release(final)
        raise
    if fresh and is_complete(final):
        notice(f"--fresh: rebuilding {artifact_label(final)} although a cached copy exists")
    return None
