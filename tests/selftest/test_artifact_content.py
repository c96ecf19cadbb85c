"""A cached artifact is reused only when its files still hold what was written: a damaged
one is named and rebuilt, or refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from punie_gates import progress
from punie_gates.errors import DamagedArtifactError, UserError
from punie_gates.model import artifacts
from punie_gates.model import manifest as artifact_manifest


@pytest.fixture
def notices():
    seen: list[str] = []
    previous = progress.set_notice_writer(seen.append)
    yield seen
    progress.set_notice_writer(previous)


def _build(final: Path, payload: bytes) -> Path:
    with artifacts.building(final, {"x": 1}) as partial:
        (partial / "adapters.safetensors").write_bytes(payload)
        (partial / "train_info.json").write_text("{}")
    return final


def _overwrite_same_size(path: Path, offset: int, length: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * length)


def test_manifest_records_a_content_hash(tmp_path):
    final = _build(tmp_path / "lora" / "k", os.urandom(300_000))
    manifest = artifacts.read_manifest(final)
    assert set(manifest[artifacts.CONTENT_HASH]) == set(manifest["files"])
    assert artifacts.verify(final) is None


def test_same_size_corruption_is_named_and_rebuilt(tmp_path, notices):
    final = _build(tmp_path / "lora" / "k", os.urandom(300_000))
    assert artifacts.cached(final) == final and "reusing cached lora/k" in notices[-1]
    _overwrite_same_size(final / "adapters.safetensors", 100_000, 100_000)
    assert artifacts.is_complete(final)  # sizes alone cannot tell
    problem = artifacts.verify(final)
    assert "adapters.safetensors's content changed" in problem
    assert artifacts.cached(final) is None  # build it again (this thread now holds the claim)
    assert "cached lora/k is damaged: adapters.safetensors's content changed" in notices[-1]
    _build(final, b"fresh")
    assert artifacts.verify(final) is None and artifacts.cached(final) == final


@pytest.mark.parametrize("damage", ["truncate", "delete", "manifest"])
def test_missing_or_truncated_files_are_named(tmp_path, notices, damage):
    final = _build(tmp_path / "fused" / "k", os.urandom(1000))
    target = final / "adapters.safetensors"
    if damage == "truncate":
        target.write_bytes(b"x" * 10)
        said = "adapters.safetensors has 10 bytes, 1000 when it was built"
    elif damage == "delete":
        target.unlink()
        said = "adapters.safetensors is missing"
    else:
        (final / artifacts.MARKER).unlink()
        said = "manifest is missing"
    assert artifacts.cached(final) is None
    artifacts.release(final)
    assert said in notices[-1] and "rebuilding it" in notices[-1]


def test_refuse_policy_stops_with_a_user_error(tmp_path):
    final = _build(tmp_path / "lora" / "k", os.urandom(5000))
    _overwrite_same_size(final / "adapters.safetensors", 10, 100)
    previous = artifacts.set_damage_policy("refuse")
    try:
        with pytest.raises(DamagedArtifactError, match=r"lora/k is damaged.*--damaged-cache=rebuild") as caught:
            artifacts.cached(final)
        assert isinstance(caught.value, UserError)
    finally:
        artifacts.set_damage_policy(previous)
    assert artifacts.building_now(final) is None  # the refusal left no claim behind


def test_large_files_hash_in_chunks_and_each_state_once(tmp_path, monkeypatch):
    monkeypatch.setattr(artifact_manifest, "_CHUNK", 64 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(64 * 1024 * 5 + 7))
    first = artifacts.content_digests([path])[path]
    calls = []
    monkeypatch.setattr(artifact_manifest, "_chunk_digest", lambda *a: calls.append(a) or b"")
    assert artifacts.content_digests([path])[path] == first and not calls  # unchanged file: remembered
    _overwrite_same_size(path, 64 * 1024 * 3 + 1, 1)
    artifacts.content_digests([path])
    assert len(calls) == 6  # changed: every chunk hashed again
