"""The environment `mlx_lm.server` runs in: production's interpreter, or ours with mistral-common hidden.

What a model is fed and which tool parser reads its calls depends on the serving
process's libraries, not on the suite's (read in transformers 5.25 and mlx-lm 0.32.2,
and checked on the demo folder with `serving_probe.py`):

- transformers' `AutoTokenizer` returns `MistralCommonBackend` for a Mistral-type folder
  only when `tekken.json` is there *and* `is_mistral_common_available()`
  (`importlib.util.find_spec("mistral_common")` not None, version >= its minimum);
  otherwise `TokenizersBackend` from tokenizer.json, rendering with chat_template.jinja.
- mlx-lm picks its tool parser from `tokenizer.chat_template`; `MistralCommonBackend` has
  none, so mlx-lm finds no parser and returns every call as plain `content`. Under
  `TokenizersBackend` the template holds `[TOOL_CALLS]`: `mlx_lm.tool_parsers.mistral`.
- mlx-lm does not depend on mistral-common; the suite does (Gate 0's reference). Punie's
  environment (its uv.lock at 1fe77fb: mlx-lm 0.30.6, transformers 5.1.0) has none.

So `--serve-python PATH` runs `PATH -m mlx_lm server ...` as is (production's own
interpreter), and by default the suite's interpreter serves through a launcher that maps
`mistral_common` to None in `sys.modules` before anything imports transformers: then
`find_spec` returns None, transformers says mistral-common is absent, and the server
loads what an environment with mlx-lm alone loads. Nothing is uninstalled, and only
that process is affected. `versions()` asks the serving interpreter itself.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from punie_gates.errors import ServerError

PROBE_SCRIPT = Path(__file__).with_name("serving_probe.py")
# What the default launcher runs: hide mistral-common, then mlx-lm's own server entry point
# (`from mlx_lm.server import main`, as `python -m mlx_lm server` does through mlx_lm.cli).
_HIDDEN_SERVER = 'import sys; sys.modules["mistral_common"] = None; from mlx_lm.server import main; main()'
_PROBE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ServingEnvironment:
    """Which interpreter runs mlx_lm.server and the serving probe, and how."""

    python: str
    """The interpreter (production's with --serve-python, else the suite's own)."""
    hide_mistral_common: bool
    """True for the suite's own interpreter: its server process cannot import mistral-common."""

    @property
    def production(self) -> bool:
        """True when the interpreter is the one the user named (--serve-python)."""
        return not self.hide_mistral_common

    def server_launcher(self) -> tuple[str, ...]:
        """The argv that starts mlx_lm.server, before its own arguments (--model ...)."""
        if self.hide_mistral_common:
            return (self.python, "-c", _HIDDEN_SERVER)
        return (self.python, "-m", "mlx_lm", "server")

    def describe(self) -> str:
        if self.hide_mistral_common:
            return f"{self.python} (the suite's own interpreter, mistral-common hidden from the server)"
        return f"{self.python} (--serve-python)"

    def probe(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run serving_probe.py under this interpreter on `request` (see its docstring)."""
        payload = json.dumps({**request, "hide_mistral_common": self.hide_mistral_common})
        command = [self.python, str(PROBE_SCRIPT)]
        try:
            done = subprocess.run(
                command, input=payload, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, env=_probe_env()
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServerError(f"the serving probe could not run under {self.python}: {exc}") from exc
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise ServerError(
                f"the serving probe failed under {self.describe()} (exit {done.returncode}); command: "
                f"{shlex.join(command)}\n{done.stderr.strip()[-2000:]}"
            )
        return json.loads(lines[-1])

    def versions(self) -> dict[str, str]:
        """python, mlx, mlx-lm, transformers, tokenizers, mistral-common ("absent" when it cannot be
        imported there), as the serving interpreter reports them."""
        return _versions(self.python, self.hide_mistral_common)


def serving_environment(serve_python: Path | str | None) -> ServingEnvironment:
    """--serve-python's interpreter as is, else this one with mistral-common hidden."""
    if serve_python:
        return ServingEnvironment(str(serve_python), hide_mistral_common=False)
    return ServingEnvironment(sys.executable, hide_mistral_common=True)


@lru_cache(maxsize=8)
def _versions(python: str, hidden: bool) -> dict[str, str]:
    try:
        return ServingEnvironment(python, hidden).probe({})["versions"]
    except (ServerError, KeyError, json.JSONDecodeError) as exc:
        return {"python": python, "error": f"could not ask {python} for its versions: {exc}"}


def _probe_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
