"""LoRA training through mlx-lm's tuner, resumable and cached by its inputs.

This runs what `mlx_lm lora` runs (linear_to_lora_layers, ChatDataset,
CacheDataset, TrainingArgs, train, evaluate) with three additions the gates
need on a run that may take days:

- the loss curve (punie_gates.model.loss_curve): training loss every iteration,
  validation loss at iteration 0 (the untrained model: "where it started"), every
  `steps_per_eval` and at the last iteration, each measured after that many
  optimizer steps;
- checkpoints every `save_every` iterations (adapters, Adam state, curve,
  iteration), each written atomically; a restarted run loads the latest one,
  skips the batches already seen and trains only the remaining iterations,
  so it continues as if never interrupted;
- a finished adapter folder keyed by model, data, settings and library
  versions (punie_gates.model.artifacts), reused by later runs unless `fresh`.

The tokenizer is loaded as `mlx_lm.lora` loads it in production's environment
(mlx-lm without mistral-common): `TokenizersBackend` from tokenizer.json and the
shipped chat template, even beside tekken.json (model.tokenizer.training_tokenizer_config;
Gate 0 checks those ids against mistral-common's reference on the serving path).
"""

from __future__ import annotations

import functools
import itertools
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from punie_gates.model import artifacts
from punie_gates.model.disk import check_free_space
from punie_gates.model.loss_curve import LossCurve
from punie_gates.model.sizes import estimate_adapter_bytes, estimate_checkpoint_bytes
from punie_gates.model.tokenizer import render_ids, training_tokenizer_config
from punie_gates.progress import notice

ADAPTERS = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
OPTIMIZER = "optimizer.safetensors"
STATE = "state.json"
CURVE = "loss_curve.json"
INFO = "train_info.json"
KEEP_CHECKPOINTS = 2
SHORT_RUN = 10  # fewer iterations than this validate at 0 and at the end only
DEFAULT_VAL_BATCHES = 25  # mlx-lm's default validation batches
RESUME_SOURCES = "sources.json"  # in the resume folder: the model folder the checkpoints train

Progress = Callable[..., None]


