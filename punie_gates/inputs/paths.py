"""Where the suite finds its data files and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

from punie_gates.inputs.readers import read_toml as read

_PACKAGE = Path(__file__).resolve().parents[1]  # punie_gates/
_CHECKOUT = _PACKAGE.parent


def data_dir() -> Path:
    """The `data/` folder: the checkout's when run from one, else the installed copy."""
    for candidate in (_CHECKOUT / "data", _PACKAGE / "_data"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"punie-gates data folder not found beside {_PACKAGE}")


def fixtures_dir() -> Path:
    """The `fixtures/` folder (project-written examples, used by the demo and self-tests)."""
    for candidate in (_CHECKOUT / "fixtures", _PACKAGE / "_fixtures"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"punie-gates fixtures folder not found beside {_PACKAGE}")


def cache_dir() -> Path:
    """Root for built demo models and the work folder; PUNIE_GATES_CACHE overrides."""
    env = os.environ.get("PUNIE_GATES_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "punie-gates"


def read_toml(path: Path, what: str, error: type[Exception]) -> dict:
    """A TOML input file as a dict; unreadable or invalid, `error` naming the file (and line)."""

    return read(path, what, error)
