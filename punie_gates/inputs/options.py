"""The suite's options: pytest command-line flags, ini keys and environment variables.

Every option has a flag (`--candidate`), most an ini key (`candidate = ...` under
[tool.pytest.ini_options]) and some an environment variable; the flag wins, then
the environment, then the ini key, then the default (from data/gates.toml where
the figure is a threshold).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from punie_gates.errors import DataFileError, OptionError
from punie_gates.inputs import paths
from punie_gates.inputs.gates import Gate, GateRegistry, builtin_gates, load_gates

# Verified to exist on the hub; the suite quantizes it to 5 bits itself (from 8
# bits more of the original survives than from a 4-bit re-quantization).
DEFAULT_CANDIDATE = "mlx-community/Devstral-Small-2-24B-Instruct-2512-8bit"
# Queries decoded together by default (the gates' --gen-batch-size, the bench's).
# On the demo here 8 was as fast as 16, 20 or 40 and faster than 1 or 4; on a 24B
# model every row also holds its own copy of the ~0.8k-token prefix in the cache.
DEFAULT_BATCH_SIZE = 8
# How the gates ask their queries: through mlx_lm.server, as Punie's agent does, or
# generated in this process (the reference path, and for machines where no server runs).
ANSWER_VIA = ("server", "inprocess")
# What a run does with a cached artifact whose files no longer match their
# manifest (punie_gates.model.artifacts.verify): rebuild it, saying so, or refuse.
DAMAGED_CACHE = ("rebuild", "refuse")


@dataclass(frozen=True)
class Option:
    flag: str
    dest: str
    help: str
    ini: str | None = None
    env: str | None = None
    type: Any = str
    default: Any = None
    action: str | None = None
    choices: tuple[str, ...] | None = None


OPTIONS = (
    Option("--candidate", "candidate", "the model to judge: 'demo', 'demo-agent', a local MLX model folder or a Hugging Face repo id", ini="candidate", env="PUNIE_GATES_CANDIDATE", default=DEFAULT_CANDIDATE),
    Option("--baseline", "baseline", "the model in production (Qwen3 Phase 27), measured beside the candidate where a gate compares", ini="baseline", env="PUNIE_GATES_BASELINE"),
    Option("--report-dir", "report_dir", "folder for gate-report.json/.md, responses, benchmarks and plots", ini="report_dir", env="PUNIE_GATES_REPORT_DIR", default="reports"),
    Option("--work-dir", "work_dir", "folder for converted data, adapters and fused models, keyed by their inputs (default: <cache>/work)", ini="work_dir", env="PUNIE_GATES_WORK_DIR"),
    Option("--run-all-gates", "run_all_gates", "run every gate even after a hard failure (diagnosis; the verdict is unchanged)", action="store_true"),
    Option("--memory-budget-gb", "memory_budget_gb", "Gate 1 peak-memory budget in GB (default from data/gates.toml: 20)", ini="memory_budget_gb", type=float),
    Option("--queries", "queries", "validation queries TOML (default data/queries.toml)", ini="queries", env="PUNIE_GATES_QUERIES"),
    Option("--tools", "tools", "tool catalog TOML (default data/tools.toml)", ini="tools"),
    Option("--gates", "gates", "gate thresholds TOML (default data/gates.toml)", ini="gates"),
    Option("--training-data", "training_data", "folder with train.jsonl and valid.jsonl in Qwen3 form (default: data/phase27_merged, Punie's layout; the demos use fixtures/demo-training)", ini="training_data", env="PUNIE_GATES_TRAINING_DATA"),
    Option("--system-prompt", "system_prompt", "file with the system prompt for validation queries (default: the training data's most common one)", ini="system_prompt"),
    Option("--gate4-iters", "gate4_iters", "Gate 4 LoRA iterations (default 50)", type=int),
    Option("--gate5-iters", "gate5_iters", "Gate 5 LoRA iterations (default 500)", type=int),
    Option("--gate4-examples", "gate4_examples", "Gate 4 training examples, a stratified sample (default 100)", type=int),
    Option("--fresh", "fresh", "ignore cached work (converted data, quantized models, adapters, fused models)", action="store_true"),
    Option("--damaged-cache", "damaged_cache", "what to do with a cached artifact whose files changed since it was built: 'rebuild' it (default; the terminal names it) or 'refuse' (the run stops with ERROR)", ini="damaged_cache", env="PUNIE_GATES_DAMAGED_CACHE", default="rebuild", choices=DAMAGED_CACHE),
    Option("--gen-batch-size", "gen_batch_size", f"how many validation queries to generate at once (default {DEFAULT_BATCH_SIZE}; 1 = the one-at-a-time reference path)", ini="gen_batch_size", env="PUNIE_GATES_GEN_BATCH_SIZE", type=int, default=DEFAULT_BATCH_SIZE),
    Option("--max-tokens", "max_tokens", "generation budget per validation query", ini="max_tokens", type=int, default=512),
    Option("--bench", "bench", "Gate 2 also times the validation answers the plan's way (one at a time, full prompt) against the suite's (shared prefix, batches) and puts the figures in the report; doubles that generation time", ini="bench", env="PUNIE_GATES_BENCH", action="store_true"),
    Option("--answer-via", "answer_via", "how Gates 2-5 ask their queries: 'server' (mlx_lm.server with the OpenAI client, as Punie's agent does) or 'inprocess' (generated in this process: the reference path)", ini="answer_via", env="PUNIE_GATES_ANSWER_VIA", default="server", choices=ANSWER_VIA),
    Option("--serve-python", "serve_python", "the Python interpreter that runs mlx_lm.server, e.g. production's .venv/bin/python (default: this one, with mistral-common hidden from the server, as an environment with mlx-lm alone has it)", ini="serve_python", env="PUNIE_GATES_SERVE_PYTHON"),
    Option("--seed", "seed", "seed for sampling examples and training", type=int, default=0),
    Option("--fusion", "fusion", "how Gates 4 and 5 fuse the adapter and quantize: 'streamed' (layer by layer, no float16 copy on disk) or 'recipe' (the seed's fuse --dequantize then convert, the reference); default from data/gates.toml (streamed)", ini="fusion", env="PUNIE_GATES_FUSION"),
)
# Ways to fuse a trained adapter into the candidate (--fusion, [gate4]/[gate5] fusion in data/gates.toml).
FUSION_METHODS = ("streamed", "recipe")


@dataclass(frozen=True)
class GateConfig:
    candidate: str
    baseline: str | None
    report_dir: Path
    work_dir: Path
    cache_dir: Path
    run_all_gates: bool
    memory_budget_gb: float
    queries_path: Path
    tools_path: Path
    gates_path: Path
    training_data: Path | None
    system_prompt_path: Path | None
    gate4_iters: int
    gate5_iters: int
    gate4_examples: int
    gate4_valid_examples: int
    fresh: bool
    damaged_cache: str
    gen_batch_size: int
    max_tokens: int
    bench: bool
    seed: int
    answer_via: str
    offline: bool
    gates: GateRegistry
    fusion: str | None = None  # --fusion: overrides [gate4]/[gate5] fusion of the gates file
    serve_python: Path | None = None  # --serve-python: production's interpreter for mlx_lm.server (None: ours)

    def __repr__(self) -> str:  # short: pytest shows fixture values in tracebacks
        return f"GateConfig(candidate={self.candidate!r}, report_dir='{self.report_dir}', work_dir='{self.work_dir}')"

    @property
    def is_demo(self) -> bool:
        return self.candidate in ("demo", "demo-agent")

    @property
    def target_bits(self) -> int:
        """The bits every gate after Gate 1 measures the candidate at ([gate1] target_bits)."""
        return int(self.gates["gate1"]["target_bits"])

    @property
    def training(self) -> Mapping[str, Any]:
        return self.gates.training

    def gate(self, name: str) -> Gate:
        return self.gates[name]

    def fusion_for(self, gate: str) -> str:
        """How the training gate fuses: --fusion, else its gates file's `fusion` ("streamed" or "recipe")."""
        return self.fusion or str(self.gates[gate]["fusion"])

    def lora_iters(self, gate: str) -> int:
        """The training gate's LoRA iterations (--gate4-iters / --gate5-iters, else gates.toml)."""
        return {"gate4": self.gate4_iters, "gate5": self.gate5_iters}[gate]


