"""An OpenAI-compatible server someone else runs, asked exactly as the suite asks its own.

`--candidate URL` / `--baseline URL` (`http://HOST:PORT/v1`) name a model already being
served: production's own `mlx_lm.server`, LM Studio, llama.cpp, vLLM. `EndpointAnswerer`
is its answering.answerer.Answerer: an `Endpoint` stands where a `serving.ServedModel`
stands (the same `ask_queries`, the same requests: chat completions with the catalog's
tools, temperature 0, the suite's token budgets), but starts and stops nothing.

Safe by default:
- Requests go only to the URL given: its `/models` and `/chat/completions`, redirects
  refused (the OpenAI client follows none; the probe here neither).
- The API key is read from an environment variable (`--api-key-env`, default
  PUNIE_GATES_API_KEY) when a request is made, never stored, and blanked out of any
  message an endpoint's answer could carry back into a report.
- Every request has a bounded timeout (`--endpoint-timeout`; the probe at most 30 s).
- An endpoint that is down, hangs beyond its timeout or answers something other than
  an OpenAI API raises EndpointError (a UserError: the run ends ERROR, not judged),
  naming the URL and what came back; it is never scored as the model's failure.

What it says about itself is recorded, not trusted: `/models`' ids, each response's
`model` and `system_fingerprint`, and the latency measured here. Its versions are
not known and not guessed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from punie_gates.answering.conversation import ask_each, server_ask
from punie_gates.answering.serving import ask_queries, time_alone
from punie_gates.errors import CandidateError, EndpointError
from punie_gates.inputs.endpoint_spec import DEFAULT_API_KEY_ENV, DEFAULT_ENDPOINT_TIMEOUT_S, endpoint_url

DEFAULT_MODEL = "default_model"  # mlx_lm.server: the model it was started with
PROBE_TIMEOUT_S = 30.0
NO_KEY = "not-needed"  # what the OpenAI client sends when no key is set (it requires one)
_SHOWN = 300  # characters of an unexpected answer quoted in an error


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise EndpointError(
            f"{req.full_url} answered {code} redirecting to {newurl}: the suite sends requests only "
            "to the URL given; pass the URL the server really answers at"
        )


_OPENER = urllib.request.build_opener(_NoRedirect)


class Endpoint:
    """A model behind an OpenAI-compatible URL, asked like a ServedModel; nothing is started."""

    def __init__(
        self,
        url: str,
        *,
        label: str,
        model: str | None = None,
        api_key_env: str = DEFAULT_API_KEY_ENV,
        timeout_s: float = DEFAULT_ENDPOINT_TIMEOUT_S,
    ):
        base = endpoint_url(url, f"--{label.split()[-1]}")
        if base is None:
            raise EndpointError(f"{url}: not an http(s) URL; give the server's base URL, e.g. http://127.0.0.1:8080/v1")
        self.url = base
        self.label = label  # "candidate", "baseline"
        self.model = model or DEFAULT_MODEL
        self.api_key_env = api_key_env
        self.request_timeout_s = float(timeout_s)
        self.path = None  # no folder: the gates that read files do not run on an endpoint
        self.log_path = None
        self.runs: list = []  # ServedModel's list of servers started: none, ever
        self.plan = None  # ServedModel's serving plan: the endpoint's owner decided how it serves
        self._probe: dict[str, Any] | None = None
        self._seen_models: dict[str, int] = {}
        self._fingerprints: dict[str, int] = {}
        self._latencies: list[float] = []

    # -- what ServedModel offers -------------------------------------------------------------

    @property
    def server(self) -> Endpoint:
        """Itself, probed on first use (ServedModel's running server; here nothing runs)."""
        if self._probe is None:
            self.probe()
        return self

    @property
    def base_url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        """Nothing to stop: the endpoint is someone else's."""

    def log_tail(self, lines: int = 0) -> str:
        return "(an endpoint: no server log here)"

    def answering(self):
        """Requests in flight: nothing to watch, the suite started no process."""
        return contextlib.nullcontext(self)

    def check(self, unanswered: int, asked: int) -> None:
        """Nothing: an endpoint's failed requests are named by `failure`."""

    def request_options(self) -> dict[str, Any]:
        """`answering.server.ask` keyword arguments: the request's model, the key, the timeout."""
        return {"model": self.model, "api_key": self.api_key, "request_timeout_s": self.request_timeout_s}

    @property
    def api_key(self) -> str:
        """The key from the environment now (never kept on the object)."""
        return os.environ.get(self.api_key_env) or NO_KEY

    def saw(self, answers: Sequence[Any]) -> None:
        """Note what the endpoint said about itself in answers (answering.server.Answer) and their latency."""
        for a in answers:
            if getattr(a, "model", ""):
                self._seen_models[a.model] = self._seen_models.get(a.model, 0) + 1
            if getattr(a, "system_fingerprint", ""):
                self._fingerprints[a.system_fingerprint] = self._fingerprints.get(a.system_fingerprint, 0) + 1
            if not a.error:
                self._latencies.append(a.latency_s)

    def failure(self, failed: Sequence[Any], answers: Sequence[Any]) -> EndpointError:
        """The error for requests that failed: the URL, how many, and what came back."""
        first = failed[0]
        timeout = "timed out" in first.error.lower() or "timeout" in first.error.lower()
        what = (
            f"did not answer within --endpoint-timeout {self.request_timeout_s:g} s"
            if timeout
            else "did not give a chat completion"
        )
        returned = "" if timeout else f"; a plain request to {self.url}/chat/completions returned {self._returns()}"
        return EndpointError(
            self.redact(
                f"{self.url} ({self.label}, model {self.model!r}) {what}: {len(failed)} of {len(answers)} requests failed; "
                f"first: {first.id}: {first.error[:_SHOWN]}{returned}"
            )
        )

    def _returns(self) -> str:
        """What one small chat request gets back, raw (status, type, the start of the body): for the error."""
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1})
        request = urllib.request.Request(
            f"{self.url}/chat/completions",
            data=body.encode(),
            method="POST",
            headers={"Content-Type": "application/json", **self._auth()},
        )
        timeout = min(PROBE_TIMEOUT_S, self.request_timeout_s)
        try:
            response = _OPENER.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            response = exc
        except (EndpointError, OSError, ValueError, http.client.HTTPException) as exc:
            return f"no answer ({type(exc).__name__}: {exc})"
        with response:
            text = self._body(response, request.full_url, timeout).decode("utf-8", "replace")
            kind = response.headers.get("Content-Type", "no Content-Type")
            return f"HTTP {response.status} ({kind}): {text[:_SHOWN]!r}"

    def record(self) -> dict[str, Any]:
        """What the report holds about the endpoint: the URL, what it says about itself, latency; no key."""
        out: dict[str, Any] = {
            "model": self.label,
            "endpoint": self.url,
            "request_model": self.model,
            "api_key_env": self.api_key_env,
            "api_key_sent": self.api_key != NO_KEY,
            "timeout_s": self.request_timeout_s,
            "models": self._probe,
            "response_model": dict(self._seen_models),
            "system_fingerprint": dict(self._fingerprints),
            "versions": "not known: an endpoint does not say which mlx-lm or server version answers",
        }
        if self._latencies:
            out["latency"] = {
                "requests": len(self._latencies),
                "avg_s": round(statistics.fmean(self._latencies), 3),
                "max_s": round(max(self._latencies), 3),
            }
        return out

    # -- the endpoint's own ------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """`text` with the API key blanked out (an error body may quote the request back)."""
        key = os.environ.get(self.api_key_env)
        return text.replace(key, "***") if key and len(key) >= 4 else text

    def probe(self) -> dict[str, Any]:
        """GET URL/models: that something answers there in time (down or hanging: EndpointError), and
        the model ids it lists, when it lists any (recorded, not required)."""
        url = f"{self.url}/models"
        timeout = min(PROBE_TIMEOUT_S, self.request_timeout_s)
        request = urllib.request.Request(url, headers={"Accept": "application/json", **self._auth()})
        began = time.perf_counter()
        try:
            response = _OPENER.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            status, body = exc.code, self._body(exc, url, timeout)
        except EndpointError:
            raise
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise self._error(url, _transport(exc, timeout)) from None
        else:
            with response:
                status, body = response.status, self._body(response, url, timeout)
        latency = time.perf_counter() - began
        text = body.decode("utf-8", "replace")
        if status in (401, 403):
            raise self._error(
                url,
                f"answered HTTP {status} (the key in ${self.api_key_env} was "
                f"{'refused' if self.api_key != NO_KEY else 'not set'}): {text[:_SHOWN]!r}",
            )
        self._probe = {"status": status, "ids": None, "latency_s": round(latency, 3)}
        try:
            doc = json.loads(text) if status == 200 else None
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, Mapping) and isinstance(doc.get("data"), list):
            self._probe["ids"] = [
                m.get("id") for m in doc["data"] if isinstance(m, Mapping) and isinstance(m.get("id"), str)
            ]
        else:
            # Informational only: mlx_lm.server 0.32.2 lists the Hugging Face cache here and sends an
            # empty body when there is none. Whether it answers chat completions is what counts.
            self._probe["note"] = self.redact(f"GET /models gave no model list (HTTP {status}): {text[:_SHOWN]!r}")
        return self._probe

    def conversation_ask(self, tools: Sequence[Mapping[str, Any]] | None, *, max_tokens: int):
        """The multi-turn pass's AskMany through this endpoint; an endpoint that stops answering
        (down, timed out) raises EndpointError instead of counting as the model's failed turn."""
        import openai

        client = openai.OpenAI(
            base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=self.request_timeout_s
        )
        ask_many = ask_each(server_ask(client, self.model, tools, max_tokens=max_tokens))

        def asked(batch: list[list[dict]]):
            replies = ask_many(batch)
            for reply in replies:
                if isinstance(reply, (openai.APIConnectionError, openai.APITimeoutError, openai.APIStatusError)):
                    raise self._error(f"{self.url}/chat/completions", f"{type(reply).__name__}: {reply}")
            return replies

        return asked

    def _body(self, response: Any, url: str, timeout: float) -> bytes:
        """Up to 1 MB of a response body; one that stops coming is a hang, one cut short is what came."""
        try:
            return response.read(1 << 20)
        except TimeoutError:
            raise self._error(url, _transport(TimeoutError(), timeout)) from None
        except (OSError, http.client.HTTPException) as exc:
            return getattr(exc, "partial", b"") or b""

    def _auth(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _error(self, url: str, what: str) -> EndpointError:
        return EndpointError(self.redact(f"{url} ({self.label}): {what}"))


def _transport(exc: BaseException, timeout: float) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError) or "timed out" in str(reason).lower():
        return f"did not answer within {timeout:g} s (it hangs; raise --endpoint-timeout if it is only slow)"
    if isinstance(reason, ConnectionRefusedError) or "refused" in str(reason).lower():
        return "down: nothing listens there (connection refused); start the server or fix the URL"
    return f"unreachable: {type(reason).__name__}: {reason}"


