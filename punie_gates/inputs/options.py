"""The suite's options: pytest command-line flags, ini keys and environment variables.

Every option has a flag (`--candidate`), most an ini key (`candidate = ...` under
[tool.pytest.ini_options]) and some an environment variable; the flag wins, then
the environment, then the ini key, then the default (from data/gates.toml where
the figure is a threshold).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from punie_gates.errors import OptionError
from punie_gates.inputs import paths
from punie_gates.inputs.gates import GateRegistry, builtin_gates, load_gates
from punie_gates.inputs.settings import AT_LEAST_ONE, COUNT, GateSettings, Origin, Rule, shown

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
# An OpenAI-compatible server as a model (--candidate/--baseline URL): the schemes allowed,
# where its API key is read from, and how long one request may take (bounded both ways).
ENDPOINT_SCHEMES = ("http", "https")
DEFAULT_API_KEY_ENV = "PUNIE_GATES_API_KEY"
DEFAULT_ENDPOINT_TIMEOUT_S = 600.0
MIN_ENDPOINT_TIMEOUT_S, MAX_ENDPOINT_TIMEOUT_S = 1.0, 7200.0
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# What a run does with a cached artifact whose files no longer match their
# manifest (punie_gates.model.artifacts.verify): rebuild it, saying so, or refuse.
DAMAGED_CACHE = ("rebuild", "refuse")
# Seconds mlx_lm.server may leave /health unanswered before the run stops it and ends
# ERROR (docs/reliability-servers.md); a working server answers in well under a second.
DEFAULT_SERVER_STALL_TIMEOUT_S = 120.0


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
    sets: tuple[str, ...] = ()  # the gates-file settings it overrides: "gate4.iters"


OPTIONS = (
    Option(
        "--candidate",
        "candidate",
        "the model to judge: 'demo', 'demo-agent', a local MLX model folder, a Hugging Face repo id, or an OpenAI-compatible server http://HOST:PORT/v1 (screened only: the gates that need its files do not run)",
        ini="candidate",
        env="PUNIE_GATES_CANDIDATE",
        default=DEFAULT_CANDIDATE,
    ),
    Option(
        "--baseline",
        "baseline",
        "the model in production (Qwen3 Phase 27), measured beside the candidate where a gate compares: a folder, a repo id, or its running server http://HOST:PORT/v1",
        ini="baseline",
        env="PUNIE_GATES_BASELINE",
    ),
    Option(
        "--candidate-model",
        "candidate_model",
        "with --candidate URL: the `model` field of its requests (default: default_model, the model mlx_lm.server was started with)",
        ini="candidate_model",
        env="PUNIE_GATES_CANDIDATE_MODEL",
    ),
    Option(
        "--baseline-model",
        "baseline_model",
        "with --baseline URL: the `model` field of its requests (default: default_model)",
        ini="baseline_model",
        env="PUNIE_GATES_BASELINE_MODEL",
    ),
    Option(
        "--api-key-env",
        "api_key_env",
        f"the environment variable holding the API key sent to an endpoint (default {DEFAULT_API_KEY_ENV}; the key itself is never an option and never written anywhere)",
        ini="api_key_env",
        default=DEFAULT_API_KEY_ENV,
    ),
    Option(
        "--endpoint-timeout",
        "endpoint_timeout",
        f"seconds an endpoint may take to answer one request, {MIN_ENDPOINT_TIMEOUT_S:g}-{MAX_ENDPOINT_TIMEOUT_S:g} (default {DEFAULT_ENDPOINT_TIMEOUT_S:g}); beyond it the run ends ERROR, not judged",
        ini="endpoint_timeout",
        env="PUNIE_GATES_ENDPOINT_TIMEOUT",
        type=float,
        default=DEFAULT_ENDPOINT_TIMEOUT_S,
    ),
    Option(
        "--report-dir",
        "report_dir",
        "folder for gate-report.json/.md, responses, benchmarks and plots",
        ini="report_dir",
        env="PUNIE_GATES_REPORT_DIR",
        default="reports",
    ),
    Option(
        "--work-dir",
        "work_dir",
        "folder for converted data, adapters and fused models, keyed by their inputs (default: <cache>/work)",
        ini="work_dir",
        env="PUNIE_GATES_WORK_DIR",
    ),
    Option(
        "--run-all-gates",
        "run_all_gates",
        "run every gate even after a hard failure (diagnosis; the verdict is unchanged)",
        action="store_true",
    ),
    Option(
        "--memory-budget-gb",
        "memory_budget_gb",
        "Gate 1 peak-memory budget in GB (default: data/gates.toml [gate1] memory_budget_gb)",
        ini="memory_budget_gb",
        type=float,
        sets=("gate1.memory_budget_gb",),
    ),
    Option(
        "--queries",
        "queries",
        "validation queries TOML (default data/queries.toml)",
        ini="queries",
        env="PUNIE_GATES_QUERIES",
    ),
    Option("--tools", "tools", "tool catalog TOML (default data/tools.toml)", ini="tools"),
    Option("--gates", "gates", "gate thresholds TOML (default data/gates.toml)", ini="gates"),
    Option(
        "--training-data",
        "training_data",
        "folder with train.jsonl and valid.jsonl in Qwen3 form (default: data/phase27_merged, Punie's layout; the demos use fixtures/demo-training)",
        ini="training_data",
        env="PUNIE_GATES_TRAINING_DATA",
    ),
    Option(
        "--system-prompt",
        "system_prompt",
        "file with the system prompt for validation queries (default: the training data's most common one)",
        ini="system_prompt",
    ),
    Option(
        "--gate4-iters",
        "gate4_iters",
        "Gate 4 LoRA iterations (default: data/gates.toml [gate4] iters)",
        type=int,
        sets=("gate4.iters",),
    ),
    Option(
        "--gate5-iters",
        "gate5_iters",
        "Gate 5 LoRA iterations (default: data/gates.toml [gate5] iters)",
        type=int,
        sets=("gate5.iters",),
    ),
    Option(
        "--gate4-examples",
        "gate4_examples",
        "Gate 4 training examples, a stratified sample (default: data/gates.toml [gate4] examples)",
        type=int,
        sets=("gate4.examples",),
    ),
    Option(
        "--fresh",
        "fresh",
        "ignore cached work (converted data, quantized models, adapters, fused models)",
        action="store_true",
    ),
    Option(
        "--damaged-cache",
        "damaged_cache",
        "what to do with a cached artifact whose files changed since it was built: 'rebuild' it (default; the terminal names it) or 'refuse' (the run stops with ERROR)",
        ini="damaged_cache",
        env="PUNIE_GATES_DAMAGED_CACHE",
        default="rebuild",
        choices=DAMAGED_CACHE,
    ),
    Option(
        "--gen-batch-size",
        "gen_batch_size",
        f"how many validation queries to generate at once (default {DEFAULT_BATCH_SIZE}; 1 = the one-at-a-time reference path)",
        ini="gen_batch_size",
        env="PUNIE_GATES_GEN_BATCH_SIZE",
        type=int,
        default=DEFAULT_BATCH_SIZE,
    ),
    Option(
        "--max-tokens", "max_tokens", "generation budget per validation query", ini="max_tokens", type=int, default=512
    ),
    Option(
        "--bench",
        "bench",
        "Gate 2 also times the validation answers the plan's way (one at a time, full prompt) against the suite's (shared prefix, batches) and puts the figures in the report; doubles that generation time",
        ini="bench",
        env="PUNIE_GATES_BENCH",
        action="store_true",
    ),
    Option(
        "--answer-via",
        "answer_via",
        "how Gates 2-5 ask their queries: 'server' (mlx_lm.server with the OpenAI client, as Punie's agent does) or 'inprocess' (generated in this process: the reference path)",
        ini="answer_via",
        env="PUNIE_GATES_ANSWER_VIA",
        default="server",
        choices=ANSWER_VIA,
    ),
    Option(
        "--server-stall-timeout",
        "server_stall_timeout",
        f"seconds mlx_lm.server may leave /health unanswered while it serves before the run stops it and ends ERROR (default {DEFAULT_SERVER_STALL_TIMEOUT_S:g})",
        ini="server_stall_timeout",
        env="PUNIE_GATES_SERVER_STALL_TIMEOUT",
        type=float,
        default=DEFAULT_SERVER_STALL_TIMEOUT_S,
    ),
    Option(
        "--serve-python",
        "serve_python",
        "the Python interpreter that runs mlx_lm.server, e.g. production's .venv/bin/python (default: this one, with mistral-common hidden from the server, as an environment with mlx-lm alone has it)",
        ini="serve_python",
        env="PUNIE_GATES_SERVE_PYTHON",
    ),
    Option(
        "--heldout-limit",
        "heldout_limit",
        "Gates 4 and 5 score the next step at the first N assistant turns of the training data's held-out split (valid.jsonl, conversations also in train.jsonl left out; default: every turn, 148 for Phase 27; 0: not measured)",
        ini="heldout_limit",
        env="PUNIE_GATES_HELDOUT_LIMIT",
        type=int,
    ),
    Option("--seed", "seed", "seed for sampling examples and training", type=int, default=0),
    Option(
        "--fusion",
        "fusion",
        "how Gates 4 and 5 fuse the adapter and quantize: 'streamed' (layer by layer, no float16 copy on disk) or 'recipe' (the seed's fuse --dequantize then convert, the reference); default from data/gates.toml (streamed)",
        ini="fusion",
        env="PUNIE_GATES_FUSION",
        sets=("gate4.fusion", "gate5.fusion"),
    ),
)
# Options that are not gate settings, checked like them: (dest, rule, what it is).
_OPTION_RULES = (
    ("gen_batch_size", AT_LEAST_ONE, "queries generated at once"),
    ("max_tokens", AT_LEAST_ONE, "generation budget per validation query"),
    ("seed", COUNT, "seed for sampling and training"),
)


@dataclass(frozen=True)
class GateConfig:
    candidate: str
    baseline: str | None
    report_dir: Path
    work_dir: Path
    cache_dir: Path
    run_all_gates: bool
    queries_path: Path
    tools_path: Path
    gates_path: Path
    training_data: Path | None
    system_prompt_path: Path | None
    fresh: bool
    damaged_cache: str
    gen_batch_size: int
    max_tokens: int
    bench: bool
    seed: int
    answer_via: str
    offline: bool
    gates: GateRegistry
    """The gates and their settings, the options that override a setting applied."""
    server_stall_timeout_s: float = DEFAULT_SERVER_STALL_TIMEOUT_S  # --server-stall-timeout
    candidate_model: str | None = None  # --candidate-model: the request's `model` for an endpoint candidate
    baseline_model: str | None = None  # --baseline-model: the same for an endpoint baseline
    api_key_env: str = DEFAULT_API_KEY_ENV  # --api-key-env: the variable holding an endpoint's key (never the key)
    endpoint_timeout_s: float = DEFAULT_ENDPOINT_TIMEOUT_S  # --endpoint-timeout
    serve_python: Path | None = None  # --serve-python: production's interpreter for mlx_lm.server (None: ours)
    heldout_limit: int | None = None  # --heldout-limit: held-out turns scored (None: all; 0: none)

    def __repr__(self) -> str:  # short: pytest shows fixture values in tracebacks
        return f"GateConfig(candidate={self.candidate!r}, report_dir='{self.report_dir}', work_dir='{self.work_dir}')"

    @property
    def is_demo(self) -> bool:
        return self.candidate in ("demo", "demo-agent")

    @property
    def settings(self) -> GateSettings:
        """Every gate's settings (`settings.gate4.min_correct`) and [training], typed and checked."""
        return self.gates.settings

    @property
    def candidate_endpoint(self) -> str | None:
        """The candidate's base URL when it is an OpenAI-compatible server, else None."""
        return endpoint_url(self.candidate)

    @property
    def baseline_endpoint(self) -> str | None:
        """The baseline's base URL when it is an OpenAI-compatible server, else None."""
        return endpoint_url(self.baseline) if self.baseline else None

    @property
    def target_bits(self) -> int:
        """The bits every gate after Gate 1 measures the candidate at ([gate1] target_bits)."""
        return self.settings.gate1.target_bits


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
    return _given(opt, given, environ, ini)[0]


