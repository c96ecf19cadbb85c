"""`punie-gates compare RUN...`: report folders' answers side by side, no model loaded."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from punie_gates.checks.rescoring import RescoreError, rescore_folder
from punie_gates.decision import compare, html
from punie_gates.inputs.catalog import CatalogError, load_catalog
from punie_gates.inputs.queries import QueryFileError, load_queries

_EPILOG = """\
input:  report folders (pytest --report-dir). From each, gate5-responses.jsonl is
        read, else gate4-responses.jsonl, else screening-responses.jsonl (an endpoint
        candidate's), and every reply is scored again with the current scorer, query
        file and tool catalog. No model is loaded.
        The baseline is --baseline RUN when given, else the first RUN.
output: a page (--out, default ./compare.html) and one JSON line on stdout.
        Two runs: A against B, per run passed/total with its Wilson interval, overall
        and per category; the exact McNemar test (only_a, only_b, p both ways);
        queries only one run answered are listed in only_in_a / only_in_b.
        Three or more: the candidates ranked against the baseline (most passes
        first), each with its interval, per-category totals, the exact McNemar test
        against the baseline, its verdict, run time and peak memory (from its
        gate-report.json), and every query's pass/fail side by side. Runs that
        answered different queries are compared on the queries all of them
        answered ("on_intersection": true, and each run's "left_out").
exit status:
  0  compared (which run is better is in the output, not the exit status)
  2  bad input: fewer than two runs, a folder without responses, an unreadable
     query or tool file, a reply line that is not {"id", "response"}, an id the
     query file lacks, or no query in common (each reported with file and line)
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="punie-gates compare",
        description="Compare runs' saved answers, re-scored, on the queries all of them answered.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "runs", type=Path, nargs="+", metavar="RUN", help="report folders (two or more, or one beside --baseline)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="RUN",
        help="the report folder the others are ranked against (default: the first RUN)",
    )
    parser.add_argument("--queries", type=Path, help="query file (default: data/queries.toml)")
    parser.add_argument("--tools", type=Path, help="tool catalog (default: data/tools.toml)")
    parser.add_argument(
        "--out", type=Path, default=Path("compare.html"), help="page to write (default: ./compare.html)"
    )
    args = parser.parse_args(argv)
    folders = ([args.baseline] if args.baseline else []) + list(args.runs)
    if len(folders) < 2:
        parser.error("give at least two report folders (RUN RUN..., or --baseline RUN and one RUN)")

    if args.out.is_dir():
        print(
            f"punie-gates compare: --out {args.out} is a folder; give the page's file name, such as "
            f"{args.out / 'compare.html'}",
            file=sys.stderr,
        )
        return 2
    for i, a in enumerate(folders):
        for b in folders[i + 1 :]:
            if _same_folder(a, b):
                print(
                    f"punie-gates compare: warning: {a} is given twice: the run is compared with itself, "
                    "so the two sides agree by construction",
                    file=sys.stderr,
                )
    try:
        catalog = load_catalog(args.tools)
        queries = load_queries(args.queries, catalog)
        runs = [compare.run_of(rescore_folder(folder, queries, catalog)) for folder in folders]
        if len(runs) == 2:
            result = compare.compare_runs(*runs, queries)
            page, doc = compare.comparison_page(result, queries), lambda out: compare.comparison_json(result, out)
        else:
            ranking = compare.rank_runs(runs, queries, baseline=0)
            page, doc = compare.ranking_page(ranking, queries), lambda out: compare.ranking_json(ranking, out)
    except (CatalogError, QueryFileError, RescoreError, compare.CompareError) as exc:
        print(f"punie-gates compare: {exc}", file=sys.stderr)
        return 2
    try:
        out = html.write_page(args.out, page)
    except OSError as exc:
        print(f"punie-gates compare: cannot write --out {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(json.dumps(doc(out), ensure_ascii=False))
    return 0


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
