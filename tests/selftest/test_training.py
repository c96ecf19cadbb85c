"""LoRA training on the demo model: loss curve, cached adapters, resume after an interruption."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from punie_gates.inputs import paths
from punie_gates.model import artifacts
from punie_gates.model.loss_curve import LossCurve, plot_loss_curve, write_loss_curve
from punie_gates.model.training import TrainSettings, checkpoints, train_lora

# Short conversations: on MLX's CPU backend every token costs a 131072-wide
# output layer, so the self-tests keep sequences to a few dozen tokens.
TOOL = {
    "type": "function",
    "function": {
        "name": "execute_code",
        "description": "Run Python.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}


def _direct(question: str, answer: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def _tool(path: str, count: int) -> dict:
    code = f"print(typecheck('{path}').error_count)"
    call = {"id": "a1b2c3d4e", "type": "function", "function": {"name": "execute_code", "arguments": {"code": code}}}
    return {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Type errors in {path}?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "a1b2c3d4e", "content": str(count)},
            {"role": "assistant", "content": f"{count} errors."},
        ],
        "tools": [TOOL],
    }


TRAIN = [
    _direct("What is a tuple?", "An immutable sequence."),
    _tool("src/", 2),
    _direct("What is a set?", "An unordered collection of unique items."),
    _direct("What does len do?", "It returns the number of items."),
    _tool("app.py", 0),
    _direct("What is None?", "The null object."),
]
VALID = [_direct("What is a list?", "A mutable sequence."), _tool("lib/", 1)]
SETTINGS = TrainSettings(iters=6, max_seq_length=128, steps_per_eval=2, save_every=2, val_batches=-1)


class Interrupted(Exception):
    """Stands for Ctrl-C, a crash or a reboot in the middle of training."""


def stop_at(iteration: int):
    def progress(step, done, total, **figures):
        if step == "train" and done >= iteration:
            raise Interrupted(f"stopped after iteration {done}")

    return progress


@pytest.fixture(scope="module")
def demo_base() -> Path:
    """The demo candidate at 5 bits, as Gate 1 leaves it (keyed and cached under the suite's cache)."""
    from punie_gates.model.demo import ensure_demo_model
    from punie_gates.model.quantize import ensure_bits

    return ensure_bits(ensure_demo_model(), paths.cache_dir() / "work", 5).path


@pytest.fixture(scope="module")
def straight(demo_base, tmp_path_factory):
    """A run that nothing interrupts: the reference for the resumed one."""
    return train_lora(demo_base, TRAIN, VALID, SETTINGS, tmp_path_factory.mktemp("straight"))


# -- pure parts ------------------------------------------------------------------------


def test_loss_curve_figures():
    curve = LossCurve(train=((1, 3.0), (2, 2.0)), valid=((0, 4.0), (2, 1.0)))
    assert curve.start == 4.0 and curve.end == 1.0
    assert curve.reduction == pytest.approx(0.75)
    assert curve.improved()
    worse = LossCurve(valid=((0, 1.0), (5, 1.2)))
    assert not worse.improved() and worse.reduction == pytest.approx(-0.2)
    assert LossCurve(valid=((0, 1.0),)).reduction is None and not LossCurve().improved()
    assert LossCurve.from_json(json.loads(json.dumps(curve.to_json()))) == curve


def test_settings_scale_evaluation_and_checkpoints():
    assert TrainSettings(iters=50).eval_every == 10 and TrainSettings(iters=50).checkpoint_every == 5
    assert TrainSettings(iters=500).eval_every == 100 and TrainSettings(iters=500).checkpoint_every == 50
    # a short run validates where it starts and where it ends only, over as many batches as it trains
    assert TrainSettings(iters=4).eval_every == 4 and TrainSettings(iters=3).checkpoint_every == 1
    assert TrainSettings(iters=4).validation_batches == 4 and TrainSettings(iters=500).validation_batches == 25
    assert (
        TrainSettings(iters=1).validation_batches == 2
        and TrainSettings(iters=4, val_batches=-1).validation_batches == -1
    )
    with pytest.raises(ValueError, match="iters"):
        TrainSettings(iters=0)
    with pytest.raises(ValueError, match="save_every"):
        TrainSettings(iters=5, save_every=0)


def test_plot_and_json(tmp_path):
    curve = LossCurve(train=tuple((i, 5.0 - i / 10) for i in range(1, 41)), valid=((0, 5.0), (20, 3.0), (40, 2.0)))
    png = plot_loss_curve(curve, tmp_path / "plots" / "loss.png", "demo")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = write_loss_curve(curve, tmp_path / "loss_curve.json")
    assert LossCurve.from_json(json.loads(path.read_text())) == curve


# -- training on the demo ------------------------------------------------------------


def test_training_gives_adapters_and_a_curve(straight, demo_base):
    from mlx_lm import load

    assert not straight.cached and straight.resumed_from == 0 and straight.iters_done == 6
    assert [it for it, _ in straight.curve.train] == [1, 2, 3, 4, 5, 6]
    assert [it for it, _ in straight.curve.valid] == [0, 2, 4, 6]  # 0 = before any step: where it started
    assert straight.curve.improved(), f"validation loss did not fall: {straight.curve.valid}"
    assert straight.lora_layers == 8  # the demo has 10 layers: 8 of them, as on the real model
    assert artifacts.is_complete(straight.adapter_dir)
    assert json.loads((straight.adapter_dir / "loss_curve.json").read_text()) == straight.curve.to_json()
    model, _ = load(str(demo_base), adapter_path=str(straight.adapter_dir))
    assert any(name.endswith("lora_a") for name, _ in __import__("mlx.utils").utils.tree_flatten(model.parameters()))


def test_same_inputs_reuse_the_adapters(straight, demo_base):
    again = train_lora(demo_base, TRAIN, VALID, SETTINGS, straight.adapter_dir.parents[1])
    assert again.cached and again.adapter_dir == straight.adapter_dir and again.curve == straight.curve


def test_resume_continues_where_the_interruption_left_off(straight, demo_base, tmp_path):
    import mlx.core as mx

    with pytest.raises(Interrupted):
        train_lora(demo_base, TRAIN, VALID, SETTINGS, tmp_path, progress=stop_at(5))
    lora = tmp_path / "lora"
    assert not any(artifacts.is_complete(p) for p in lora.iterdir()), "an interrupted run published adapters"
    (resume_root,) = lora.glob("*.resume")
    assert [p.name for p in checkpoints(resume_root)] == ["ckpt-0000002", "ckpt-0000004"]

    seen = []

    def record(step, done, total, **figures):
        seen.append((step, done))

    resumed = train_lora(demo_base, TRAIN, VALID, SETTINGS, tmp_path, progress=record)
    assert resumed.resumed_from == 4 and resumed.iters_done == 6 and not resumed.cached
    assert [d for s, d in seen if s == "train"] == [5, 6], "trained iterations the checkpoint already had"
    assert [it for it, _ in resumed.curve.train] == [1, 2, 3, 4, 5, 6]
    assert [it for it, _ in resumed.curve.valid] == [0, 2, 4, 6]
    assert not resume_root.exists()
    # Adam state and batch order come back with the checkpoint: the resumed run
    # matches the uninterrupted one.
    for (it_a, loss_a), (it_b, loss_b) in zip(resumed.curve.train, straight.curve.train):
        assert it_a == it_b and loss_a == pytest.approx(loss_b, rel=1e-3), (resumed.curve.train, straight.curve.train)
    mine = mx.load(str(resumed.adapter_dir / "adapters.safetensors"))
    reference = mx.load(str(straight.adapter_dir / "adapters.safetensors"))
    assert mine.keys() == reference.keys()
    assert all(mx.allclose(mine[k], reference[k], rtol=1e-3, atol=1e-5).item() for k in mine)


_KILLED_RUN = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from test_training import TRAIN, VALID
from punie_gates.model.training import TrainSettings, train_lora
settings = TrainSettings(iters=40, max_seq_length=128, steps_per_eval=40, save_every=1, val_batches=-1)
train_lora(Path(sys.argv[1]), TRAIN, VALID, settings, Path(sys.argv[2]))
"""


def test_killed_process_resumes_from_its_last_checkpoint(demo_base, tmp_path):
    """A real SIGKILL mid-run: the next run starts at the last complete checkpoint, not 0."""
    work = tmp_path / "work"
    here = str(Path(__file__).parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(demo_base), str(work), here],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            roots = list((work / "lora").glob("*.resume")) if (work / "lora").is_dir() else []
            if roots and len(checkpoints(roots[0])) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    (root,) = (work / "lora").glob("*.resume")
    last = int(checkpoints(root)[-1].name[5:])
    assert 1 <= last < 40
    seen = []

    def stop_soon(step, done, total, **figures):
        seen.append((step, done))
        if step == "train":
            raise Interrupted  # one iteration after resuming is enough to know where it resumed

    settings = TrainSettings(iters=40, max_seq_length=128, steps_per_eval=40, save_every=1, val_batches=-1)
    with pytest.raises(Interrupted):
        train_lora(demo_base, TRAIN, VALID, settings, work, progress=stop_soon)
    assert seen == [("train", last + 1)], f"expected to resume after checkpoint {last}, saw {seen}"

    # --fresh ignores the checkpoints: it starts over (validation at 0, then iteration 1).
    seen.clear()
    with pytest.raises(Interrupted):
        train_lora(demo_base, TRAIN, VALID, settings, work, fresh=True, progress=stop_soon)
    assert seen == [("validate", 0), ("train", 1)], f"--fresh resumed from a checkpoint: {seen}"