def _given(
    opt: Option, given: Any, environ: Mapping[str, str], ini: Callable[[str], Any] | None
) -> tuple[Any, Origin | None]:
    """_pick's value and where it came from ("--gate4-iters {value}"; None: the default)."""
    if given is not None and given is not False:  # `not in (None, False)` would drop a given 0
        return given, f"{opt.flag} {{value}}"
    if opt.env and environ.get(opt.env):
        return _convert(
            opt, environ[opt.env], f"environment variable {opt.env}"
        ), f"environment variable {opt.env}={{value}} ({opt.flag})"
    if opt.ini and ini is not None:
        value = ini(opt.ini)
        if value not in (None, "", []):
            return _convert(opt, value, f"ini key {opt.ini!r}"), f"ini key {opt.ini} = {{value}} ({opt.flag})"
    return (opt.default if not opt.action else False), None


def _path(value: str | None, root: Path) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (root / p)


def _checked(dest: str, value: Any, origin: Origin | None, rule: Rule, means: str) -> Any:
    """An option that is not a gate setting, checked by the same rules."""
    why = rule.problem(value)
    if why is not None:
        flag = next(o.flag for o in OPTIONS if o.dest == dest)
        said = (origin or f"{flag} {{value}}").replace("{value}", shown(value))
        raise OptionError(f"{said}: {why} ({means})")
    return value


