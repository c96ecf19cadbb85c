"""`punie-gates score`: score saved responses (or whole conversations) against the validation
queries, no model loaded."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from punie_gates.checks.followup import rescore_conversations
from punie_gates.checks.judgment import summary
from punie_gates.checks.multiturn import followup_summary
from punie_gates.checks.scoring import read_answers, score_saved
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
        CONVERSATIONS is JSONL as the gates save it (gateN-conversations.jsonl): one
        whole conversation per line, every reply with its parsed calls and the tool
        results sent back; it is scored again against the query file as it is now.
output: stdout gets one JSON line per response, in order:
        {"id", "passed", "tools", "fields", "reason"}; stderr gets a summary
        (passed/total and each category against the query file's thresholds).
        With --conversations: one JSON line per conversation,
        {"id", "passed", "stop", "missing_facts", "unsupported_numbers", "turns",
        "reason"}, and the multi-turn summary against the file's [followup] minimums.
exit status:
  0  every response was scored; pass or fail is in the output, not the exit status
  2  bad input: an unreadable or invalid query or tool file (or one that is not a
     regular file, not UTF-8, nested over 100 levels), a line that is not a JSON
     object with string "id" and "response" (or not a saved conversation), a
     malformed "tool_calls", or an id the query file lacks
     (each reported with file and line number; nothing is scored)
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="punie-gates score",
        description="Score saved model responses, or whole saved conversations, against the validation queries.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--queries", type=Path, help="query file (default: data/queries.toml)")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--responses", type=Path, help="responses JSONL (first replies)")
    given.add_argument("--conversations", type=Path, help="saved conversations JSONL (gateN-conversations.jsonl)")
    parser.add_argument(
        "--format", choices=FORMATS, default=None, help="tool-call format of --responses (default: detect by markers)"
    )
    parser.add_argument("--tools", type=Path, help="tool catalog (default: data/tools.toml)")
    args = parser.parse_args(argv)
    if args.conversations is not None and args.format is not None:
        parser.error("--format applies to --responses: saved conversations hold their calls parsed")

    try:
        catalog = load_catalog(args.tools)
        queries = load_queries(args.queries, catalog)
    except (CatalogError, QueryFileError) as exc:
        print(f"punie-gates score: {exc}", file=sys.stderr)
        return 2
    if args.conversations is not None:
        return _conversations(args.conversations, queries)
    records, errors = read_answers(args.responses, queries)
    if errors:
        print("\n".join(f"punie-gates score: {e}" for e in errors), file=sys.stderr)
        return 2

    scores = []
    try:
        for saved in records:
            score = score_saved(queries.by_id(saved.id), saved, catalog, args.format or "auto")
            scores.append(score)
            print(json.dumps(score.to_json(), ensure_ascii=False), flush=True)
    except BrokenPipeError:  # e.g. `| head`: the reader left, so stop without a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    print(summary(scores, queries), file=sys.stderr)
    return 0


def _conversations(path: Path, queries) -> int:
    rescored = rescore_conversations(path, queries)
    if rescored.errors:
        print("\n".join(f"punie-gates score: {e}" for e in rescored.errors), file=sys.stderr)
        return 2
    try:
        for score in rescored.scores:
            print(json.dumps(score.to_json(), ensure_ascii=False), flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    print(followup_summary(list(rescored.scores), queries), file=sys.stderr)
    return 0