@dataclass(frozen=True)
class TrainSettings:
    """LoRA settings; the defaults are the seed plan's (batch 1, lr 1e-4, 8 layers)."""

    iters: int
    batch_size: int = 1
    learning_rate: float = 1e-4
    num_layers: int = 8
    max_seq_length: int = 2048
    seed: int = 0
    # None: iters // 5, so validation runs at 0, every fifth and the last
    # iteration; a run of fewer than SHORT_RUN iterations validates at 0 and at
    # the end only (the 2 points the loss judgment needs). Each validation costs a
    # pass over `val_batches` batches.
    steps_per_eval: int | None = None
    save_every: int | None = None  # None: iters // 10 (at most a tenth of the run is redone)
    # None: mlx-lm's 25, or the iteration count when the run is shorter (a
    # 4-iteration run does not spend 25 forward passes per validation on 4 steps
    # of training); -1 = the whole validation set.
    val_batches: int | None = None
    lora_rank: int = 8  # rank / scale / dropout: mlx-lm's defaults
    lora_scale: float = 20.0
    lora_dropout: float = 0.0
    # Activation dtype while training. None: float32 on MLX's CPU backend, where
    # quantized matmuls with float16 inputs are ~35x slower than with float32
    # (measured on this machine), else the model's own dtype.
    compute_dtype: str | None = None

    def __post_init__(self) -> None:
        if self.iters < 1:
            raise ValueError(f"iters must be >= 1, got {self.iters}")
        for name in ("batch_size", "num_layers", "max_seq_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps_per_eval", "save_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.val_batches is not None and self.val_batches != -1 and self.val_batches < 1:
            raise ValueError(f"val_batches must be >= 1, -1 (all) or None, got {self.val_batches}")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, iters: int, seed: int = 0) -> TrainSettings:
        """Settings from data/gates.toml's [training] table (batch_size, learning_rate, num_layers, ...)."""
        known = {f.name for f in fields(cls)} - {"iters", "seed"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"[training] has unknown keys {unknown}; known: {sorted(known)}")
        return cls(iters=iters, seed=seed, **dict(table))

    def resolved_compute_dtype(self) -> str | None:
        """The dtype training casts the model's floating parameters to (None: leave them)."""
        if self.compute_dtype is not None:
            return self.compute_dtype
        import mlx.core as mx

        return "float32" if mx.default_device() == mx.cpu else None

    @property
    def eval_every(self) -> int:
        if self.steps_per_eval:
            return self.steps_per_eval
        return self.iters if self.iters < SHORT_RUN else self.iters // 5

    @property
    def validation_batches(self) -> int:
        """Batches per validation pass (mlx-lm's evaluate `num_batches`; -1 = all)."""
        if self.val_batches is not None:
            return self.val_batches
        return min(DEFAULT_VAL_BATCHES, max(2, self.iters))

    @property
    def checkpoint_every(self) -> int:
        return self.save_every or max(1, self.iters // 10)

    def lora_parameters(self) -> dict:
        return {"rank": self.lora_rank, "scale": self.lora_scale, "dropout": self.lora_dropout}


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    curve: LossCurve
    iters_done: int
    resumed_from: int  # 0 for a run that started from scratch
    seconds: float  # training wall time, summed over interrupted attempts
    cached: bool  # True when an earlier run's finished adapters were reused
    lora_layers: int = 0  # layers that got LoRA (num_layers capped at the model's depth)
    info: dict = field(default_factory=dict, compare=False)


def training_key(model_path: Path, train_records, valid_records, settings: TrainSettings) -> dict:
    """Everything a finished adapter depends on (its artifact key)."""
    return {
        "kind": "lora",
        "model": artifacts.tree_fingerprint(model_path),
        "train": artifacts.records_fingerprint(train_records),
        "valid": artifacts.records_fingerprint(valid_records),
        "settings": asdict(settings),
        "compute_dtype": settings.resolved_compute_dtype(),
        "tokenizer_config": training_tokenizer_config(Path(model_path)),  # which backend renders the records
        "versions": artifacts.library_versions(),
    }


def training_token_ids(model_path: Path, records: Sequence[dict]) -> list[list[int]]:
    """Records rendered exactly as training renders them (training_tokenizer_config, tools natively)."""
    from mlx_lm.utils import load_tokenizer

    tokenizer = load_tokenizer(Path(model_path), tokenizer_config_extra=training_tokenizer_config(Path(model_path)))
    return [render_ids(tokenizer, r["messages"], r.get("tools")) for r in records]


def load_for_training(model_path: Path, compute_dtype: str | None = None):
    """mlx-lm model + tokenizer able to render conversations ending with an assistant turn."""
    import mlx.core as mx
    from mlx_lm import load

    # As mlx_lm.lora loads it where production runs it (no mistral-common): TokenizersBackend
    # with the shipped template (checks/serving_parity.py compares those ids with the reference).
    mx.clear_cache()  # freed models of earlier gates must not sit in MLX's cache beside this one
    model, tokenizer = load(str(model_path), tokenizer_config=training_tokenizer_config(Path(model_path)))
    if compute_dtype is not None:
        # Floating parameters only: quantized weights stay packed integers,
        # their scales and biases (and norms, embeddings) take the dtype.
        model.set_dtype(getattr(mx, compute_dtype))
    return model, tokenizer


def train_lora(
    model_path: Path,
    train_records: Sequence[dict],
    valid_records: Sequence[dict],
    settings: TrainSettings,
    work_dir: Path,
    *,
    fresh: bool = False,
    progress: Progress | None = None,
) -> TrainResult:
    """Train LoRA adapters on `model_path`, resuming or reusing earlier work.

    Records are {"messages": [...], "tools": [...]} in the model's chat form
    (the converter's output). Returns where the adapters are (loadable with
    `mlx_lm.load(model, adapter_path=...)`) and the loss curve.
    """
    model_path = Path(model_path)
    train_records, valid_records = list(train_records), list(valid_records)
    if len(train_records) < settings.batch_size:
        raise ValueError(f"need at least batch_size={settings.batch_size} training records, got {len(train_records)}")
    if not valid_records:
        raise ValueError("need validation records: the loss curve is what the gate judges")
    key = training_key(model_path, train_records, valid_records, settings)
    final = artifacts.artifact_dir(work_dir, "lora", key)
    resume_root = final.with_name(f"{final.name}.resume")
    if fresh:
        artifacts.claim(final)  # as cached() does: this run is the one building `final`
        artifacts.discard(resume_root)
    elif (done := artifacts.cached(final)) is not None:
        return _finished(done, cached=True)

    try:  # cached() claimed `final` for this thread; give it back whatever happens
        run = _start(model_path, train_records, valid_records, settings, resume_root, work_dir, progress)
        _train(run, key)
        _publish(run, final, key)
        # Still under the claim: a run that starts this key afresh meanwhile must not
        # have its new checkpoints removed by this one.
        shutil.rmtree(resume_root, ignore_errors=True)
    finally:
        artifacts.release(final)
    return _finished(final, cached=False)


@dataclass
class _Run:
    """One training run in progress: the model being trained and what it has done so far."""

    model: Any
    optimizer: Any
    train_set: Any
    valid_set: Any
    settings: TrainSettings
    resume_root: Path
    report: Progress
    lora_layers: int
    compute_dtype: str
    model_path: Path
    work_dir: Path
    examples: tuple[int, int]  # (train, valid) records
    checkpoint_bytes: int  # what one checkpoint writes (adapters + optimizer state)
    adapter_bytes: int  # what the finished adapters write
    resumed_from: int = 0  # the checkpoint's iteration (0: a fresh start)
    seconds_before: float = 0.0  # training time spent before the checkpoint
    curve: dict = field(default_factory=lambda: {"train": [], "valid": []})
    started: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started


def _start(model_path, train_records, valid_records, settings, resume_root, work_dir, progress) -> _Run:
    """The model with LoRA layers and its optimizer, resumed from the latest checkpoint if any."""
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.datasets import CacheDataset, ChatDataset
    from mlx_lm.tuner.utils import linear_to_lora_layers

    compute_dtype = settings.resolved_compute_dtype()
    model, tokenizer = load_for_training(model_path, compute_dtype)
    model.freeze()
    lora_layers = min(settings.num_layers, len(model.layers))
    mx.random.seed(settings.seed)
    linear_to_lora_layers(model, lora_layers, settings.lora_parameters())
    trainable_bytes = sum(v.nbytes for _, v in tree_flatten(model.trainable_parameters()))
    checkpoint_bytes = estimate_checkpoint_bytes(trainable_bytes)
    adapter_bytes = estimate_adapter_bytes(trainable_bytes)
    # Refuse now rather than after hours: the kept checkpoints, the one being written, the adapters.
    check_free_space(resume_root, (KEEP_CHECKPOINTS + 1) * checkpoint_bytes + adapter_bytes,
                     what="training checkpoints and adapters", work_dir=work_dir)  # fmt: skip
    run = _Run(
        model=model,
        optimizer=optim.Adam(learning_rate=settings.learning_rate),
        train_set=CacheDataset(ChatDataset(train_records, tokenizer)),
        valid_set=CacheDataset(ChatDataset(valid_records, tokenizer)),
        settings=settings,
        resume_root=resume_root,
        report=progress or (lambda *args, **kwargs: None),
        lora_layers=lora_layers,
        compute_dtype=compute_dtype,
        model_path=model_path,
        work_dir=work_dir,
        examples=(len(train_records), len(valid_records)),
        checkpoint_bytes=checkpoint_bytes,
        adapter_bytes=adapter_bytes,
    )
    _resume(run)
    mx.eval(run.model.parameters(), run.optimizer.state)
    return run


def _resume(run: _Run) -> None:
    import mlx.core as mx
    from mlx.utils import tree_unflatten

    checkpoint = latest_checkpoint(run.resume_root, check_content=True)
    if checkpoint is None:
        return
    state = json.loads((checkpoint / STATE).read_text(encoding="utf-8"))
    run.resumed_from, run.seconds_before, run.curve = state["iteration"], state["seconds"], state["curve"]
    left = run.settings.iters - run.resumed_from
    notice(f"resuming training from iteration {run.resumed_from} of {run.settings.iters} "
           f"(checkpoint {checkpoint}; {left} iteration{'s' if left != 1 else ''} to go)")  # fmt: skip
    run.model.load_weights(str(checkpoint / ADAPTERS), strict=False)  # mlx-lm's resume_adapter_file
    run.optimizer.state = tree_unflatten(list(mx.load(str(checkpoint / OPTIMIZER)).items()))


def _validate(run: _Run, iteration: int) -> None:
    import numpy as np
    from mlx_lm.tuner.trainer import evaluate

    # iterate_batches draws a permutation from numpy's global RNG even for
    # evaluation; keep the training order independent of how many
    # validations ran, so a resumed run sees the same batches.
    rng = np.random.get_state()
    tic = time.perf_counter()
    s = run.settings
    loss = evaluate(run.model, run.valid_set, s.batch_size, s.validation_batches, max_seq_length=s.max_seq_length)
    np.random.set_state(rng)
    run.model.train()
    run.curve["valid"] = [p for p in run.curve["valid"] if p[0] != iteration] + [[iteration, float(loss)]]
    run.report("validate", iteration, s.iters, val_loss=float(loss), seconds=time.perf_counter() - tic)


def _save_checkpoint(run: _Run, iteration: int) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    target = run.resume_root / f"ckpt-{iteration:07d}"
    what = f"the training checkpoint at iteration {iteration}"
    with artifacts.building(target, needed_bytes=run.checkpoint_bytes, what=what, work_dir=run.work_dir) as tmp:
        mx.save_safetensors(str(tmp / ADAPTERS), dict(tree_flatten(run.model.trainable_parameters())))
        mx.save_safetensors(str(tmp / OPTIMIZER), dict(tree_flatten(run.optimizer.state)))
        state = {"iteration": iteration, "seconds": run.seconds(), "curve": run.curve, "settings": asdict(run.settings)}
        (tmp / STATE).write_text(json.dumps(state), encoding="utf-8")
    for old in checkpoints(run.resume_root)[:-KEEP_CHECKPOINTS]:
        artifacts.discard(old)


class GateTrainingCallback:
    """mlx-lm's training callback (duck-typed: its trainer calls these two methods):
    records the loss curve by global iteration, validates and checkpoints on the
    suite's schedule, and reports progress."""

    def __init__(self, run: _Run):
        self.run = run

    def on_train_loss_report(self, info: dict) -> None:
        run, s = self.run, self.run.settings
        iteration = run.resumed_from + int(info["iteration"])
        run.curve["train"].append([iteration, float(info["train_loss"])])
        run.report(
            "train",
            iteration,
            s.iters,
            loss=float(info["train_loss"]),
            tokens_per_second=float(info["tokens_per_second"]),
            peak_memory_gb=float(info["peak_memory"]),
        )
        if iteration % s.eval_every == 0 or iteration == s.iters:
            _validate(run, iteration)
        if iteration % s.checkpoint_every == 0 and iteration < s.iters:
            _save_checkpoint(run, iteration)

    def on_val_loss_report(self, info: dict) -> None:
        """Unused: validation is ours, by global iteration."""


def _resumable_batches(skip: int, dataset, batch_size, max_seq_length, loop=False, seed=None, comm_group=None):
    from mlx_lm.tuner.trainer import iterate_batches

    batches = iterate_batches(dataset, batch_size, max_seq_length, loop=loop, seed=seed, comm_group=comm_group)
    # Training (loop=True) skips what the checkpoint already trained on.
    return itertools.islice(batches, skip, None) if loop else batches


def _train(run: _Run, key: Mapping[str, Any]) -> None:
    import numpy as np
    from mlx_lm.tuner.trainer import TrainingArgs, train

    s = run.settings
    remaining = s.iters - run.resumed_from
    run.resume_root.mkdir(parents=True, exist_ok=True)
    # What the checkpoints belong to, for `punie-gates work` (punie_gates.model.workdir).
    (run.resume_root / artifacts.INPUTS).write_text(
        json.dumps(key, indent=1, sort_keys=True, default=str), encoding="utf-8"
    )
    (run.resume_root / RESUME_SOURCES).write_text(
        json.dumps({"model": str(run.model_path.absolute())}), encoding="utf-8"
    )
    np.random.seed(s.seed)
    run.started = time.perf_counter()
    if run.resumed_from == 0:
        _validate(run, 0)
    if remaining <= 0:
        return
    args = TrainingArgs(
        batch_size=s.batch_size,
        iters=remaining,
        val_batches=s.validation_batches,
        steps_per_report=1,
        steps_per_eval=remaining + 1,  # validation is ours (the callback), by global iteration
        steps_per_save=remaining + 1,  # checkpoints are ours, written atomically
        max_seq_length=s.max_seq_length,
        adapter_file=str(run.resume_root / "mlx_lm_last.safetensors"),  # never trusted
    )
    run.model.train()
    train(
        run.model,
        run.optimizer,
        run.train_set,
        None,
        args=args,
        iterate_batches=functools.partial(_resumable_batches, run.resumed_from),
        training_callback=GateTrainingCallback(run),
    )


def _publish(run: _Run, final: Path, key: Mapping[str, Any]) -> None:
    """The finished adapter, its config, curve and run record, written atomically."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    s = run.settings
    info = {
        "iters_done": s.iters,
        "resumed_from": run.resumed_from,
        "seconds": run.seconds(),
        "lora_layers": run.lora_layers,
        "compute_dtype": run.compute_dtype,
        "model_layers": len(run.model.layers),
        "train_examples": run.examples[0],
        "valid_examples": run.examples[1],
        "settings": asdict(s),
        "base_model": str(run.model_path),
    }
    with artifacts.building(final, key, sources={"model": run.model_path}, needed_bytes=run.adapter_bytes,
                            what="the trained adapters", work_dir=run.work_dir, keep_claim=True) as tmp:  # fmt: skip
        mx.save_safetensors(str(tmp / ADAPTERS), dict(tree_flatten(run.model.trainable_parameters())))
        adapter_config = {
            "fine_tune_type": "lora",
            "num_layers": run.lora_layers,
            "lora_parameters": s.lora_parameters(),
            **{k: v for k, v in asdict(s).items() if not k.startswith("lora_")},
        }
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(adapter_config, indent=1), encoding="utf-8")
        (tmp / CURVE).write_text(json.dumps(run.curve), encoding="utf-8")
        (tmp / INFO).write_text(json.dumps(info, indent=1), encoding="utf-8")


def _finished(folder: Path, cached: bool) -> TrainResult:
    info = json.loads((folder / INFO).read_text(encoding="utf-8"))
    curve = LossCurve.from_json(json.loads((folder / CURVE).read_text(encoding="utf-8")))
    return TrainResult(
        adapter_dir=folder,
        curve=curve,
        iters_done=info["iters_done"],
        resumed_from=info["resumed_from"],
        seconds=info["seconds"],
        cached=cached,
        lora_layers=info["lora_layers"],
        info=info,
    )


def checkpoints(resume_root: Path) -> list[Path]:
    """Complete checkpoint folders under `resume_root`, oldest first."""
    if not Path(resume_root).is_dir():
        return []
    found = [p for p in Path(resume_root).glob("ckpt-*") if p.name[5:].isdigit() and artifacts.is_complete(p)]
    return sorted(found, key=lambda p: int(p.name[5:]))


def latest_checkpoint(resume_root: Path, *, check_content: bool = False) -> Path | None:
    """The newest complete checkpoint; with `check_content`, the newest whose files still
    match their manifest (a damaged one is named, set aside and an older one used)."""
    found = checkpoints(resume_root)
    while found and check_content:
        problem = artifacts.verify(found[-1])
        if problem is None:
            break
        notice(f"training checkpoint {found[-1]} is damaged ({problem}); not resuming from it")
        artifacts.discard(found.pop())
    return found[-1] if found else None
