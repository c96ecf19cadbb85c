"""What a server run was: its command, process, the library versions that shape its answers,
its URL and log, and how long it took to start and to stop."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


@dataclass(frozen=True)
class ServerRecord:
    """How a server run was started and what it cost."""

    command: tuple[str, ...]  # the exact argv
    pid: int  # the server process (and its process group)
    versions: Mapping[str, str | None]
    base_url: str  # e.g. http://127.0.0.1:41234/v1
    log_path: Path
    startup_s: float  # start -> model loaded and a one-token request answered
    stop_s: float | None  # stop requested -> process gone (None while running)


def server_versions() -> dict[str, str | None]:
    """Versions of what shapes the server's answers (python, mlx, mlx-lm, transformers, ...)."""
    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in ("mlx", "mlx-lm", "transformers", "mistral-common", "tokenizers", "openai"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found