def add_options(parser) -> None:
    group = parser.getgroup("punie-gates", "punie-gates: the candidate and the gates")
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {"dest": f"punie_{opt.dest}", "help": opt.help}
        if opt.action:
            kwargs["action"] = opt.action
        else:
            kwargs["type"] = opt.type
            kwargs["default"] = None
            if opt.choices:
                kwargs["choices"] = opt.choices
        group.addoption(opt.flag, **kwargs)
        if opt.ini:
            parser.addini(opt.ini, opt.help, default=None)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _convert(opt: Option, value: str, source: str) -> Any:
    """A value from the environment or an ini file, as the option's type; a bad one names its source."""
    text = str(value).strip()
    if opt.action == "store_true":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise OptionError(f"{source}: expected one of {', '.join(_TRUE + _FALSE)} for {opt.flag}, got {text!r}")
    if opt.choices and text not in opt.choices:
        raise OptionError(f"{source}: {opt.flag} must be one of {', '.join(opt.choices)}, got {text!r}")
    try:
        return opt.type(text)
    except ValueError:
        raise OptionError(f"{source}: {opt.flag} needs {opt.type.__name__}, got {text!r}") from None


def _pick(opt: Option, given: Any, environ: Mapping[str, str], ini: Callable[[str], Any] | None) -> Any:
    """The flag's value, else the environment's, else the ini key's, else the default."""
    if given not in (None, False):
        return given
    if opt.env and environ.get(opt.env):
        return _convert(opt, environ[opt.env], f"environment variable {opt.env}")
    if opt.ini and ini is not None:
        value = ini(opt.ini)
        if value not in (None, "", []):
            return _convert(opt, value, f"ini key {opt.ini!r}")
    return opt.default if not opt.action else False


def _path(value: str | None, root: Path) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (root / p)