def _positive_seconds(value: Any, flag: str) -> float:
    seconds = float(value)
    if not 0 < seconds < float("inf"):  # NaN fails both comparisons
        raise OptionError(f"{flag} must be a positive number of seconds, got {value}")
    return seconds


def _at_least_zero(value: Any, flag: str) -> int | None:
    if value is None:
        return None
    if int(value) < 0:
        raise OptionError(f"{flag} must be 0 or more, got {value}")
    return int(value)


def _choice(value: Any, dest: str) -> str:
    # Flags are checked by argparse and env/ini values by _convert; this catches a caller's `given`.
    opt = next(o for o in OPTIONS if o.dest == dest)
    choices = opt.choices or ()
    if value not in choices:
        raise OptionError(f"{opt.flag} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def endpoint_url(spec: str | None, flag: str = "--candidate") -> str | None:
    """The base URL `spec` names when it is an OpenAI-compatible server (`http://HOST:PORT/v1`),
    without a trailing slash; None when it names a model some other way (demo, folder, repo id).
    A URL the suite will not send requests to raises OptionError saying why."""
    if spec is None or "://" not in str(spec):
        return None
    text = str(spec).strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ENDPOINT_SCHEMES:
        raise OptionError(
            f"{flag} {text}: only {' and '.join(ENDPOINT_SCHEMES)} endpoints are allowed, "
            f"got {parts.scheme or 'no'} scheme"
        )
    if parts.username is not None or parts.password is not None:
        raise OptionError(
            f"{flag}: an endpoint URL may not carry a user or password (it would be written into the "
            f"report); put the key in the environment variable --api-key-env names "
            f"(default {DEFAULT_API_KEY_ENV})"
        )
    if parts.query or parts.fragment:  # not repeated: a query may hold a key
        raise OptionError(
            f"{flag} {parts.scheme}://{parts.netloc}{parts.path}?...: give the API's base URL "
            "(http://HOST:PORT/v1), without a query or fragment"
        )
    try:
        port = parts.port
    except ValueError:
        raise OptionError(f"{flag} {text}: the port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise OptionError(f"{flag} {text}: no host; give the API's base URL, e.g. http://127.0.0.1:8080/v1")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{host}{f':{port}' if port is not None else ''}{path}"


def _endpoint_timeout(value: Any) -> float:
    seconds = float(value)
    if not MIN_ENDPOINT_TIMEOUT_S <= seconds <= MAX_ENDPOINT_TIMEOUT_S:
        raise OptionError(
            f"--endpoint-timeout must be {MIN_ENDPOINT_TIMEOUT_S:g}-{MAX_ENDPOINT_TIMEOUT_S:g} seconds, got {value}"
        )
    return seconds


def _env_name(value: Any) -> str:
    if not _ENV_NAME.match(str(value)):
        raise OptionError(
            f"--api-key-env must name an environment variable (letters, digits, _), got {value!r}; "
            "the key itself goes in that variable, never on the command line"
        )
    return str(value)


def _serve_python(value: str | None, root: Path) -> Path | None:
    """--serve-python as an absolute path to an existing interpreter (not resolved: a venv's
    python is a link whose own path selects the venv)."""
    path = _path(value, root)
    if path is None:
        return None
    if not path.is_file() or not os.access(path, os.X_OK):
        raise OptionError(
            f"--serve-python (ini serve_python, PUNIE_GATES_SERVE_PYTHON): {path} is not an executable "
            "file; give the interpreter production runs mlx_lm.server with, e.g. /path/to/punie/.venv/bin/python"
        )
    return path


def resolve_report_dir(
    given: Mapping[str, Any],
    *,
    root: Path,
    environ: Mapping[str, str] = os.environ,
    ini: Callable[[str], Any] | None = None,
) -> Path:
    """The --report-dir alone (flag, environment, ini key, default): known even when
    another option or the gates file is broken, so that run's report goes there too."""
    opt = next(o for o in OPTIONS if o.dest == "report_dir")
    return _path(_pick(opt, given.get("report_dir"), environ, ini), root) or root / str(opt.default)


def report_dir_from_pytest(config) -> Path:
    return resolve_report_dir(
        {"report_dir": config.getoption("punie_report_dir")}, root=Path(config.invocation_params.dir), ini=config.getini
    )


def resolve_options(
    given: Mapping[str, Any],
    *,
    root: Path,
    environ: Mapping[str, str] = os.environ,
    ini: Callable[[str], Any] | None = None,
) -> GateConfig:
    """The run's options from flags (`given`, by dest; None = not given), the environment,
    ini keys and the gates file. The plugin and the commands both resolve options here."""
    picked = {opt.dest: _given(opt, given.get(opt.dest), environ, ini) for opt in OPTIONS}
    get = {dest: value for dest, (value, _) in picked.items()}
    data = paths.data_dir()
    gates_path = _path(get["gates"], root) or data / "gates.toml"
    # The options that replace a gates-file setting, applied in this one place; the
    # registry checks them with the file's values, naming the option that set one.
    # Only a given value (flag, environment, ini key) has an origin and replaces one.
    overrides: dict[tuple[str, str], tuple[Any, Origin]] = {}
    for opt in OPTIONS:
        value, origin = picked[opt.dest]
        if value is None or origin is None:
            continue
        for target in opt.sets:
            table, key = target.split(".")
            overrides[table, key] = (value, origin)
    gates = load_gates(gates_path, like=builtin_gates(), overrides=overrides)
    for dest, rule, means in _OPTION_RULES:
        _checked(dest, get[dest], picked[dest][1], rule, means)
    cache = paths.cache_dir()
    candidate = str(get["candidate"])

    training = _path(get["training_data"], root)
    if training is None:
        training = (
            paths.fixtures_dir() / "demo-training"
            if candidate in ("demo", "demo-agent")
            else root / "data" / "phase27_merged"
        )

    endpoint_url(candidate, "--candidate")  # a URL the suite will not ask stops the run here
    endpoint_url(get["baseline"], "--baseline")

    return GateConfig(
        candidate=candidate,
        baseline=get["baseline"],
        report_dir=resolve_report_dir(given, root=root, environ=environ, ini=ini),
        work_dir=_path(get["work_dir"], root) or cache / "work",
        cache_dir=cache,
        run_all_gates=bool(get["run_all_gates"]),
        queries_path=_path(get["queries"], root) or data / "queries.toml",
        tools_path=_path(get["tools"], root) or data / "tools.toml",
        gates_path=gates_path,
        training_data=training,
        system_prompt_path=_path(get["system_prompt"], root),
        fresh=bool(get["fresh"]),
        damaged_cache=_choice(get["damaged_cache"], "damaged_cache"),
        gen_batch_size=int(get["gen_batch_size"]),
        max_tokens=int(get["max_tokens"]),
        bench=bool(get["bench"]),
        seed=int(get["seed"]),
        answer_via=_choice(get["answer_via"], "answer_via"),
        offline=environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False"),
        gates=gates,
        server_stall_timeout_s=_positive_seconds(get["server_stall_timeout"], "--server-stall-timeout"),
        candidate_model=get["candidate_model"],
        baseline_model=get["baseline_model"],
        api_key_env=_env_name(get["api_key_env"]),
        endpoint_timeout_s=_endpoint_timeout(get["endpoint_timeout"]),
        serve_python=_serve_python(get["serve_python"], root),
        heldout_limit=_at_least_zero(get["heldout_limit"], "--heldout-limit"),
    )


def from_pytest(config) -> GateConfig:
    """The options of a pytest run (its flags and ini keys, this process's environment)."""
    given = {opt.dest: config.getoption(f"punie_{opt.dest}") for opt in OPTIONS}
    return resolve_options(given, root=Path(config.invocation_params.dir), ini=config.getini)
