"""`punie-gates score`: score saved responses against the validation queries, no model loaded."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from punie_gates.checks.scoring import read_answers, score_saved, summary
from punie_gates.formats.tool_calls import FORMATS
from punie_gates.inputs.catalog import CatalogError, load_catalog
from punie_gates.inputs.queries import QueryFileError, load_queries

_EPILOG = """\
input:  RESPONSES is JSONL, one {"id": QUERY_ID, "response": TEXT} per line (other
        keys are ignored; an id may appear more than once). A record with "tool_calls"
        (a list of {"name", "arguments"}) is an answer through a server, as the gates
        save them: its calls are those (arguments as JSON text or an object) and TEXT
        is message.content; tool-call markup left in TEXT was not a call. Without
        "tool_calls" the calls are parsed from TEXT (--format).
output: stdout gets one JSON line per response, in order:
        {"id", "passed", "tools", "fields", "reason"}; stderr gets a summary
        (passed/total and each category against the query file's thresholds).
exit status:
  0  every response was scored; pass or fail is in the output, not the exit status
  2  bad input: an unreadable or invalid query or tool file, a line that is not a
     JSON object with string "id" and "response", a malformed "tool_calls", or an
     id the query file lacks
     (each reported with file and line number; nothing is scored)
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="punie-gates score",
        description="Score saved model responses against the validation queries.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--queries", type=Path, help="query file (default: data/queries.toml)")
    parser.add_argument("--responses", type=Path, required=True, help="responses JSONL")
    parser.add_argument("--format", choices=FORMATS, default="auto", help="tool-call format (default: detect by markers)")
    parser.add_argument("--tools", type=Path, help="tool catalog (default: data/tools.toml)")
    args = parser.parse_args(argv)

    try:
        catalog = load_catalog(args.tools)
        queries = load_queries(args.queries, catalog)
    except (CatalogError, QueryFileError) as exc:
        print(f"punie-gates score: {exc}", file=sys.stderr)
        return 2
    records, errors = read_answers(args.responses, queries)
    if errors:
        print("\n".join(f"punie-gates score: {e}" for e in errors), file=sys.stderr)
        return 2

    scores = []
    try:
        for saved in records:
            score = score_saved(queries.by_id(saved.id), saved, catalog, args.format)
            scores.append(score)
            print(json.dumps(score.to_json(), ensure_ascii=False), flush=True)
    except BrokenPipeError:  # e.g. `| head`: the reader left, so stop without a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    print(summary(scores, queries), file=sys.stderr)
    return 0
