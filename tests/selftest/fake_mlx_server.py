"""A stand-in for `mlx_lm.server` with no model, for ModelServer's self-tests.

It takes the server's own options (--model, --host, --port, ...; unknown ones are
ignored) plus --fake-* options saying how to misbehave. In the answering modes it
serves with mlx_lm.server's own HTTP handler (APIHandler), so responses have exactly
mlx-lm's shape, tool-call parsing and streaming; only the token generator is scripted:
`--fake-reply` is a JSON list of pieces, strings for text and {"control": "[TOOL_CALLS]"}
for a control token. With `--fake-tokenizer DIR` the pieces are encoded with that
folder's tokenizer (loaded as mlx_lm.server loads it) and decoded by its streaming
detokenizer, state machine and tool parser, as the real server would; without it every
piece is one token and the parser is mlx-lm's Mistral one.

Modes: ok, silent (never opens its port), exit (exits with code 3 at once), unhealthy
(/health answers 503, as after a failed model load), ignore-term (ok, but ignores SIGTERM),
light (only /health and the readiness request, standard library only: starts in a blink,
for tests of the process's life that send no chat requests).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--fake-mode", default="ok", choices=["ok", "silent", "exit", "unhealthy", "ignore-term", "light"]
    )
    parser.add_argument("--fake-die-after", type=int, default=0, help="exit when the N-th chat request arrives")
    parser.add_argument("--fake-child", action="store_true", help="start a child process that sleeps")
    parser.add_argument("--fake-reply", default='["fake answer"]')
    parser.add_argument("--fake-tokenizer", default=None)
    parser.add_argument("--fake-load-s", type=float, default=0.0, help="seconds the 'model' takes to load")
    parser.add_argument("--model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args, _ = parser.parse_known_args()
    print(f"fake server pid {os.getpid()} mode {args.fake_mode}", flush=True)

    if args.fake_child:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(f"fake child pid {child.pid}", flush=True)
    if args.fake_mode == "exit":
        print("ValueError: fake failure at startup", flush=True)
        sys.exit(3)
    if args.fake_mode == "silent":
        while True:
            time.sleep(1)
    if args.fake_mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.fake_mode == "light":
        serve_light(args.host, args.port)

    from http.server import ThreadingHTTPServer

    from mlx_lm.server import APIHandler

    generator = ScriptedGenerator(args)
    httpd = ThreadingHTTPServer(
        (args.host, args.port),
        lambda *a, **k: APIHandler(generator, *a, system_fingerprint="fake", **k),
    )
    print(f"Starting httpd at {args.host} on port {args.port}...", flush=True)
    httpd.serve_forever()


def serve_light(host: str, port: int) -> None:
    """/health and a one-token /v1/completions, without importing mlx_lm."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def _send(self, doc: dict) -> None:
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send({"status": "ok"})

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._send({"choices": [{"text": "x", "finish_reason": "length"}]})

    print(f"Starting httpd at {host} on port {port}...", flush=True)
    ThreadingHTTPServer((host, port), Handler).serve_forever()


class ScriptedGenerator:
    """What APIHandler needs of mlx_lm.server's ResponseGenerator, with a fixed reply."""

    def __init__(self, args):
        self.cli_args = argparse.Namespace(
            allowed_origins=["*"], max_tokens=512, temp=0.0, top_p=1.0, top_k=0, min_p=0.0, num_draft_tokens=3
        )
        self._args = args
        self._started = time.monotonic()
        self._chat_requests = 0
        self._lock = threading.Lock()
        pieces = json.loads(args.fake_reply)
        if args.fake_tokenizer:
            from pathlib import Path

            from mlx_lm.generate import make_text_state_machine
            from mlx_lm.utils import load_tokenizer

            wrapper = load_tokenizer(Path(args.fake_tokenizer), {"trust_remote_code": False})
            self._wrapper = wrapper
            self._tokens = []
            for piece in pieces:
                if isinstance(piece, dict):
                    self._tokens.append(wrapper.convert_tokens_to_ids(piece["control"]))
                else:
                    self._tokens.extend(wrapper.encode(piece, add_special_tokens=False))
            self._eos = min(wrapper.eos_token_ids)
            self._has_tool_calling = wrapper.has_tool_calling
            self._tool_parser = wrapper.tool_parser
            self._text_sm = make_text_state_machine(wrapper)
        else:
            from mlx_lm.generate import TextStateMachine
            from mlx_lm.tool_parsers import mistral

            self._wrapper = None
            self._pieces = [p["control"] if isinstance(p, dict) else p for p in pieces]
            self._tokens = list(range(100, 100 + len(self._pieces)))
            self._eos = 2
            self._has_tool_calling = True
            self._tool_parser = mistral.parse_tool_call
            self._text_sm = TextStateMachine({"normal": [(mistral.tool_call_start, "tool")], "tool": []})

    @property
    def is_healthy(self) -> bool:
        return self._args.fake_mode != "unhealthy"

    def generate(self, request, args, progress_callback=None):
        from mlx_lm.server import GenerationContext

        if not self.is_healthy:
            raise RuntimeError("generation thread died")
        # The real server answers once its model is loaded.
        time.sleep(max(0.0, self._started + self._args.fake_load_s - time.monotonic()))
        if request.request_type == "chat":
            with self._lock:
                self._chat_requests += 1
                if self._args.fake_die_after and self._chat_requests >= self._args.fake_die_after:
                    print("fake server dies mid-run", flush=True)
                    os._exit(1)
        ctx = GenerationContext(
            has_tool_calling=self._has_tool_calling,
            has_thinking=False,
            tool_parser=self._tool_parser,
            text_sm=self._text_sm,
            initial_state="normal",
            prompt=[1] * 7,
            prompt_cache_count=0,
        )
        return ctx, self._responses(args.max_tokens)

    def _responses(self, max_tokens: int):
        from mlx_lm.server import Response

        from_tokenizer = self._wrapper is not None
        detokenizer = self._wrapper.detokenizer if from_tokenizer else None
        tokens = self._tokens + [self._eos]
        for n, token in enumerate(tokens[:max_tokens], start=1):
            time.sleep(0.01)
            finish = "stop" if token == self._eos else ("length" if n == max_tokens else None)
            if not from_tokenizer:
                text = "" if finish == "stop" else self._pieces[n - 1]
            elif finish == "stop":  # as the server does: the stop token is not decoded
                detokenizer.finalize()
                text = detokenizer.last_segment
            else:
                detokenizer.add_token(token)
                if finish == "length":
                    detokenizer.finalize()
                text = detokenizer.last_segment
            yield Response(text, token, 0.0, finish, ())


if __name__ == "__main__":
    main()
