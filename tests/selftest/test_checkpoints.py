"""Gate 1's memory estimate and load guard on a real checkpoint layout, with no weights.

Devstral Small 2's published checkpoint (fixtures/checkpoints/devstral-small-2-fp8) is
a `Mistral3ForConditionalGeneration` with a 24-layer pixtral vision tower and FP8 text
weights. mlx-lm's sanitize drops the vision tower and projector, so the estimate counts
only the text model (~18.33 GB at 5 bits, not the 20.006 GB a count of every tensor gave);
and mlx reads F8_E4M3 as raw uint8, so the checkpoint is refused before anything is
quantized, naming an MLX conversion to use instead. The layouts are sparse files
(tests/selftest/sparse_checkpoint.py): real headers, no data.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import pytest
from sparse_checkpoint import checkpoint_tensors, write_sparse_checkpoint

from punie_gates.errors import CandidateError, MemoryBudgetError
from punie_gates.inputs import paths
from punie_gates.model import folder as mf
from punie_gates.model import sizes
from punie_gates.model.quantize import ensure_bits

CONFIG = json.loads((paths.fixtures_dir() / "checkpoints" / "devstral-small-2-fp8" / "config.json").read_text())
TEXT_PARAMETERS = 23_572_403_200  # mlx-lm 0.32.2's ministral3 for this config (FACTS.md)


def _bf16(config: dict) -> dict:
    """The same layout as an unquantized bf16 checkpoint (what a bf16 conversion ships)."""
    config = copy.deepcopy(config)
    config.pop("quantization_config")
    return config


@pytest.fixture(scope="module")
def fp8_vision(tmp_path_factory) -> Path:
    return write_sparse_checkpoint(tmp_path_factory.mktemp("ckpt") / "devstral-small-2-fp8", CONFIG)


@pytest.fixture(scope="module")
def bf16_vision(tmp_path_factory) -> Path:
    return write_sparse_checkpoint(tmp_path_factory.mktemp("ckpt") / "devstral-small-2-bf16", _bf16(CONFIG))


def test_the_layout_is_the_real_24b_one_and_costs_no_disk(fp8_vision):
    tensors = checkpoint_tensors(CONFIG)
    text = sum(
        math.prod(shape)
        for name, (_, shape) in tensors.items()
        if name.startswith("language_model.") and "_scale" not in name
    )
    assert text == TEXT_PARAMETERS
    vision = [n for n in tensors if n.startswith(("vision_tower.", "multi_modal_projector."))]
    assert len([n for n in vision if ".layers." in n and n.endswith("attention.q_proj.weight")]) == 24
    declared = sum(f.stat().st_size for f in fp8_vision.glob("model-*.safetensors"))
    on_disk = sum(f.stat().st_blocks * 512 for f in fp8_vision.glob("model-*.safetensors"))
    assert declared > 25e9 and on_disk < 5e6


def test_only_what_sanitize_keeps_is_counted(fp8_vision):
    kept = mf.kept_tensors(fp8_vision)
    assert not [n for n in kept if "vision_tower" in n or "multi_modal_projector" in n or "_scale" in n]
    assert sum(math.prod(shape) for _, shape in kept.values()) == TEXT_PARAMETERS
    # FP8 weights come back folded with their bf16 scales
    assert kept["language_model.model.layers.0.mlp.down_proj.weight"] == ("BF16", (5120, 32768))


@pytest.mark.parametrize("layout", ["fp8_vision", "bf16_vision"])
def test_the_text_model_at_5_bits_is_about_18_33_gb_and_fits_20(request, layout):
    folder = request.getfixturevalue(layout)
    estimate = sizes.estimate_memory_gb(folder, bits=5)
    # 23.57e9 weights at 5 bits plus a 16-bit scale and bias per 64: 16.21 GB, +10% +0.5 GB
    assert estimate == pytest.approx(18.33, abs=0.01)
    assert sizes.check_memory_budget(folder, 20.0, bits=5) == estimate


def test_an_fp8_checkpoint_is_refused_naming_why_and_what_to_use(fp8_vision):
    with pytest.raises(CandidateError) as err:
        mf.check_loadable(fp8_vision, label="candidate 'devstral-small-2-fp8'")
    message = str(err.value)
    assert message.startswith("candidate 'devstral-small-2-fp8': 280 weight tensors mlx-lm would load are FP8 (E4M3)")
    assert "raw uint8" in message and "garbage" in message and "MLX conversion" in message
    assert "mlx-community/" in message and "\n" not in message


def test_bf16_and_fp8_only_in_a_dropped_vision_tower_load(bf16_vision, tmp_path):
    mf.check_loadable(bf16_vision)
    tensors = {
        name: ("F8_E4M3" if name.startswith("vision_tower.") and len(shape) == 2 else dtype, shape)
        for name, (dtype, shape) in checkpoint_tensors(_bf16(CONFIG)).items()
    }
    folder = write_sparse_checkpoint(tmp_path / "fp8-vision-only", _bf16(CONFIG), tensors=tensors)
    assert any(dtype == "F8_E4M3" for dtype, _ in mf._raw_tensors(folder).values())
    mf.check_loadable(folder)  # only tensors mlx-lm drops are FP8


def test_mxfp8_checkpoints_load_packed_and_are_not_refused(fp8_vision, tmp_path):
    config = copy.deepcopy(CONFIG)
    config["quantization_config"] |= {"scale_fmt": "ue8m0", "weight_block_size": [32, 32]}
    folder = tmp_path / "mxfp8"
    folder.mkdir()
    for file in fp8_vision.iterdir():
        (folder / file.name).symlink_to(file)
    (folder / "config.json").unlink()
    (folder / "config.json").write_text(json.dumps(config))
    mf.check_loadable(folder)


def test_gate1_refuses_fp8_before_quantizing_anything(fp8_vision, tmp_path):
    work = tmp_path / "work"
    started = time.perf_counter()
    with pytest.raises(CandidateError, match="FP8"):
        ensure_bits(fp8_vision, work, 5, memory_budget_gb=20.0)
    assert time.perf_counter() - started < 60  # headers and a lazy sanitize, not a 248 s quantization
    assert not work.exists() or not any(work.rglob("*.safetensors"))


def test_a_model_over_budget_is_refused_before_quantizing(bf16_vision, tmp_path):
    work = tmp_path / "work"
    with pytest.raises(MemoryBudgetError, match=r"needs about 18\.3 GB at 5 bits .* budget is 16 GB"):
        ensure_bits(bf16_vision, work, 5, memory_budget_gb=16.0)
    assert not work.exists() or not any(work.rglob("*.safetensors"))


def test_the_fp8_checkpoint_stops_gate1_end_to_end(pytester, fp8_vision, repo_root, tmp_path_factory, monkeypatch):
    """`pytest -m "gate0 or gate1"` on the FP8 checkpoint (with the demo's tokenizer
    files): Gate 0 passes, Gate 1 is refused in seconds with the reason in one line."""
    import shutil

    from punie_gates.model.demo import ensure_demo_model

    cache = tmp_path_factory.getbasetemp() / "punie-demo-cache"
    demo = ensure_demo_model(cache)
    for name in ("tekken.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copyfile(demo / name, fp8_vision / name)
    monkeypatch.setenv("PUNIE_GATES_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    shutil.copytree(repo_root / "tests" / "gates", pytester.path / "gates")
    small = pytester.mkdir("small-training")
    for name, n in (("train.jsonl", 6), ("valid.jsonl", 2)):
        lines = (paths.fixtures_dir() / "demo-training" / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (small / name).write_text("".join(lines[:n]), encoding="utf-8")
    work = pytester.path / "work"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "gates", "-m", "gate0 or gate1", "--candidate", str(fp8_vision),
        "--training-data", str(small), "--work-dir", str(work), "--report-dir", "reports", timeout=900,
    )  # fmt: skip
    doc = json.loads((pytester.path / "reports" / "gate-report.json").read_text())
    assert doc["gates"]["gate0"]["status"] == "passed", doc["gates"]["gate0"]["reasons"]
    # A checkpoint mlx-lm cannot load faithfully is the user's to fix (use an MLX conversion),
    # not a verdict on the model: the run ends ERROR (exit 6), never NO_GO, the cause said once.
    assert doc["gates"]["gate1"]["status"] == "error" and doc["verdict"] == "ERROR" and result.ret == 6
    reason = doc["reasons"][0]
    assert "FP8 (E4M3)" in reason and "MLX conversion" in reason and "\n" not in reason
    assert "FP8 (E4M3)" in (pytester.path / "reports" / "gate-report.md").read_text()
    result.stdout.fnmatch_lines(["VERDICT: ERROR: not judged*", "*FP8 (E4M3)*MLX conversion*"])
    assert not any(work.rglob("*.safetensors"))  # nothing was quantized
