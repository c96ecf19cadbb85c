"""`punie-gates work`: list the cached artifacts of a work folder, remove some, prune the stale.

    punie-gates work [--work-dir DIR] [list] [--json]
    punie-gates work [--work-dir DIR] rm NAME... [--dry-run]
    punie-gates work [--work-dir DIR] prune --stale [--dry-run]

NAME is what `list` shows ("quantized/ad050e9d318c8682"), a folder name or a
unique key prefix. "Stale" is defined in punie_gates.model.workdir: leftovers of
dead processes, incomplete folders, artifacts of other library versions or of
sources that are gone or changed, finished or empty training checkpoints.
Nothing a running session is building is ever removed. The work folder
defaults to the suite's: $PUNIE_GATES_WORK_DIR, else <cache>/work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from punie_gates.inputs import paths
from punie_gates.model import workdir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="punie-gates work", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work-dir", type=Path, help="the work folder (default: $PUNIE_GATES_WORK_DIR or <cache>/work)"
    )
    sub = parser.add_subparsers(dest="action")
    listing = sub.add_parser("list", help="list the cached artifacts (the default)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    rm = sub.add_parser("rm", help="remove the named artifacts")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    prune = sub.add_parser("prune", help="remove what no current input would reuse")
    prune.add_argument("--stale", action="store_true", required=True, help="remove the stale entries (see list)")
    prune.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    return parser


def default_work_dir() -> Path:
    env = os.environ.get("PUNIE_GATES_WORK_DIR")
    return Path(env).expanduser() if env else paths.cache_dir() / "work"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    work = args.work_dir or default_work_dir()
    if not work.is_dir():
        print(f"punie-gates work: {work} is not a folder (nothing cached there yet?)", file=sys.stderr)
        return 2 if args.action in ("rm",) else 0
    if args.action in (None, "list"):
        entries = workdir.scan(work)
        if getattr(args, "json", False):
            for entry in entries:
                print(json.dumps(entry.to_json(), sort_keys=True))
        else:
            print(format_table(work, entries))
        return 0
    if args.action == "rm":
        try:
            entries = [workdir.resolve(work, name) for name in args.names]
        except LookupError as exc:
            print(f"punie-gates work rm: {exc}", file=sys.stderr)
            return 2
        removals = [workdir.remove(e, dry_run=args.dry_run) for e in entries]
    else:
        removals = workdir.prune_stale(work, dry_run=args.dry_run)
    return _report(removals, args.dry_run)


def _report(removals, dry_run: bool) -> int:
    freed = 0
    failed = False
    for r in removals:
        if r.removed or dry_run and r.reason == "dry run":
            freed += r.entry.bytes
            verb = "would remove" if dry_run else "removed"
            why = f" ({r.entry.stale})" if r.entry.stale else ""
            print(f"{verb} {r.entry.name} {_size(r.entry.bytes)}{why}")
        else:
            failed = True
            print(f"kept {r.entry.name}: {r.reason}", file=sys.stderr)
    if not removals:
        print("nothing to remove")
    else:
        print(f"{'would free' if dry_run else 'freed'} {_size(freed)}")
    return 1 if failed else 0


def format_table(work: Path, entries) -> str:
    if not entries:
        return f"{work}: no cached artifacts"
    rows = [("NAME", "STATE", "SIZE", "BUILT", "LAST USED", "NOTE")]
    for e in entries:
        note = f"in use by {_holder(e.building)}" if e.building else (f"stale: {e.stale}" if e.stale else "")
        rows.append((e.name, e.state, _size(e.bytes), _when(e.built_at), _when(e.last_used), note))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + ("  " + r[5] if r[5] else "") for r in rows]
    total = sum(e.bytes for e in entries)
    stale = sum(e.bytes for e in entries if e.stale)
    lines.append(f"{len(entries)} entries, {_size(total)} in {work}; stale: {_size(stale)} "
                 "(`punie-gates work prune --stale` removes them)")  # fmt: skip
    return "\n".join(lines)


def _holder(holder: dict) -> str:
    return f"pid {holder.get('pid', '?')}"


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


if __name__ == "__main__":
    raise SystemExit(main())
