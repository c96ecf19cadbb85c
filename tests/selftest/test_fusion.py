"""Fuse + quantize on the demo model, and the LoRA retention measure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_training import TRAIN, VALID  # the same short conversations

from punie_gates.inputs import paths
from punie_gates.model import artifacts
from punie_gates.model.fusion import Retention, fuse_and_quantize, fuse_dequantized, lora_retention
from punie_gates.model.quantize import ensure_bits
from punie_gates.model.training import TrainSettings, train_lora, training_token_ids

SETTINGS = TrainSettings(iters=6, max_seq_length=128, steps_per_eval=6, save_every=6, val_batches=-1)


@pytest.fixture(scope="module")
def demo_base() -> Path:
    from punie_gates.model.demo import ensure_demo_model
    from punie_gates.model.quantize import ensure_bits

    return ensure_bits(ensure_demo_model(), paths.cache_dir() / "work", 5).path


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fusion")


@pytest.fixture(scope="module")
def adapter(demo_base, work) -> Path:
    return train_lora(demo_base, TRAIN, VALID, SETTINGS, work).adapter_dir


@pytest.fixture(scope="module")
def prompts(demo_base) -> list[list[int]]:
    return training_token_ids(demo_base, VALID)


@pytest.fixture(scope="module")
def fused5(demo_base, adapter, work) -> Path:
    return fuse_and_quantize(demo_base, adapter, work, bits=5, keep_fused=True)


def test_fused_model_is_5_bit_and_loads_with_the_base_tokenizer(fused5, demo_base):
    from mlx_lm import load

    config = json.loads((fused5 / "config.json").read_text())
    assert config["quantization"]["bits"] == 5 and config["quantization"]["group_size"] == 64
    assert artifacts.is_complete(fused5)
    for name in ("tekken.json", "tokenizer.json"):
        assert (fused5 / name).read_bytes() == (demo_base / name).read_bytes(), f"{name} differs from the base's"
    model, tokenizer = load(str(fused5))
    assert len(model.layers) == 10 and tokenizer.eos_token_id == 2


def test_fusion_is_cached_and_fresh_rebuilds(demo_base, adapter, work, fused5):
    fused_dense = fuse_dequantized(demo_base, adapter, work)
    assert json.loads((fused_dense / "config.json").read_text()).get("quantization") is None
    artifacts.discard(fused_dense)
    # Keyed by base + adapter + bits: found again without redoing the 16-bit fuse.
    assert fuse_and_quantize(demo_base, adapter, work, bits=5) == fused5
    assert not fused_dense.exists()
    marker = (fused5 / artifacts.MARKER).stat().st_mtime_ns
    assert fuse_and_quantize(demo_base, adapter, work, bits=5, fresh=True, keep_fused=True) == fused5
    assert (fused5 / artifacts.MARKER).stat().st_mtime_ns != marker, "--fresh reused the cached fuse"
    plain = ensure_bits(fused_dense, work, 5).path  # the one quantizer serves any float model folder
    assert json.loads((plain / "config.json").read_text())["quantization"]["bits"] == 5


def test_retention_5_bit_beats_4_bit(demo_base, adapter, work, fused5, prompts):
    fused4 = fuse_and_quantize(demo_base, adapter, work, bits=4)  # drops the 16-bit fuse afterwards
    five = lora_retention(demo_base, adapter, fused5, prompts)
    four = lora_retention(demo_base, adapter, fused4, prompts)
    print(json.dumps({"retention_5bit": five.to_json(), "retention_4bit": four.to_json()}))
    assert five.bits == 5 and four.bits == 4 and five.prompts == len(VALID)
    assert five.kl_adapter_vs_base > 0, "training changed nothing, so retention measures nothing"
    assert five.value > 0.9, five
    assert five.value > four.value, (five, four)
    assert five.delta_projection > four.delta_projection > 0
    assert not list((work / "fused").iterdir()), "the 16-bit fuse was kept"


def test_retention_is_zero_when_the_delta_is_lost(demo_base, adapter, prompts):
    """A 'fused' model that is just the base has kept nothing: the measure must say so."""
    lost = lora_retention(demo_base, adapter, demo_base, prompts)
    assert lost.value == pytest.approx(0.0, abs=1e-6)
    assert lost.delta_projection == pytest.approx(0.0, abs=1e-6)


def test_retention_json_has_no_nan():
    nothing = Retention(value=math.nan, kl_adapter_vs_base=0.0, kl_adapter_vs_fused=0.0, prompts=1, bits=5)
    assert json.loads(json.dumps(nothing.to_json()))["value"] is None
