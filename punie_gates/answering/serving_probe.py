"""What mlx-lm, in the interpreter running this script, makes of a model folder: the serving probe.

Run as a script by the interpreter that serves (production's, or ours), never imported
by the suite: it imports only the standard library, then mlx_lm and transformers, so it
runs wherever mlx_lm.server runs. It reads one JSON request on stdin:

    {"folder": PATH, "hide_mistral_common": bool, "tokenizer_config": {...},
     "prompts": [{"messages", "tools"}], "records": [{"messages", "tools"}],
     "call_check": {"messages", "tools", "name", "arguments"}, "round_trip": [TEXT]}

and writes one JSON object on stdout: the versions of what shapes serving, the
tokenizer backend class `mlx_lm.utils.load_tokenizer` gives (as mlx_lm.server and
mlx_lm.lora load it), the tool parser mlx-lm picks (its module) and whether it parses
the call the folder's own chat template writes for `call_check`, the streaming
detokenizer class, where the chat template comes from, whether transformers warned about
the Mistral pre-tokenizer regex, and the ids of each prompt as mlx_lm.server renders a
chat request (`add_generation_prompt=True`) and of each record as mlx_lm.lora's
ChatDataset renders it, and for each `round_trip` text what tokenizer.decode and the
streaming detokenizer mlx_lm.server streams with give back for its ids (`round_trip`:
Gate 0 judges the text the server really streams). With `hide_mistral_common` the name maps to None in
`sys.modules` before anything imports transformers, so `importlib.util.find_spec`
returns None and transformers' `is_mistral_common_available()` says False: the process
behaves as one where mlx-lm is installed alone.

Usage: python serving_probe.py < request.json

The suite also imports `round_trip` to make the same measurement on a tokenizer it loaded
itself (one way of measuring, in and out of process).
"""

from __future__ import annotations

import io
import json
import pkgutil
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

LIBRARIES = ("mlx", "mlx-lm", "transformers", "tokenizers", "mistral-common")


def versions(hidden: bool) -> dict:
    found = {"python": sys.version.split()[0], "executable": sys.executable}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    if hidden and found["mistral-common"] != "absent":
        found["mistral-common"] = f"absent (installed {found['mistral-common']}, hidden from the server)"
    return found


def template_source(backend, folder) -> str:
    if type(backend).__name__ == "MistralCommonBackend":
        return "mistral-common (tekken.json), no Jinja template"
    if getattr(backend, "chat_template", None) is None:
        return "none"
    for name in ("chat_template.jinja", "chat_template.json", "tokenizer_config.json"):
        if (Path(folder) / name).is_file():
            return name
    return "tokenizer default"


def check_call(wrapper, check: dict) -> dict:
    """Whether the picked parser reads back the call the chat template writes (as the server cuts it)."""
    out = {"rendered": None, "parsed": None, "parses": False, "error": None}
    parser = wrapper.tool_parser
    if parser is None:
        out["error"] = "no tool parser"
        return out
    try:
        text = wrapper._tokenizer.apply_chat_template(check["messages"], tools=check["tools"], tokenize=False)
        start = wrapper.tool_call_start
        at = text.rfind(start) if start else -1
        if at < 0:
            raise ValueError(f"the template writes no {start!r} for a tool call")
        body = text[at + len(start) :]
        ends = [e for e in (wrapper.tool_call_end, getattr(wrapper._tokenizer, "eos_token", None)) if e]
        cut = min((body.find(e) for e in ends if body.find(e) >= 0), default=len(body))
        body = body[:cut]
        out["rendered"] = start + body
        parsed = parser(body, check["tools"])
        calls = parsed if isinstance(parsed, list) else [parsed]
        out["parsed"] = calls
        first = calls[0] if calls else {}
        arguments = first.get("arguments")
        if isinstance(arguments, str):
            arguments = json.loads(arguments)
        out["parses"] = first.get("name") == check["name"] and arguments == check["arguments"]
    except Exception as exc:  # noqa: BLE001 - the finding is the error
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def available_parsers() -> list:
    """The tool parsers this mlx-lm ships (modules of mlx_lm.tool_parsers)."""

    import mlx_lm.tool_parsers as parsers

    return sorted(m.name for m in pkgutil.iter_modules(parsers.__path__) if not m.name.startswith("_"))


def ids_of(render, items) -> list:
    out = []
    for item in items:
        try:
            out.append([int(i) for i in render(item)])
        except Exception as exc:  # noqa: BLE001 - one item's failure is its finding
            out.append({"error": f"{type(exc).__name__}: {exc}"})
    return out


def round_trip(wrapper, texts) -> dict:
    """Text -> what came back for its ids (`encode(text, add_special_tokens=False)`) back to text: `decoded` by
    tokenizer.decode, and `streamed` through the wrapper's streaming detokenizer as mlx_lm.server
    streams a reply (add_token for each id, then finalize), or `raised` saying where it raised."""
    backend, detokenizer = wrapper._tokenizer, wrapper.detokenizer
    out = {}
    for text in texts:
        ids = [int(i) for i in backend.encode(text, add_special_tokens=False)]
        found = {"decoded": backend.decode(ids, skip_special_tokens=False)}
        detokenizer.reset()
        step = "add_token"
        try:
            for token in ids:
                detokenizer.add_token(token)
            step = "finalize"
            detokenizer.finalize()
            found["streamed"] = detokenizer.text
        except Exception as exc:  # noqa: BLE001 - the finding: the server's request would fail here
            found["raised"] = f"{type(detokenizer).__name__}.{step} raised {type(exc).__name__}: {exc}"
        out[text] = found
    return out


def probe(request: dict) -> dict:
    hidden = bool(request.get("hide_mistral_common"))
    if hidden:
        sys.modules["mistral_common"] = None
    if not request.get("folder"):
        return {"versions": versions(hidden)}
    captured = io.StringIO()
    stderr, sys.stderr = sys.stderr, captured  # transformers' log handler binds sys.stderr at import
    try:
        from mlx_lm.utils import load_tokenizer

        folder = request["folder"]
        wrapper = load_tokenizer(Path(folder), tokenizer_config_extra=dict(request.get("tokenizer_config") or {}))
    finally:
        sys.stderr = stderr
    backend = wrapper._tokenizer
    parser = wrapper.tool_parser
    log = captured.getvalue()

    def prompt(item):
        tools = item.get("tools") or None
        return backend.apply_chat_template(item["messages"], tools=tools, add_generation_prompt=True, return_dict=False)

    def record(item):
        return backend.apply_chat_template(item["messages"], tools=item.get("tools"), return_dict=False)

    check = request.get("call_check")
    return {
        "versions": versions(hidden),
        "folder": folder,
        "tokenizer_config": request.get("tokenizer_config") or {},
        "tokenizer_class": type(backend).__name__,
        "tool_parser": getattr(parser, "__module__", None) if parser is not None else None,
        "tool_call_start": wrapper.tool_call_start,
        "tool_call_end": wrapper.tool_call_end,
        "available_parsers": available_parsers(),
        "detokenizer": type(wrapper.detokenizer).__name__,
        "chat_template_source": template_source(backend, folder),
        "regex_warning": "fix_mistral_regex" in log,
        "fix_mistral_regex": bool(getattr(backend, "fix_mistral_regex", False)),
        "call_check": check_call(wrapper, check) if check else None,
        "prompt_ids": ids_of(prompt, request.get("prompts") or []),
        "record_ids": ids_of(record, request.get("records") or []),
        "round_trip": round_trip(wrapper, request.get("round_trip") or []),
    }


def main() -> int:
    request = json.load(sys.stdin)
    json.dump(probe(request), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
