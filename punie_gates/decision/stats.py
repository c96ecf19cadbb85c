"""Small-sample statistics for pass rates: Wilson intervals and the exact McNemar test.

40 queries is a small sample (34/40 has a 95% interval of about 71-93%), so every
pass rate the suite reports carries its interval, and candidate vs baseline is
decided on the queries where the two disagree. Both come from scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    """A pass rate with its Wilson score interval."""

    passed: int
    """How many passed."""
    total: int
    """How many were asked."""
    low: float
    """Lower end of the interval (0..1)."""
    high: float
    """Upper end of the interval (0..1)."""
    confidence: float = 0.95
    """The interval's confidence level."""

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    def to_json(self) -> dict:
        return {"passed": self.passed, "total": self.total, "rate": round(self.rate, 4),
                "low": round(self.low, 4), "high": round(self.high, 4), "confidence": self.confidence}


def wilson_interval(passed: int, total: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval for `passed` out of `total` (0..1 for an empty sample)."""
    if not 0 <= passed <= total:
        raise ValueError(f"passed must be within 0..total, got {passed}/{total}")
    if total == 0:
        return Interval(0, 0, 0.0, 1.0, confidence)
    from scipy.stats import binomtest

    ci = binomtest(passed, total).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(passed, total, float(ci.low), float(ci.high), confidence)


@dataclass(frozen=True)
class McNemar:
    """The exact McNemar test on paired pass/fail outcomes (candidate vs baseline)."""

    both_passed: int
    """Queries both models passed."""
    both_failed: int
    """Queries both models failed."""
    only_candidate: int
    """Queries only the candidate passed."""
    only_baseline: int
    """Queries only the baseline passed."""
    p_two_sided: float
    """Exact two-sided p: is either model better?"""
    p_candidate_worse: float
    """Exact one-sided p for 'the candidate is worse than the baseline'."""

    @property
    def discordant(self) -> int:
        return self.only_candidate + self.only_baseline

    def to_json(self) -> dict:
        return {"both_passed": self.both_passed, "both_failed": self.both_failed,
                "only_candidate": self.only_candidate, "only_baseline": self.only_baseline,
                "discordant": self.discordant, "p_two_sided": self.p_two_sided,
                "p_candidate_worse": self.p_candidate_worse}


def mcnemar_exact(candidate: Sequence[bool], baseline: Sequence[bool]) -> McNemar:
    """Paired outcomes in, the exact (binomial) McNemar test out. 0 discordant pairs: p = 1."""
    if len(candidate) != len(baseline):
        raise ValueError(f"paired outcomes differ in length: {len(candidate)} vs {len(baseline)}")
    pairs = list(zip(map(bool, candidate), map(bool, baseline)))
    only_c = sum(c and not b for c, b in pairs)
    only_b = sum(b and not c for c, b in pairs)
    n = only_c + only_b
    if n == 0:
        p_two, p_worse = 1.0, 1.0
    else:
        from scipy.stats import binomtest

        p_two = float(binomtest(only_b, n, 0.5).pvalue)
        p_worse = float(binomtest(only_b, n, 0.5, alternative="greater").pvalue)
    return McNemar(
        both_passed=sum(c and b for c, b in pairs),
        both_failed=sum(not c and not b for c, b in pairs),
        only_candidate=only_c,
        only_baseline=only_b,
        p_two_sided=p_two,
        p_candidate_worse=p_worse,
    )
