"""Work folders keyed by what went into them, trusted only once completely written.

A 6-9 day evaluation must survive a full disk, a killed process or a reboot.
Every expensive product (converted data, LoRA adapters, fused and quantized
models) lives in `<work_dir>/<kind>/<key>` where `key` is a sha256 over the
canonical JSON of its inputs: change a setting, a source file or the mlx-lm
version and the key changes, so a stale product is never picked up.

A folder is built as `<final>.partial-<pid>`, ends with a `COMPLETE` manifest
(file list, sizes and a BLAKE2b content hash of every file, written last) and
is then renamed into place. A later run reuses a folder only when its manifest
is there and every listed file still has its recorded size and content
(`verify`); a folder that fails is named as damaged, with the file and why,
and rebuilt, or refused (`set_damage_policy("refuse")`, the gates'
`--damaged-cache=refuse`). Hashing is the cost of that check: BLAKE2b over
64 MiB chunks hashed in parallel threads, measured on this project's 2-core
shared Linux machine at 0.55 GB/s (a 16 GiB file in 31.5 s; one core: 86 s)
and 0.25 GB/s beside a running gate suite, so a 16 GB model costs 30-65 s
there and a few seconds on an Apple Silicon machine's 8-12 cores
(benchmarks/content_check_cost.py measures it); each file is hashed at most
once per process (a file whose inode, size, mtime and ctime are unchanged
keeps its digest).

One builder per key: `cached()` of a missing artifact takes an exclusive lock
(fcntl.flock on a lock file named after the artifact's path, in LOCK_DIR) and
returns None holding it; `building()` keeps it until the folder is published
or the build failed. A second process (or thread) asking for the same key
meanwhile waits, printing that it waits (at most `WAIT_S`), then reuses what
the first one published. The lock files live outside the work folder so a
killed builder leaves nothing there; the kernel drops its lock with it. A
holder that raised between `cached()` and `building()` keeps its claim until it
calls either again, `release()`, or exits. `punie-gates work prune` skips
locked artifacts (punie_gates.model.workdir).

Reusing an artifact records when (`LAST_USED`, a file ignored by fingerprints);
a build may record the folders it was made from (`sources=`, in the manifest)
so that a pruner can tell when they are gone or changed.
"""

from __future__ import annotations

from punie_gates.errors import ArtifactBusyError  # noqa: F401  (raised here; defined with the other user errors)

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from punie_gates.errors import DamagedArtifactError
from punie_gates.progress import notice

MARKER = "COMPLETE"
INPUTS = "inputs.json"
LAST_USED = "LAST_USED"
# Bookkeeping files inside an artifact folder: never part of what it holds.
BOOKKEEPING = (MARKER, INPUTS, LAST_USED)
# Where the build locks live; PUNIE_GATES_LOCK_DIR overrides (it must be the
# same for every process sharing a work folder, which /tmp is on one machine).
LOCK_DIR = Path(
    os.environ.get("PUNIE_GATES_LOCK_DIR") or Path(tempfile.gettempdir()) / f"punie-gates-locks-{os.getuid()}"
)
WAIT_S = 6 * 3600.0  # how long a second builder waits for the first (a fuse of a 24B model takes ~1 h)
NOTE_EVERY_S = 60.0  # how often a waiting builder says so
_POLL_S = 0.2
# Files up to this size are hashed whole; larger ones (multi-GB safetensors
# shards) by size plus three 1 MiB samples, so keying a 16 GB model takes
# milliseconds instead of a minute. Safetensors headers (names, shapes, dtypes,
# offsets) sit in the first sample.
FULL_HASH_LIMIT = 64 * 1024 * 1024
_SAMPLE = 1024 * 1024
# Content hashes in the manifest ("blake2b": {file: hex}): BLAKE2b-256 of the
# file's size and the BLAKE2b-256 digests of its 64 MiB chunks, so the chunks
# of one large file hash in parallel (hashlib releases the GIL).
CONTENT_HASH = "blake2b"
_CHUNK = 64 * 1024 * 1024
_BLOCK = 4 * 1024 * 1024
DAMAGE_POLICIES = ("rebuild", "refuse")


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
    return {name: file_fingerprint(folder / name) for name in names if name not in BOOKKEEPING}


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
    """Write COMPLETE listing every file under `folder` with its size and content hash (call last)."""
    folder = Path(folder)
    paths = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER]
    files = {str(p.relative_to(folder)): p.stat().st_size for p in paths}
    digests = content_digests(paths)
    hashes = {str(p.relative_to(folder)): digests[p] for p in paths}
    manifest = {"files": files, CONTENT_HASH: hashes, **dict(extra or {})}
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    _fsync_file(tmp)
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


_damage_policy = "rebuild"
_reuse_noted: set[str] = set()
_damage_noted: set[tuple[str, str]] = set()


def set_damage_policy(policy: str) -> str:
    """What `cached()` does with a damaged artifact: "rebuild" it (saying so) or "refuse"
    (DamagedArtifactError); returns the policy it replaces."""
    global _damage_policy
    if policy not in DAMAGE_POLICIES:
        raise ValueError(f"damage policy must be one of {DAMAGE_POLICIES}, got {policy!r}")
    previous, _damage_policy = _damage_policy, policy
    return previous


def _reusable(final: Path) -> bool:
    """Whether `final` can be reused as it is; a damaged one is named (and refused or left to rebuild)."""
    if not final.is_dir():
        return False
    started = time.perf_counter()
    problem = verify(final)
    label = _label(final)
    if problem is not None:
        if _damage_policy == "refuse":
            raise DamagedArtifactError(
                f"cached {label} is damaged: {problem}. Remove {final} (`punie-gates work --work-dir "
                f"{final.parent.parent} rm {label}`) or rerun with --damaged-cache=rebuild to rebuild it"
            )
        if (str(final), problem) not in _damage_noted:  # checked again under the lock: said once
            _damage_noted.add((str(final), problem))
            notice(f"cached {label} is damaged: {problem}; rebuilding it ({final})")
        _reuse_noted.discard(str(final))
        return False
    mark_used(final)
    if str(final) not in _reuse_noted:
        _reuse_noted.add(str(final))
        manifest = read_manifest(final) or {}
        sizes = manifest.get("files") or {}
        how = "content checked" if isinstance(manifest.get(CONTENT_HASH), dict) else "sizes checked (no content hashes)"
        notice(f"reusing cached {label} ({len(sizes)} files, {_size_text(sum(sizes.values()))}; "
               f"{how} in {time.perf_counter() - started:.1f} s)")  # fmt: skip
    return True


def _size_text(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


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
            from punie_gates.model.disk import check_free_space

            check_free_space(final, needed_bytes, what=what or _label(final), work_dir=work_dir)
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


def _label(final: Path) -> str:
    return f"{final.parent.name}/{final.name}"


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
    if not fresh and _reusable(final):
        return final
    claim(final, wait_s=wait_s)
    try:
        if not fresh and _reusable(final):  # published while we waited
            release(final)
            return final
    except BaseException:
        release(final)
        raise
    if fresh and is_complete(final):
        notice(f"--fresh: rebuilding {_label(final)} although a cached copy exists")
    return None


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


# -- build locks ---------------------------------------------------------------




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
