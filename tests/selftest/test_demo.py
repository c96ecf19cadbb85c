"""The offline demo candidate: deterministic, atomic, honest about itself, loadable by mlx-lm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from punie_gates.commands import demo_model
from punie_gates.model import artifacts, demo
from punie_gates.model.candidate import resolve_candidate


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory) -> Path:
    # One folder for the whole session: the selftest modules share one build.
    return tmp_path_factory.getbasetemp() / "punie-demo-cache"


@pytest.fixture(scope="session")
def demo_dir(demo_cache) -> Path:
    return demo.ensure_demo_model(demo_cache)


@pytest.fixture(scope="session")
def cli_dir(tmp_path_factory, demo_dir) -> Path:
    """A second, independent build through `punie-gates demo-model DIR`."""
    target = tmp_path_factory.mktemp("cli") / "demo-model"
    assert demo_model.main([str(target)]) == 0
    return target


def test_two_builds_are_byte_identical(demo_dir, cli_dir):
    first, second = artifacts.tree_fingerprint(demo_dir), artifacts.tree_fingerprint(cli_dir)
    assert set(first) >= {"config.json", "model.safetensors", "tekken.json", "tokenizer.json", demo.MARKER}
    assert first == second


def test_demo_lives_under_its_recipe_key_and_is_complete(demo_cache, demo_dir):
    assert demo_dir == demo.demo_model_dir(demo_cache)
    assert demo_dir.parent == demo_cache / "demo"
    assert artifacts.is_complete(demo_dir)
    assert json.loads((demo_dir / artifacts.INPUTS).read_text())["seed"] == demo.SEED


def test_warm_lookup_does_not_rebuild(demo_cache, demo_dir, monkeypatch):
    def refuse(dest):
        raise AssertionError("a warm lookup must not build")

    monkeypatch.setattr(demo, "build_demo_model", refuse)
    assert demo.ensure_demo_model(demo_cache) == demo_dir


def test_a_killed_build_leaves_nothing_a_later_run_trusts(tmp_path, monkeypatch):
    def dies_half_way(dest):
        (Path(dest) / "config.json").write_text("{}")
        raise KeyboardInterrupt  # what a user's Ctrl-C looks like mid-build

    monkeypatch.setattr(demo, "build_demo_model", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        demo.ensure_demo_model(tmp_path)
    final = demo.demo_model_dir(tmp_path)
    assert not final.exists()
    assert not list(final.parent.glob("*.partial-*"))


def test_demo_says_it_is_a_demo(demo_cache, demo_dir, cli_dir):
    marker = json.loads((demo_dir / demo.MARKER).read_text())
    assert marker["demo"] and marker["random_weights"] and "RANDOM weights" in marker["note"]
    found = resolve_candidate("demo", cache_dir=demo_cache, offline=True, need_weights=True)
    assert (found.is_demo, found.source, found.family, found.path) == (True, "demo", "mistral", demo_dir)
    # Built into a folder of its own and passed by path, it is still a demo.
    assert resolve_candidate(str(cli_dir), cache_dir=demo_cache, offline=True).is_demo


def test_demo_is_an_unquantized_devstral_architecture(demo_dir):
    config = json.loads((demo_dir / "config.json").read_text())
    assert (config["model_type"], config["text_config"]["model_type"]) == ("mistral3", "ministral3")
    assert "quantization" not in config and config["torch_dtype"] == "float32"  # Gate 1 must quantize it
    rope = config["text_config"]["rope_parameters"]
    assert {"rope_theta", "llama_4_scaling_beta", "original_max_position_embeddings"} <= set(rope)
    # Training adapts 8 layers: on the demo, as on Devstral, that is a strict subset.
    assert config["text_config"]["num_hidden_layers"] > 8


def test_demo_loads_with_mlx_lm_and_mistral_backend(demo_dir):
    import mlx.core as mx
    from mlx_lm import load

    model, tokenizer = load(str(demo_dir))
    assert len(model.layers) == demo.TEXT_CONFIG["num_hidden_layers"]
    assert type(tokenizer._tokenizer).__name__ == "MistralCommonBackend"  # tekken.json is in the folder
    logits = model(mx.array([[1, 3, 1000]]))
    assert logits.shape == (1, 3, 131072)
    assert tokenizer.convert_tokens_to_ids("[ARGS]") == 32


def test_cli_refuses_a_folder_that_is_not_a_demo(tmp_path, capsys):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    assert demo_model.main([str(target)]) == 2
    assert (target / "notes.txt").read_text() == "keep me"
    assert "not an empty folder or a demo model" in capsys.readouterr().err


def test_cli_on_an_existing_demo_folder_does_not_rebuild(cli_dir, monkeypatch):
    def refuse(dest):
        raise AssertionError("an up-to-date demo folder must not be rebuilt")

    monkeypatch.setattr(demo, "build_demo_model", refuse)
    assert demo_model.main([str(cli_dir)]) == 0