class EndpointAnswerer:
    """The Answerer (answering.answerer) of a model behind an OpenAI-compatible URL: the same
    requests as ServerAnswerer's, sent to the endpoint through the same ask_queries."""

    via = "endpoint"

    def __init__(self, endpoint: Endpoint, settings):
        self.endpoint = endpoint
        self.settings = settings  # answering.answerer.AnswerSettings
        self.label = endpoint.label
        self.path = None  # an endpoint has no files

    def answer(self, conversations):
        s = self.settings
        # Streamed, without logprobs: an endpoint need not give token ids, and its answer is what the API returned.
        return ask_queries(
            self.endpoint,
            conversations,
            tools=s.tools,
            max_tokens=s.max_tokens,
            concurrency=s.batch_size,
            progress=s.progress,
        )

    def time_each(self, conversations, *, max_tokens: int):
        return time_alone(
            self.endpoint,
            conversations,
            tools=self.settings.tools,
            max_tokens=max_tokens,
            progress=self.settings.progress,
        )

    def ask_many(self):
        return self.endpoint.conversation_ask(self.settings.tools, max_tokens=self.settings.max_tokens)

    def prompt_tokenizer(self):
        raise CandidateError(f"{self.endpoint.url}: an endpoint has no files: its prompts cannot be rendered here")

    def release(self) -> None:
        """Nothing: the endpoint is someone else's."""

    def serving_change(self) -> str | None:
        return None

    def record(self) -> dict[str, Any]:
        return {"via": self.via, **self.endpoint.record()}
