"""`punie-gates bench`: the plan's validation generation vs the suite's, side by side in one run."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from punie_gates.answering.prompts import default_system_prompt
from punie_gates.answering.server import ServerError
from punie_gates.checks.bench import PLAN_MAX_TOKENS, run_bench, run_server_bench, write_result
from punie_gates.commands import bench_fusion
from punie_gates.errors import DataFileError, UserError
from punie_gates.formats.to_mistral import convert_training_folder
from punie_gates.inputs.catalog import CatalogError, load_catalog
from punie_gates.inputs.option_table import DEFAULT_BATCH_SIZE
from punie_gates.inputs.options import resolve_options
from punie_gates.inputs.queries import QueryFileError, load_queries
from punie_gates.inputs.readers import read_text
from punie_gates.model.candidate import CandidateError
from punie_gates.model.loading import load_named, release
from punie_gates.progress import null_progress, progress_printer


def _load_candidate(spec: str, progress=None, options=None):
    """The candidate loaded as the gates load it (model.loading.LoadedModel): the same
    options (environment and gates file included), at the target bits."""
    options = options or resolve_options({"candidate": spec}, root=Path.cwd())
    return load_named(spec, options, progress=progress)


def _training_records(folder: Path | None, catalog) -> list[dict]:
    """The training data's conversations (train and valid) in the candidate's form, for the answer lengths."""
    if folder is None or not all((folder / name).is_file() for name in ("train.jsonl", "valid.jsonl")):
        raise DataFileError(
            f"--training-data {folder}: expected train.jsonl and valid.jsonl there in Qwen3 form; the bench draws "
            "its second workload's answer lengths from them (point --training-data at Punie's data/phase27_merged)"
        )
    train, valid = convert_training_folder(folder, tools=catalog.native_schemas())
    return list(train.records) + list(valid.records)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="punie-gates bench",
        description="Time the plan's validation generation (one query at a time, full prompt) against the "
        "suite's (shared-prefix cache + batching) on the same model in one process, then the same queries "
        "through mlx_lm.server one at a time against several at a time; print one JSON line.",
    )
    p.add_argument(
        "--candidate",
        default=os.environ.get("PUNIE_GATES_CANDIDATE", "demo"),
        help="'demo' (built-in, offline), an MLX model folder or a Hugging Face repo id (fetched unless "
        "HF_HUB_OFFLINE=1); loaded at the gates' target bits (default: demo)",
    )
    p.add_argument("--queries", type=Path, default=None, help="query file (default: data/queries.toml)")
    p.add_argument(
        "--limit", type=int, default=None, metavar="N", help="use only the first N queries (default: all of them)"
    )
    p.add_argument("--tools", type=Path, default=None, help="tool catalog (default: data/tools.toml)")
    p.add_argument(
        "--system-prompt", type=Path, default=None, help="system prompt text (default: data/system_prompt.txt)"
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=PLAN_MAX_TOKENS,
        help=f"token cap per answer, both runs (default: the plan's {PLAN_MAX_TOKENS})",
    )
    p.add_argument(
        "--gen-batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"queries decoded together in the suite's run (default: {DEFAULT_BATCH_SIZE})",
    )
    p.add_argument(
        "--training-data",
        type=Path,
        default=None,
        help="folder with train.jsonl and valid.jsonl in Qwen3 form: the second workload caps each answer "
        "at a length drawn from its assistant turns, counted with the candidate's tokenizer (default: "
        "as the gates: fixtures/demo-training for the demo, else data/phase27_merged)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the per-query answer-length draw (default 0)")
    p.add_argument("--json-out", type=Path, default=None, help="also write the JSON result to this file")
    p.add_argument(
        "--no-server",
        action="store_true",
        help="skip the mlx_lm.server timing (the same queries to one server, one at a time and then "
        "--gen-batch-size at a time; its figures are the JSON's 'server')",
    )
    p.add_argument(
        "--server-log",
        type=Path,
        default=None,
        help="the server's log (default: bench-server.log beside --json-out, else in the temp folder)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument(
        "--fusion",
        action="store_true",
        help="instead: time the seed's fusion recipe against the streamed fuse on the demo "
        "(see `punie-gates bench --fusion --help`)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--fusion" in argv:  # the fusion comparison: the recipe vs the streamed fuse, side by side
        return bench_fusion.main([a for a in argv if a != "--fusion"])
    args = _parser().parse_args(argv)
    if args.max_tokens < 1 or args.gen_batch_size < 1 or (args.limit is not None and args.limit < 1):
        print("punie-gates bench: --max-tokens, --gen-batch-size and --limit must be >= 1", file=sys.stderr)
        return 2

    try:
        catalog = load_catalog(args.tools)
        queries = load_queries(args.queries, catalog=catalog).queries[: args.limit]
        given = {"candidate": args.candidate, "training_data": str(args.training_data) if args.training_data else None}
        options = resolve_options(given, root=Path.cwd())
        training_records = _training_records(options.training_data, catalog)
    except (CatalogError, QueryFileError, UserError) as exc:
        print(f"punie-gates bench: {exc}", file=sys.stderr)
        return 2
    if args.system_prompt is not None:
        try:
            system_prompt = read_text(args.system_prompt, "system prompt file (--system-prompt)").strip()
        except UserError as exc:
            print(f"punie-gates bench: {exc}", file=sys.stderr)
            return 2
    else:
        system_prompt = default_system_prompt(())
    progress = null_progress if args.quiet else progress_printer(lambda line: print(line, file=sys.stderr, flush=True))

    try:
        loaded = _load_candidate(args.candidate, progress, options)
    except CandidateError as exc:
        print(f"punie-gates bench: {exc}", file=sys.stderr)
        return 2
    result = run_bench(
        loaded.model,
        loaded.tokenizer,
        queries,
        catalog,
        system_prompt,
        max_tokens=args.max_tokens,
        batch_size=args.gen_batch_size,
        candidate=args.candidate,
        training_records=training_records,
        training_source=str(options.training_data),
        seed=args.seed,
        progress=progress,
    )
    if not args.no_server:
        folder = loaded.path
        del loaded  # the server loads its own copy: not beside this one
        release()
        log = args.server_log or (
            (args.json_out.parent if args.json_out else Path(tempfile.gettempdir())) / "bench-server.log"
        )
        if not args.quiet:
            print(f"bench server: {folder} through mlx_lm.server (log {log})", file=sys.stderr, flush=True)
        try:
            server = run_server_bench(
                folder,
                queries,
                catalog,
                system_prompt,
                max_tokens=args.max_tokens,
                concurrency=args.gen_batch_size,
                log_path=log,
            )
        except ServerError as exc:
            print(f"punie-gates bench: {exc}", file=sys.stderr)
            return 2
        result = replace(result, server=server)
    print(json.dumps(asdict(result)), flush=True)
    if args.json_out is not None:
        write_result(args.json_out, result)
    return 0
