"""`punie-gates demo-model [DIR]`: build the offline demo candidate."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from punie_gates.model.demo import _build_into, ensure_demo_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="punie-gates demo-model",
        description="Build the offline demo candidate (tiny, random weights) into a folder.",
    )
    parser.add_argument(
        "dir", nargs="?", type=Path, help="folder to build into (default: the suite's cache, as `--candidate demo` uses)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.dir is None:
        path = ensure_demo_model()
    else:
        path = _build_into(args.dir)
        if path is None:
            return 2
    size_mb = sum(p.stat().st_size for p in path.iterdir() if p.is_file()) / 1e6
    print(f"demo model ready in {time.perf_counter() - started:.1f} s: {path} ({size_mb:.0f} MB, random weights)")
    print(f"use it with: pytest --candidate {path}  (or --candidate demo)")
    return 0
