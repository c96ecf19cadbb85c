"""Artifact keys: a sha256 over the canonical JSON of everything that went into a product.

A 6-9 day evaluation must survive a full disk, a killed process or a reboot.
Every expensive product (converted data, LoRA adapters, fused and quantized
models) lives in `<work_dir>/<kind>/<key>` where `key` is a sha256 over the
canonical JSON of its inputs: change a setting, a source file or the mlx-lm
version and the key changes, so a stale product is never picked up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from punie_gates.model.manifest import BOOKKEEPING

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


def artifact_label(final: Path) -> str:
    """`<kind>/<key>`: how messages name the artifact at `final`."""
    return f"{final.parent.name}/{final.name}"
