"""An OpenAI-compatible server as a model: `--candidate URL` screened, `--baseline URL` measured.

Every server here is on a loopback address and started by the test: the scripted
stand-in for mlx_lm.server (fake_mlx_server.py, mlx-lm's own HTTP handler) as candidate
and as baseline, and three broken ones: nothing listening (down), a socket that accepts
and never answers (hanging), an HTTP server that answers HTML (not an OpenAI API). A
broken endpoint ends the run ERROR, not judged (exit 6), naming the URL and what came
back; never NO_GO. The API key is set in the environment and must appear in no file the
run wrote and on no terminal line.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from punie_gates.errors import EndpointError, OptionError
from punie_gates.inputs.endpoint_spec import endpoint_url
from punie_gates.inputs.options import resolve_options
from punie_gates.results.document import read_results

REPO = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).with_name("fake_mlx_server.py")
SECRET = "sk-test-DO-NOT-LEAK-4f1c9a7e"
CALL = ["Let me check.", {"control": "[TOOL_CALLS]"}, 'execute_code[ARGS]{"code": "print(typecheck(\\"src/\\"))"}']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1"),
        ("HTTPS://Models.Example:443/v1", "https://models.example:443/v1"),
        ("http://[::1]:9000/v1", "http://[::1]:9000/v1"),
        ("demo", None),
        ("mlx-community/Devstral-Small-2-24B-Instruct-2512-8bit", None),
        ("./models/qwen3", None),
    ],
)
def test_an_endpoint_is_an_http_url(given, url):
    assert endpoint_url(given) == url


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("ftp://127.0.0.1/v1", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http://user:sk-secret@127.0.0.1:8080/v1", "may not carry a user or password"),
        ("http://127.0.0.1:8080/v1?key=sk-secret", "without a query"),
        ("http:///v1", "no host"),
        ("http://127.0.0.1:99999/v1", "port"),
    ],
)
def test_a_url_the_suite_will_not_ask_is_refused(given, why):
    with pytest.raises(OptionError, match=why) as raised:
        endpoint_url(given)
    assert "sk-secret" not in str(raised.value)  # a refused URL's secret is not repeated either


def test_endpoint_options_are_checked(tmp_path):
    def resolve(**given):
        return resolve_options(given, root=tmp_path, environ={})

    cfg = resolve(candidate="http://127.0.0.1:8080/v1/", baseline="https://prod.example/v1", candidate_model="devstral")
    assert (cfg.candidate_endpoint, cfg.baseline_endpoint, cfg.candidate_model) == (
        "http://127.0.0.1:8080/v1",
        "https://prod.example/v1",
        "devstral",
    )
    assert (cfg.api_key_env, cfg.endpoint_timeout_s) == ("PUNIE_GATES_API_KEY", 600.0)
    assert resolve(candidate="demo").candidate_endpoint is None
    with pytest.raises(OptionError, match="--baseline"):
        resolve(baseline="gopher://127.0.0.1/v1")
    with pytest.raises(OptionError, match="--endpoint-timeout"):
        resolve(endpoint_timeout=0.01)
    with pytest.raises(OptionError, match="--endpoint-timeout"):
        resolve(endpoint_timeout=1e6)
    with pytest.raises(OptionError, match="never on the command line"):
        resolve(api_key_env=SECRET + "=x")


# -- servers started by the test -----------------------------------------------------------------


class _Serving:
    def __init__(self, handler):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _Html(BaseHTTPRequestHandler):
    """Answers every request with a web page: not an OpenAI-compatible API."""

    def _page(self):
        body = b"<html><body>Welcome to nginx!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page

    def log_message(self, *args):
        pass


@pytest.fixture
def html_server():
    serving = _Serving(_Html)
    yield serving.url
    serving.close()


@pytest.fixture
def hanging_server():
    """Accepts connections and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.close()