def _at_least_one(value: Any, flag: str) -> int:
    if int(value) < 1:
        raise OptionError(f"{flag} must be at least 1, got {value}")
    return int(value)


def _choice(value: Any, dest: str) -> str:
    # Flags are checked by argparse and env/ini values by _convert; this catches a caller's `given`.
    opt = next(o for o in OPTIONS if o.dest == dest)
    if value not in opt.choices:
        raise OptionError(f"{opt.flag} must be one of {', '.join(opt.choices)}, got {value!r}")
    return str(value)


def _serve_python(value: str | None, root: Path) -> Path | None:
    """--serve-python as an absolute path to an existing interpreter (not resolved: a venv's
    python is a link whose own path selects the venv)."""
    path = _path(value, root)
    if path is None:
        return None
    if not path.is_file() or not os.access(path, os.X_OK):
        raise OptionError(f"--serve-python (ini serve_python, PUNIE_GATES_SERVE_PYTHON): {path} is not an executable "
                          "file; give the interpreter production runs mlx_lm.server with, e.g. /path/to/punie/.venv/bin/python")
    return path


def resolve_report_dir(
    given: Mapping[str, Any], *, root: Path, environ: Mapping[str, str] = os.environ,
    ini: Callable[[str], Any] | None = None,
) -> Path:
    """The --report-dir alone (flag, environment, ini key, default): known even when
    another option or the gates file is broken, so that run's report goes there too."""
    opt = next(o for o in OPTIONS if o.dest == "report_dir")
    return _path(_pick(opt, given.get("report_dir"), environ, ini), root)


def report_dir_from_pytest(config) -> Path:
    return resolve_report_dir({"report_dir": config.getoption("punie_report_dir")},
                              root=Path(config.invocation_params.dir), ini=config.getini)


def resolve_options(
    given: Mapping[str, Any],
    *,
    root: Path,
    environ: Mapping[str, str] = os.environ,
    ini: Callable[[str], Any] | None = None,
) -> GateConfig:
    """The run's options from flags (`given`, by dest; None = not given), the environment,
    ini keys and the gates file. The plugin and the commands both resolve options here."""
    get = {opt.dest: _pick(opt, given.get(opt.dest), environ, ini) for opt in OPTIONS}
    data = paths.data_dir()
    gates_path = _path(get["gates"], root) or data / "gates.toml"
    gates = load_gates(gates_path, like=builtin_gates())
    cache = paths.cache_dir()
    candidate = str(get["candidate"])

    training = _path(get["training_data"], root)
    if training is None:
        training = paths.fixtures_dir() / "demo-training" if candidate in ("demo", "demo-agent") else root / "data" / "phase27_merged"

    def pick(value, gate, key):
        return value if value is not None else gates[gate][key]

    fusion = get["fusion"]
    if fusion is not None and fusion not in FUSION_METHODS:
        raise OptionError(f"--fusion (ini fusion, PUNIE_GATES_FUSION) must be one of {', '.join(FUSION_METHODS)}, got {fusion!r}")
    for gate in ("gate4", "gate5"):
        if gates[gate]["fusion"] not in FUSION_METHODS:
            raise DataFileError(f"{gates_path}: [{gate}] fusion must be one of {', '.join(FUSION_METHODS)}, "
                                f"got {gates[gate]['fusion']!r}")

    return GateConfig(
        candidate=candidate,
        baseline=get["baseline"],
        report_dir=_path(get["report_dir"], root),
        work_dir=_path(get["work_dir"], root) or cache / "work",
        cache_dir=cache,
        run_all_gates=bool(get["run_all_gates"]),
        memory_budget_gb=float(pick(get["memory_budget_gb"], "gate1", "memory_budget_gb")),
        queries_path=_path(get["queries"], root) or data / "queries.toml",
        tools_path=_path(get["tools"], root) or data / "tools.toml",
        gates_path=gates_path,
        training_data=training,
        system_prompt_path=_path(get["system_prompt"], root),
        gate4_iters=int(pick(get["gate4_iters"], "gate4", "iters")),
        gate5_iters=int(pick(get["gate5_iters"], "gate5", "iters")),
        gate4_examples=int(pick(get["gate4_examples"], "gate4", "examples")),
        gate4_valid_examples=int(gates["gate4"]["valid_examples"]),
        fresh=bool(get["fresh"]),
        damaged_cache=_choice(get["damaged_cache"], "damaged_cache"),
        gen_batch_size=_at_least_one(get["gen_batch_size"], "--gen-batch-size"),
        max_tokens=_at_least_one(get["max_tokens"], "--max-tokens"),
        bench=bool(get["bench"]),
        seed=int(get["seed"]),
        answer_via=_choice(get["answer_via"], "answer_via"),
        offline=environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False"),
        gates=gates,
        fusion=fusion,
        serve_python=_serve_python(get["serve_python"], root),
    )


def from_pytest(config) -> GateConfig:
    """The options of a pytest run (its flags and ini keys, this process's environment)."""
    given = {opt.dest: config.getoption(f"punie_{opt.dest}") for opt in OPTIONS}
    return resolve_options(given, root=Path(config.invocation_params.dir), ini=config.getini)
