"""The recipe's fuse + quantize against the streamed one, on the same inputs, in one process.

For each path: wall seconds, MLX's peak memory, the process's peak resident set
(the kernel's high-water mark, reset before each step where Linux allows it:
punie_gates.resources), and the bytes it wrote into its own fresh work folder.
The recipe's float fuse is kept until its size is counted (it would be deleted
afterwards anyway), so its bytes include that intermediate copy. Then the two
output folders are compared: same files, every safetensors tensor equal
(`mx.array_equal`, same dtype and shape), every other file byte for byte
(bookkeeping files COMPLETE, inputs.json, LAST_USED aside).
"""

from __future__ import annotations

import contextlib
import gc
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from punie_gates.model import artifacts
from punie_gates.model.fusion import fuse_and_quantize, fuse_dequantized
from punie_gates.model.streamed_fusion import fuse_and_quantize_streamed
from punie_gates.resources import StepCost, measure

_BOOKKEEPING = set(artifacts.BOOKKEEPING)


@dataclass(frozen=True)
class FusionBench:
    """Both fusion paths measured on one base and adapter."""

    recipe_s: float  # wall seconds of fuse_and_quantize (float fuse on disk, then convert)
    streamed_s: float  # wall seconds of fuse_and_quantize_streamed
    recipe_bytes_written: int  # bytes its work folder grew by, the float intermediate included
    streamed_bytes_written: int
    recipe_peak_memory_gb: float | None  # MLX peak allocation during the step
    streamed_peak_memory_gb: float | None
    recipe_peak_rss_gb: float | None  # peak resident set during the step (see rss_scope)
    streamed_peak_rss_gb: float | None
    rss_scope: str | None  # "step": high-water mark reset per step; "process": since the process started
    identical: bool  # same files, equal tensors, equal other files
    differences: tuple[str, ...]  # what differed (empty when identical)
    tensors: int  # tensors compared
    bits: int
    group_size: int
    base: str
    adapter: str

    def to_json(self) -> dict:
        data = asdict(self)
        data["differences"] = list(self.differences)
        for key, value in data.items():
            if isinstance(value, float):
                data[key] = round(value, 4)
        return data


def compare_model_folders(a: Path, b: Path) -> tuple[list[str], int]:
    """(differences, tensors compared) between two model folders."""
    import mlx.core as mx

    a, b = Path(a), Path(b)
    names_a = {p.name for p in a.iterdir() if p.is_file()} - _BOOKKEEPING
    names_b = {p.name for p in b.iterdir() if p.is_file()} - _BOOKKEEPING
    differences = [f"only in {a}: {n}" for n in sorted(names_a - names_b)]
    differences += [f"only in {b}: {n}" for n in sorted(names_b - names_a)]
    tensors = 0
    for name in sorted(names_a & names_b):
        if name.endswith(".safetensors"):
            ta, tb = mx.load(str(a / name)), mx.load(str(b / name))
            if set(ta) != set(tb):
                differences.append(f"{name}: tensor names differ ({sorted(set(ta) ^ set(tb))[:3]})")
            for key in sorted(set(ta) & set(tb)):
                tensors += 1
                x, y = ta[key], tb[key]
                if x.dtype != y.dtype or x.shape != y.shape:
                    differences.append(f"{name}:{key}: {x.dtype}{tuple(x.shape)} vs {y.dtype}{tuple(y.shape)}")
                elif not mx.array_equal(x, y).item():
                    differences.append(f"{name}:{key}: values differ")
            del ta, tb
        elif (a / name).read_bytes() != (b / name).read_bytes():
            differences.append(f"{name}: contents differ")
    return differences, tensors


def run_fusion_bench(base: Path, adapter: Path, work_dir: Path, *, bits: int = 5, group_size: int = 64) -> FusionBench:
    """Run the recipe, then the streamed path, into fresh folders under `work_dir` (which must not hold them)."""
    import mlx.core as mx

    base, adapter, work_dir = Path(base), Path(adapter), Path(work_dir)
    recipe_work, streamed_work = work_dir / "recipe", work_dir / "streamed"
    for folder in (recipe_work, streamed_work):
        if folder.exists():
            raise ValueError(f"{folder} exists; the bench needs fresh folders to count what each path writes")
    _read_through(base)  # both paths then read the base from the page cache

    # mlx-lm's convert prints on stdout; a command printing JSON there must not get it.
    with contextlib.redirect_stdout(sys.stderr):
        with measure("recipe", folders=[recipe_work]) as recipe:
            recipe_out = fuse_and_quantize(base, adapter, recipe_work, bits, group_size, keep_fused=True)
        artifacts.discard(fuse_dequantized(base, adapter, recipe_work))  # cached: only finds the kept float fuse
        gc.collect()
        mx.clear_cache()
        with measure("streamed", folders=[streamed_work]) as streamed:
            streamed_out = fuse_and_quantize_streamed(base, adapter, streamed_work, bits, group_size)
    differences, tensors = compare_model_folders(recipe_out, streamed_out)
    r, s = recipe.cost, streamed.cost
    return FusionBench(
        recipe_s=r.seconds,
        streamed_s=s.seconds,
        recipe_bytes_written=r.bytes_written,
        streamed_bytes_written=s.bytes_written,
        recipe_peak_memory_gb=r.peak_memory_gb,
        streamed_peak_memory_gb=s.peak_memory_gb,
        recipe_peak_rss_gb=r.peak_rss_gb,
        streamed_peak_rss_gb=s.peak_rss_gb,
        rss_scope=_common_scope(r, s),
        identical=not differences,
        differences=tuple(differences),
        tensors=tensors,
        bits=bits,
        group_size=group_size,
        base=str(base),
        adapter=str(adapter),
    )


def _common_scope(*costs: StepCost) -> str | None:
    scopes = {c.rss_scope for c in costs}
    return scopes.pop() if len(scopes) == 1 else "mixed"


def _read_through(folder: Path) -> None:
    for file in sorted(Path(folder).glob("*.safetensors")):
        with file.open("rb") as fh:
            while fh.read(16 * 1024 * 1024):
                pass
