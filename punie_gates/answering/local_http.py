"""The plain HTTP a local server is started and watched with: a free loopback port, the status
of a GET, and a POST whose outcome is kept for the thread that waits on it."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def post(request: urllib.request.Request, deadline: float, result: dict) -> None:
    try:
        with urllib.request.urlopen(request, timeout=max(deadline - time.perf_counter(), 1.0)) as response:
            result["status"] = response.status
            response.read()
    except urllib.error.HTTPError as exc:
        result["status"] = exc.code
        result["error"] = f"HTTP {exc.code}: {exc.read()[:300].decode('utf-8', 'replace')}"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        result["error"] = f"{type(exc).__name__}: {exc}"


def http_status(url: str, timeout: float) -> int | None:
    """The status of GET url, or None when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None
