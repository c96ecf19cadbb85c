"""`punie-gates bench --fusion`: the recipe's fuse + quantize against the streamed one.

    python -m punie_gates.commands.bench_fusion [--candidate demo] [--base DIR] [--adapter DIR] [--bits 5] [--json-out FILE]

Without --base, the candidate (default: the demo) quantized to --bits as Gate 1 does
(cached in the gates' work folder); without
--adapter, a random LoRA adapter for the base (fusion does the same work for a
trained one). Both paths write into a fresh temporary work folder, removed
afterwards unless --keep. Prints one JSON line (punie_gates.checks.bench_fusion
says what each figure means); exits 1 when the outputs are not identical.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from punie_gates.checks.bench_fusion import run_fusion_bench
from punie_gates.errors import UserError
from punie_gates.inputs.options import resolve_options
from punie_gates.model.candidate import resolve_candidate
from punie_gates.model.quantize import ensure_bits
from punie_gates.model.random_adapter import write_random_adapter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="punie-gates bench --fusion", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--candidate",
        default="demo",
        help="the model whose --bits copy is the base, named as for the gates (default: demo)",
    )
    parser.add_argument(
        "--base", type=Path, help="quantized model folder to fuse into (default: the candidate at --bits)"
    )
    parser.add_argument("--adapter", type=Path, help="LoRA adapter folder (default: a random one for the base)")
    parser.add_argument("--bits", type=int, default=5, help="target bits (default 5)")
    parser.add_argument("--group-size", type=int, default=64, help="quantization group size (default 64)")
    parser.add_argument("--work-dir", type=Path, help="where both paths write (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the outputs (with --work-dir or a temporary folder)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    try:
        base = args.base or _candidate_base(args.candidate, args.bits)
    except UserError as exc:
        print(f"punie-gates bench --fusion: {exc}", file=sys.stderr)
        return 2
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="punie-gates-bench-fusion-", dir=args.work_dir))
    try:
        adapter = args.adapter or _random_adapter(base, work / "adapter")
        result = run_fusion_bench(base, adapter, work, bits=args.bits, group_size=args.group_size)
        line = json.dumps(result.to_json(), sort_keys=True)
        print(line)
        if args.json_out is not None:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(line + "\n", encoding="utf-8")
        if args.keep:
            print(f"outputs kept in {work}", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if result.identical else 1


def _candidate_base(spec: str, bits: int) -> Path:
    options = resolve_options({"candidate": spec}, root=Path.cwd())
    resolved = resolve_candidate(spec, cache_dir=options.cache_dir, offline=options.offline, need_weights=True)
    return ensure_bits(resolved.path, options.work_dir, bits).path


def _random_adapter(base: Path, dest: Path) -> Path:
    return write_random_adapter(base, dest)


if __name__ == "__main__":
    raise SystemExit(main())
