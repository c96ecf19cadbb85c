"""Naming and resolving a candidate: local folders, hub ids (offline only), and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from punie_gates.model.candidate import (
    DEFAULT_CANDIDATE,
    CandidateError,
    resolve_candidate,
)
from punie_gates.model.folder import config_family

REPO = "acme/tiny-devstral"


def _folder(root: Path, config: dict | str | None = None, files: tuple[str, ...] = ("tokenizer.json",)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config)
        (root / "config.json").write_text(text, encoding="utf-8")
    for name in files:
        (root / name).write_text("{}", encoding="utf-8")
    return root


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face home with the hub switched off."""
    home = tmp_path / "hf-home"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def _resolve(spec, tmp_path, **kwargs):
    return resolve_candidate(spec, cache_dir=tmp_path / "cache", offline=kwargs.pop("offline", True), **kwargs)


def test_default_candidate_is_the_8bit_mlx_community_devstral():
    assert DEFAULT_CANDIDATE == "mlx-community/Devstral-Small-2-24B-Instruct-2512-8bit"


def test_local_folder_resolves_with_family_from_config(tmp_path):
    folder = _folder(tmp_path / "my-model", {"model_type": "mistral3", "text_config": {"model_type": "ministral3"}},
                     files=("tekken.json", "model.safetensors"))  # fmt: skip
    found = _resolve(str(folder), tmp_path, need_weights=True)
    assert (found.source, found.name, found.family, found.is_demo) == ("local", "my-model", "mistral", False)
    assert found.path == folder.resolve()


def test_missing_folder_names_it_and_says_what_to_pass(tmp_path):
    with pytest.raises(CandidateError) as err:
        _resolve(str(tmp_path / "nowhere" / "model"), tmp_path)
    message = str(err.value)
    assert "nowhere" in message and "no such folder" in message and "'demo'" in message


def test_folder_without_config_is_refused(tmp_path):
    folder = _folder(tmp_path / "no-config")
    with pytest.raises(CandidateError, match=r"no config\.json in .*no-config.*mlx_lm\.convert"):
        _resolve(str(folder), tmp_path)


def test_malformed_config_names_file_and_line(tmp_path):
    folder = _folder(tmp_path / "bad", '{\n  "model_type": "mistral3",\n  oops\n}')
    with pytest.raises(CandidateError, match=r"config\.json line 3 .*not valid JSON"):
        _resolve(str(folder), tmp_path)


def test_folder_without_tokenizer_is_refused(tmp_path):
    folder = _folder(tmp_path / "no-tok", {"model_type": "mistral3"}, files=())
    with pytest.raises(CandidateError, match=r"no tokenizer .*tekken\.json, tokenizer\.json or tokenizer\.model"):
        _resolve(str(folder), tmp_path)


def test_weights_are_required_only_when_asked(tmp_path):
    folder = _folder(tmp_path / "tok-only", {"model_type": "qwen3_moe"})
    assert _resolve(str(folder), tmp_path).family == "qwen3"  # Gate 0 needs no weights
    with pytest.raises(CandidateError, match=r"no model\*\.safetensors weights"):
        _resolve(str(folder), tmp_path, need_weights=True)


def test_mistral_native_layout_gets_a_pointed_hint(tmp_path):
    native = ("tekken.json", "params.json", "consolidated.safetensors")
    folder = _folder(tmp_path / "native", {"model_type": "mistral3"}, files=native)
    with pytest.raises(CandidateError, match=r"Mistral's native layout.*mlx-community"):
        _resolve(str(folder), tmp_path, need_weights=True)


def test_spec_that_is_neither_folder_nor_repo_id(tmp_path):
    with pytest.raises(CandidateError, match=r"not a Hugging Face repo id"):
        _resolve("not a repo id", tmp_path)
    with pytest.raises(CandidateError, match=r"no candidate given"):
        _resolve("  ", tmp_path)


def test_hub_id_offline_and_not_cached_fails_with_the_fix(tmp_path, offline_hub):
    with pytest.raises(CandidateError) as err:
        _resolve(REPO, tmp_path)
    message = str(err.value)
    assert REPO in message
    assert "not in the offline Hugging Face cache" in message and str(offline_hub) in message
    assert f"hf download {REPO}" in message and "local folder" in message


def _fake_hub_cache(home: Path, repo: str, files: dict[str, Path | str]) -> Path:
    """huggingface_hub's cache layout: models--org--name/snapshots/<rev>/ and refs/main."""
    from punie_gates.formats.tekken import write_tekken

    revision = "0123456789abcdef0123456789abcdef01234567"
    root = home / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision, encoding="utf-8")
    for name, content in files.items():
        if name == "tekken.json":
            write_tekken(snapshot / name)
        else:
            (snapshot / name).write_text(str(content), encoding="utf-8")
    return snapshot


def test_hub_id_resolves_from_the_offline_cache(tmp_path, offline_hub):
    config = json.dumps({"model_type": "mistral3", "text_config": {"model_type": "ministral3"}})
    snapshot = _fake_hub_cache(offline_hub, REPO, {"config.json": config, "tekken.json": ""})
    found = _resolve(REPO, tmp_path)
    assert (found.source, found.name, found.family, found.is_demo) == ("hub", REPO, "mistral", False)
    assert found.path == snapshot
    # The tokenizer loads from that folder the way Gate 0 reads it (no weights, no network).
    from punie_gates.formats.tekken import reference_tokenizer

    assert reference_tokenizer(found.path / "tekken.json").instruct_tokenizer.tokenizer.get_special_token("[ARGS]") >= 0

    with pytest.raises(CandidateError) as err:
        _resolve(REPO, tmp_path, need_weights=True)
    assert "only its tokenizer files are cached" in str(err.value) and f"hf download {REPO}" in str(err.value)


def test_an_existing_folder_wins_over_a_repo_id_spelling(tmp_path, monkeypatch, offline_hub):
    monkeypatch.chdir(tmp_path)
    _folder(tmp_path / "acme" / "tiny-devstral", {"model_type": "mistral"})
    assert _resolve(REPO, tmp_path).source == "local"


def test_family_falls_back_to_tokenizer_files(tmp_path):
    assert config_family(_folder(tmp_path / "a", {"model_type": "llama"}, files=("tekken.json",))) == "mistral"
    assert config_family(_folder(tmp_path / "b", {"model_type": "llama"})) == "unknown"
    assert config_family(_folder(tmp_path / "c", {"model_type": "qwen3"})) == "qwen3"
