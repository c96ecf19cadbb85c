"""The damage policy: what reusing a cached artifact does when its content no longer matches.

A folder that fails `verify` is named as damaged, with the file and why, and
rebuilt, or refused (`set_damage_policy("refuse")`, the gates' `--damaged-cache=refuse`):
one policy per process, set once from the command line.
"""

from __future__ import annotations

import time
from pathlib import Path

from punie_gates.errors import DamagedArtifactError
from punie_gates.model.artifact_keys import artifact_label
from punie_gates.model.manifest import CONTENT_HASH, mark_used, read_manifest, verify
from punie_gates.progress import notice

DAMAGE_POLICIES = ("rebuild", "refuse")
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


def reusable(final: Path) -> bool:
    """Whether `final` can be reused as it is; a damaged one is named (and refused or left to rebuild)."""
    if not final.is_dir():
        return False
    started = time.perf_counter()
    problem = verify(final)
    label = artifact_label(final)
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
