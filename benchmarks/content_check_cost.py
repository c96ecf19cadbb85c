"""What checking a cached model's content costs: the hashing that artifacts.verify does on reuse.

A cached artifact is reused only when every file still has the BLAKE2b digest its
manifest recorded (punie_gates.model.artifacts). This hashes a file of --gb GiB
with the same code (64 MiB chunks, hashed in parallel threads) and prints one
JSON line with the seconds and GB/s, and the extrapolation to a 16 GB model.

    python benchmarks/content_check_cost.py [--gb 16] [--workers N] [--file PATH] [--keep]

By default the file is sparse (no disk space used; its holes read as zeros), so
the figure is the hashing cost, the floor; --file PATH hashes a real file (a
model shard), which adds the disk's read time when it is not in the page cache.

Measured (Linux x86_64, 2 CPU cores shared with other jobs, sparse 16 GiB):
2 workers 31.5 s (0.55 GB/s), 1 worker 86.1 s (0.20 GB/s); beside a running
gate suite, 2 GiB at 0.25 GB/s (63 s for 16 GB). Each file is hashed at
most once per run (an unchanged inode, size, mtime and ctime keeps its digest),
so a 16 GB quantized candidate costs ~30 s per run here; Apple Silicon machines
hash on 8-12 cores and read at several GB/s: expect a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=16.0, help="size of the sparse test file in GiB (default 16)")
    parser.add_argument("--workers", type=int, default=None, help="hashing threads (default: the CPU count)")
    parser.add_argument("--file", type=Path, help="hash this real file instead of a sparse one")
    parser.add_argument("--keep", action="store_true", help="keep the sparse file")
    args = parser.parse_args(argv)

    from punie_gates.model import artifacts

    if args.file:
        path, made = args.file, False
    else:
        fd, name = tempfile.mkstemp(prefix="punie-gates-hash-", suffix=".bin")
        os.close(fd)
        path, made = Path(name), True
        with path.open("r+b") as fh:
            fh.truncate(int(args.gb * 1024**3))
    try:
        size = path.stat().st_size
        started = time.perf_counter()
        artifacts.content_digests([path], workers=args.workers)
        seconds = time.perf_counter() - started
    finally:
        if made and not args.keep:
            path.unlink(missing_ok=True)
    rate = size / seconds / 1e9
    print(
        json.dumps(
            {
                "file": str(path),
                "sparse": made,
                "bytes": size,
                "workers": args.workers or os.cpu_count(),
                "seconds": round(seconds, 2),
                "gb_per_s": round(rate, 3),
                "seconds_for_16_gb": round(16 / rate, 1),
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