def _start_fake(reply, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(FAKE), "--host", "127.0.0.1", "--port", str(port), "--fake-reply", json.dumps(reply)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the fake server did not start: {log.read_text()}")


@pytest.fixture(scope="module")
def fake_endpoints(tmp_path_factory):
    """A candidate that calls a tool every time and a baseline that answers in words."""
    logs = tmp_path_factory.mktemp("fake-logs")
    started = []
    try:
        for name, reply in (("candidate", CALL), ("baseline", ["A list is mutable; a tuple is not."])):
            started.append(_start_fake(reply, logs / f"{name}.log"))
        yield started[0][1], started[1][1]
    finally:
        for proc, _ in started:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_suite(tmp_path: Path, *args: str, timeout: int = 600) -> tuple[subprocess.CompletedProcess, Path]:
    reports = tmp_path / "reports"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "PUNIE_GATES_CACHE": str(tmp_path / "cache"),
        "PUNIE_GATES_API_KEY": SECRET,
    }
    for name in ("PUNIE_GATES_CANDIDATE", "PUNIE_GATES_BASELINE", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--report-dir",
            str(reports),
            "--training-data",
            str(REPO / "fixtures" / "demo-training"),
            *args,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc, reports


def written_files(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if p.is_file()]


def test_an_endpoint_candidate_is_screened_and_the_key_stays_secret(fake_endpoints, tmp_path):
    candidate, baseline = fake_endpoints
    proc, reports = run_suite(tmp_path, "--candidate", candidate, "--baseline", baseline)
    shown = proc.stdout[-4000:] + proc.stderr[-2000:]
    doc = json.loads((reports / "gate-report.json").read_text())
    assert doc["verdict"] == "INCOMPLETE" and doc["complete"] is False, shown
    for gate in ("gate0", "gate1", "gate4", "gate5"):
        assert doc["gates"][gate]["status"] == "not_run" and doc["gates"][gate]["reasons"] == [
            "an endpoint has no files"
        ]
    assert doc["gates"]["gate2"]["status"] == "passed" and doc["gates"]["gate3"]["status"] in ("passed", "failed")
    assert proc.returncode in (0, 1), shown  # INCOMPLETE keeps pytest's status: never ERROR (6)

    unknown: list[str] = []
    typed = read_results(doc, unknown).gates["gate3"].figures.screening  # every value of its type, every key known
    assert not unknown and typed is not None and typed.total == 40 and len(typed.queries or ()) == 40
    screening = doc["gates"]["gate3"]["figures"]["screening"]
    assert (screening["total"], len(screening["queries"])) == (40, 40)
    assert screening["followup"]["total"] == 32 and "not judged" in screening["note"]
    assert len((reports / "screening-responses.jsonl").read_text().splitlines()) == 40
    assert "VERDICT: INCOMPLETE" in proc.stdout and "screening (not judged): " in proc.stdout
    page = (reports / "gate-report.html").read_text(encoding="utf-8")
    assert "screening: not judged: 2/40" in page or "screening: not judged: " in page
    assert "## screening (not judged)" in (reports / "gate-report.md").read_text(encoding="utf-8")

    seen = doc["gates"]["gate3"]["figures"]["answering"]["endpoint"]
    assert seen["endpoint"] == candidate and seen["response_model"] and seen["system_fingerprint"] == {"fake": 45}
    assert seen["api_key_env"] == "PUNIE_GATES_API_KEY" and seen["api_key_sent"] is True
    assert seen["latency"]["requests"] == 45 and seen["models"]["status"] == 200
    gate2 = doc["gates"]["gate2"]["figures"]
    assert gate2["baseline_avg_latency_s"] > 0 and gate2["answering"]["baseline_endpoint"]["endpoint"] == baseline
    assert f"baseline answers: from the endpoint {baseline}" in proc.stdout

    files = written_files(tmp_path)
    assert any(p.name == "gate-report.html" for p in files)
    leaked = [p for p in files if SECRET.encode() in p.read_bytes()]
    assert not leaked and SECRET not in proc.stdout + proc.stderr, leaked


def _assert_not_judged(proc, reports: Path, url: str, *words: str) -> str:
    shown = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 6, shown
    doc = json.loads((reports / "gate-report.json").read_text())
    assert doc["verdict"] == "ERROR", shown
    why = " ".join(doc["reasons"])
    assert url in why and all(w in why for w in words), why
    assert "VERDICT: ERROR: not judged" in proc.stdout and SECRET not in proc.stdout + proc.stderr
    assert not [p for p in written_files(reports.parent) if SECRET.encode() in p.read_bytes()]
    return why


def test_a_down_endpoint_is_not_judged(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc, reports = run_suite(tmp_path, "--candidate", url, "-m", "gate2")
    _assert_not_judged(proc, reports, url, "down", "connection refused")


def test_a_hanging_endpoint_is_not_judged(hanging_server, tmp_path):
    began = time.monotonic()
    proc, reports = run_suite(tmp_path, "--candidate", hanging_server, "--endpoint-timeout", "2", "-m", "gate2")
    _assert_not_judged(proc, reports, hanging_server, "did not answer within 2 s")
    assert time.monotonic() - began < 120  # bounded by the timeout, not by the hang


def test_an_endpoint_that_is_not_an_openai_api_is_not_judged(html_server, tmp_path):
    proc, reports = run_suite(tmp_path, "--candidate", html_server, "-m", "gate2")
    why = _assert_not_judged(proc, reports, html_server, "did not give a chat completion")
    assert "Welcome to nginx" in why or "html" in why.lower(), why


def test_a_hanging_baseline_is_not_judged_and_never_no_go(hanging_server, fake_endpoints, tmp_path):
    candidate, _ = fake_endpoints
    proc, reports = run_suite(
        tmp_path, "--candidate", candidate, "--baseline", hanging_server, "--endpoint-timeout", "2", "-m", "gate2"
    )
    _assert_not_judged(proc, reports, hanging_server, "baseline")


def test_the_probe_refuses_a_redirect_elsewhere(tmp_path):
    """Requests go only to the URL given: a redirect to another host is an error, not followed."""
    from punie_gates.answering.endpoint import Endpoint

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.2:9/v1/models")
            self.end_headers()

        def log_message(self, *args):
            pass

    serving = _Serving(Redirect)
    try:
        with pytest.raises(EndpointError, match="only to the URL given"):
            Endpoint(serving.url, label="candidate").probe()
    finally:
        serving.close()
