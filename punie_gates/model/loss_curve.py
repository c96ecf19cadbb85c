"""A training run's loss curve: its points, the figures a gate judges, a plot and a JSON file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LossCurve:
    """(iteration, loss) points; validation starts at iteration 0."""

    train: tuple[tuple[int, float], ...] = ()
    valid: tuple[tuple[int, float], ...] = ()

    @property
    def start(self) -> float | None:
        return self.valid[0][1] if self.valid else None

    @property
    def end(self) -> float | None:
        return self.valid[-1][1] if self.valid else None

    @property
    def reduction(self) -> float | None:
        """Fraction of the starting validation loss removed: (start - end) / start."""
        if len(self.valid) < 2 or not self.start:
            return None
        return (self.start - self.end) / self.start

    def improved(self) -> bool:
        """True when validation loss ended below where it started."""
        return len(self.valid) >= 2 and self.end < self.start

    def to_json(self) -> dict:
        return {"train": [list(p) for p in self.train], "valid": [list(p) for p in self.valid]}

    @classmethod
    def from_json(cls, data: dict) -> LossCurve:
        def points(key):
            return tuple((int(it), float(loss)) for it, loss in data.get(key, []))

        return cls(train=points("train"), valid=points("valid"))

    def summary(self) -> dict:
        """The figures a report shows next to the plot."""
        return {
            "valid_start": self.start,
            "valid_end": self.end,
            "valid_reduction": self.reduction,
            "train_first": self.train[0][1] if self.train else None,
            "train_last": self.train[-1][1] if self.train else None,
            "points": {"train": len(self.train), "valid": len(self.valid)},
        }


def plot_loss_curve(curve: LossCurve, png: Path, title: str) -> Path:
    """Training and validation loss against iteration, as a PNG.

    Uses matplotlib's Figure directly (Agg canvas): no display, and no change
    to the process-wide pyplot backend.
    """
    from matplotlib.figure import Figure

    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(7, 4), dpi=110)
    ax = fig.subplots()
    if curve.train:
        its, losses = zip(*curve.train)
        ax.plot(its, losses, color="tab:blue", alpha=0.35, linewidth=1, label="train (per iteration)")
        window = max(1, len(losses) // 20)
        if window > 1:
            smooth = [_mean(losses[max(0, i - window + 1) : i + 1]) for i in range(len(losses))]
            ax.plot(its, smooth, color="tab:blue", linewidth=1.8, label=f"train (mean of {window})")
    if curve.valid:
        its, losses = zip(*curve.valid)
        ax.plot(its, losses, "o-", color="tab:orange", linewidth=1.8, label="validation")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    reduction = curve.reduction
    ax.set_title(title if reduction is None else f"{title} (validation loss {-reduction:+.0%})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp)
    tmp.replace(png)
    return png


def _mean(values) -> float:
    return sum(values) / len(values)


def write_loss_curve(curve: LossCurve, path: Path) -> Path:
    """The curve as JSON {"train": [[it, loss]...], "valid": [[it, loss]...]}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(curve.to_json()), encoding="utf-8")
    return path
