"""An OpenAI-compatible server named as a model (`--candidate http://HOST:PORT/v1`): its URL,
the variable holding its API key, and how long one request may take, checked.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from punie_gates.errors import OptionError

# An OpenAI-compatible server as a model (--candidate/--baseline URL): the schemes allowed,
# where its API key is read from, and how long one request may take (bounded both ways).
ENDPOINT_SCHEMES = ("http", "https")
DEFAULT_API_KEY_ENV = "PUNIE_GATES_API_KEY"
DEFAULT_ENDPOINT_TIMEOUT_S = 600.0
MIN_ENDPOINT_TIMEOUT_S, MAX_ENDPOINT_TIMEOUT_S = 1.0, 7200.0
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


def endpoint_timeout(value: Any) -> float:
    seconds = float(value)
    if not MIN_ENDPOINT_TIMEOUT_S <= seconds <= MAX_ENDPOINT_TIMEOUT_S:
        raise OptionError(
            f"--endpoint-timeout must be {MIN_ENDPOINT_TIMEOUT_S:g}-{MAX_ENDPOINT_TIMEOUT_S:g} seconds, got {value}"
        )
    return seconds


def env_name(value: Any) -> str:
    if not _ENV_NAME.match(str(value)):
        raise OptionError(
            f"--api-key-env must name an environment variable (letters, digits, _), got {value!r}; "
            "the key itself goes in that variable, never on the command line"
        )
    return str(value)
