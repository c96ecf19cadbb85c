"""`punie-gates compare RUN_A RUN_B`: two report folders' answers side by side, no model loaded."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from punie_gates.decision import compare, html
from punie_gates.inputs.catalog import CatalogError, load_catalog
from punie_gates.inputs.queries import QueryFileError, load_queries

_EPILOG = """\
input:  two report folders (pytest --report-dir). From each, gate5-responses.jsonl is
        read, else gate4-responses.jsonl, and every reply is scored again with the
        current scorer, query file and tool catalog. No model is loaded.
output: the side-by-side page (--out, default ./compare.html) and one JSON line on
        stdout: per run passed/total with its Wilson interval, overall and per
        category; the exact McNemar test (only_a, only_b, p both ways). Runs that
        answered different queries are compared on the queries both answered; the
        others are listed in only_in_a / only_in_b.
exit status:
  0  compared (which run is better is in the output, not the exit status)
  2  bad input: a folder without responses, an unreadable query or tool file, a
     reply line that is not {"id", "response"}, an id the query file lacks, or no
     query in common (each reported with file and line)
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="punie-gates compare",
        description="Compare two runs' saved answers, re-scored, on the queries both answered.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_a", type=Path, metavar="RUN_A", help="first report folder")
    parser.add_argument("run_b", type=Path, metavar="RUN_B", help="second report folder")
    parser.add_argument("--queries", type=Path, help="query file (default: data/queries.toml)")
    parser.add_argument("--tools", type=Path, help="tool catalog (default: data/tools.toml)")
    parser.add_argument("--out", type=Path, default=Path("compare.html"), help="page to write (default: ./compare.html)")
    args = parser.parse_args(argv)

    try:
        catalog = load_catalog(args.tools)
        queries = load_queries(args.queries, catalog)
        runs = [compare.load_run(folder, queries, catalog) for folder in (args.run_a, args.run_b)]
        result = compare.compare_runs(*runs, queries)
    except (CatalogError, QueryFileError, compare.CompareError) as exc:
        print(f"punie-gates compare: {exc}", file=sys.stderr)
        return 2
    out = html.write_page(args.out, compare.comparison_page(result, queries))
    print(json.dumps(compare.comparison_json(result, out), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
