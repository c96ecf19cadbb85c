"""The run's options resolved once, into a GateConfig: pytest flags, ini keys and environment variables.

Every option has a flag (`--candidate`), most an ini key (`candidate = ...` under
[tool.pytest.ini_options]) and some an environment variable; the flag wins, then
the environment, then the ini key, then the default (from data/gates.toml where
the figure is a threshold).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie_gates.errors import OptionError
from punie_gates.inputs import paths
from punie_gates.inputs.endpoint_spec import (
    DEFAULT_API_KEY_ENV,
    DEFAULT_ENDPOINT_TIMEOUT_S,
    endpoint_timeout,
    endpoint_url,
    env_name,
)
from punie_gates.inputs.gates import GateRegistry, builtin_gates, load_gates
from punie_gates.inputs.option_table import DEFAULT_SERVER_STALL_TIMEOUT_S, OPTIONS, Option
from punie_gates.inputs.settings import AT_LEAST_ONE, COUNT, GateSettings, Origin, Rule, shown

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
        api_key_env=env_name(get["api_key_env"]),
        endpoint_timeout_s=endpoint_timeout(get["endpoint_timeout"]),
        serve_python=_serve_python(get["serve_python"], root),
        heldout_limit=_at_least_zero(get["heldout_limit"], "--heldout-limit"),
    )


def from_pytest(config) -> GateConfig:
    """The options of a pytest run (its flags and ini keys, this process's environment)."""
    given = {opt.dest: config.getoption(f"punie_{opt.dest}") for opt in OPTIONS}
    return resolve_options(given, root=Path(config.invocation_params.dir), ini=config.getini)
