"""`punie-gates convert`: Qwen3 training JSONL to Mistral chat JSONL (and back)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from punie_gates.errors import UserError
from punie_gates.formats.records import Reject, read_jsonl_bytes
from punie_gates.formats.sampling import stratified_sample
from punie_gates.formats.to_mistral import convert_training_folder, to_mistral
from punie_gates.formats.to_qwen3 import to_qwen3
from punie_gates.formats.turns import check_tools
from punie_gates.inputs import readers
from punie_gates.inputs.catalog import native_tool_schemas


class _UsageError(Exception):
    pass


def _load_tools(path: Path) -> list[dict]:
    if path.suffix == ".toml":
        return check_tools(native_tool_schemas(path))
    return check_tools(readers.read_json(path, "tool list"))


def _write_jsonl(path: Path, records: Iterable[dict]) -> None:
    _write_all({path: records})


def _write_all(files: dict[Path, Iterable[dict]]) -> None:
    """Write every file through a temporary one, then rename them all into place: an
    interrupted or failed run leaves the old outputs (or none), never half of one."""
    tmps: dict[Path, Path] = {}
    try:
        for path, records in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmps[path] = tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with tmp.open("w", encoding="utf-8", newline="\n") as out:
                for record in records:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                out.flush()
                os.fsync(out.fileno())
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (symlinks and hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _inputs(args: argparse.Namespace) -> list[Path]:
    """The files INPUT stands for; a folder INPUT must hold both of its files."""
    if not args.input.is_dir():
        return [args.input]
    files = [args.input / name for name in ("train.jsonl", "valid.jsonl")]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise _UsageError(
            f"the folder {args.input} has no {' and no '.join(missing)}: a folder INPUT needs "
            "train.jsonl and valid.jsonl"
        )
    return files


def _check_targets(args: argparse.Namespace, sources: list[Path]) -> None:
    """Refuse, before anything is read, an output that would overwrite an input."""
    targets = [args.output / s.name for s in sources] if args.input.is_dir() else [args.output]
    named = [("-o/--output", t) for t in targets] + ([("--rejects", args.rejects)] if args.rejects else [])
    for option, target in named:
        for source in sources:
            if _same_file(source, target):
                raise _UsageError(
                    f"{option} {target} is the input file {source}: writing there would destroy the input; "
                    "write to another file"
                )
    if args.rejects and any(_same_file(args.rejects, t) for t in targets):
        raise _UsageError(f"--rejects {args.rejects} is also the output; give them different files")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="punie-gates convert",
        description="Convert Punie's Qwen3 training JSONL to Mistral chat JSONL for mlx-lm (or back with --to qwen3). "
        "INPUT may be a folder holding train.jsonl and valid.jsonl: OUTPUT is then a folder, and both files "
        "carry one tools list. Outputs are written whole (a temporary file renamed into place) and never onto an "
        "input. Exit status: 0 all converted, 1 some lines rejected, 2 usage or I/O error (an empty or missing "
        "input, an output that is an input, --limit above the records there are).",
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
    except UserError as exc:  # names the file already
        raise _UsageError(f"--tools {exc}") from None
    except (OSError, ValueError) as exc:
        raise _UsageError(f"--tools {args.tools}: {exc}") from None
    if args.input.is_dir() and args.to != "mistral":
        raise _UsageError("a folder INPUT converts to Mistral only")
    sources = _inputs(args)
    _check_targets(args, sources)
    try:
        if args.input.is_dir():
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
        where = exc.filename or args.input
        raise _UsageError(f"cannot read {where}: {exc.strerror or exc}") from None
    for (name, result), source in zip(outputs.items(), sources):
        if result.read == 0:
            raise _UsageError(f"{source}: the file is empty (no records); nothing to convert")
        if args.limit is not None and name in sampled and args.limit > result.converted:
            raise _UsageError(
                f"--limit {args.limit} is more than the {result.converted} records converted from {source}; "
                "drop --limit to keep them all"
            )
    files: dict[Path, list[dict]] = {}
    for name, result in outputs.items():
        records = list(result.records)
        if args.limit is not None and name in sampled:
            records = stratified_sample(records, args.limit, args.seed)
        files[targets[name]] = records
    written = sum(len(records) for records in files.values())
    try:
        _write_all(files)
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
