"""Gate 3's figures: zero-shot tool calling before any training, and an endpoint
candidate's screening (docs/gate3-zero-shot.md, docs/endpoints.md).

Every field is optional: None means not recorded (see results/shared.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from punie_gates.results.queries import Screening, ZeroShotRow
from punie_gates.results.shared import GateFigures


@dataclass(frozen=True)
class Gate3Figures(GateFigures):
    """Gate 3 (caution): zero-shot tool calling."""

    queries: tuple[ZeroShotRow, ...] | None = None
    """A row per gate3 query: the calls made and whether they validate."""
    misses_by_cause: Mapping[str, int] | None = None
    """Failed rows counted by whose miss they are (model, server, stream); causes with none left out."""
    well_formed_calls: int | None = None
    """Valid calls to a known tool over the tool queries (against [gate3] min_correct_calls)."""
    screening: Screening | None = None
    """An endpoint candidate's screening table; absent for any other candidate."""
