"""`punie-gates convert`: Qwen3 training JSONL to Mistral chat JSONL (and back)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from punie_gates.formats.convert import (
    Reject,
    check_tools,
    convert_training_folder,
    read_jsonl_bytes,
    to_mistral,
    to_qwen3,
)
from punie_gates.formats.sampling import stratified_sample

class _UsageError(Exception):
    pass


def _load_tools(path: Path) -> list[dict]:
    if path.suffix == ".toml":
        from punie_gates.inputs.catalog import native_tool_schemas

        return check_tools(native_tool_schemas(path))
    try:
        return check_tools(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at line {exc.lineno}") from None


def _write_jsonl(path: Path, records: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="punie-gates convert",
        description="Convert Punie's Qwen3 training JSONL to Mistral chat JSONL for mlx-lm (or back with --to qwen3). "
        "INPUT may be a folder holding train.jsonl and valid.jsonl: OUTPUT is then a folder, and both files "
        "carry one tools list. Exit status: 0 all converted, 1 some lines rejected, 2 usage or I/O error.",
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="JSONL file, or a folder with train/valid.jsonl")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUTPUT", help="JSONL file (or folder)")
    parser.add_argument("--rejects", type=Path, metavar="FILE", help="write rejected lines here as JSONL")
    parser.add_argument("--limit", type=int, metavar="N", help="write a stratified sample of N records (train only)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed for --limit (default 0)")
    parser.add_argument("--to", choices=("mistral", "qwen3"), default="mistral", help="target form (default mistral)")
    parser.add_argument("--tools", type=Path, metavar="FILE", help="tool catalog: JSON list of schemas, or .toml")
    return parser


def _run(args: argparse.Namespace) -> tuple[dict, list[tuple[str, Reject]]]:
    if args.limit is not None and args.limit <= 0:
        raise _UsageError("--limit must be a positive number")
    if args.to == "qwen3" and (args.tools or args.limit is not None):
        raise _UsageError("--tools and --limit apply to --to mistral only")
    try:
        tools = _load_tools(args.tools) if args.tools else None
    except (OSError, ValueError) as exc:
        raise _UsageError(f"--tools {args.tools}: {exc}") from None
    try:
        if args.input.is_dir():
            if args.to != "mistral":
                raise _UsageError("a folder INPUT converts to Mistral only")
            train, valid = convert_training_folder(args.input, tools)
            outputs = {"train.jsonl": train, "valid.jsonl": valid}
            targets = {name: args.output / name for name in outputs}
            sampled = {"train.jsonl"}  # the validation set stays whole
        else:
            lines = read_jsonl_bytes(args.input)
            source = str(args.input)
            result = to_mistral(lines, tools, source) if args.to == "mistral" else to_qwen3(lines, source)
            outputs = {args.input.name: result}
            targets = {args.input.name: args.output}
            sampled = {args.input.name}
    except OSError as exc:
        raise _UsageError(f"cannot read {args.input}: {exc.strerror or exc}") from None
    written = 0
    try:
        for name, result in outputs.items():
            records = list(result.records)
            if args.limit is not None and name in sampled:
                records = stratified_sample(records, args.limit, args.seed)
            _write_jsonl(targets[name], records)
            written += len(records)
    except OSError as exc:
        raise _UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    rejects = [(name, r) for name, result in outputs.items() for r in result.rejects]
    stats = {
        "read": sum(r.read for r in outputs.values()),
        "converted": sum(r.converted for r in outputs.values()),
        "rejected": len(rejects),
        "written": written,
        "tools": [t["function"]["name"] for t in next(iter(outputs.values())).tools],
        "to": args.to,
        "output": str(args.output),
    }
    return stats, rejects


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage or help
        return int(exc.code or 0)
    try:
        stats, rejects = _run(args)
        if args.rejects:
            records = ({"file": name, "line": r.line, "reason": r.reason, "text": r.text} for name, r in rejects)
            try:
                _write_jsonl(args.rejects, records)
            except OSError as exc:
                raise _UsageError(f"cannot write {args.rejects}: {exc.strerror or exc}") from None
    except (_UsageError, ValueError) as exc:
        print(f"punie-gates convert: {exc}", file=sys.stderr)
        return 2
    for name, r in rejects[:20]:
        print(f"{name}:{r.line}: {r.reason}", file=sys.stderr)
    if len(rejects) > 20:
        print(f"... and {len(rejects) - 20} more rejected lines (see --rejects FILE)", file=sys.stderr)
    stats["seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(stats))
    return 1 if rejects else 0
