"""Small-sample statistics for pass rates: Wilson intervals and the exact McNemar test.

40 queries is a small sample (34/40 has a 95% interval of about 71-93%), so every
pass rate the suite reports carries its interval, and candidate vs baseline is
decided on the queries where the two disagree. Both come from scipy. One pairing
(`Paired`: both models' intervals and the test) serves every comparison: the first
turn, the multi-turn pass, the held-out measure and `punie-gates compare`.
A bottom-layer module: it imports nothing of the package.
"""

from __future__ import annotations

import functools
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
        return {
            "passed": self.passed,
            "total": self.total,
            "rate": round(self.rate, 4),
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "confidence": self.confidence,
        }


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
    p_baseline_worse: float = 1.0
    """Exact one-sided p the other way: 'the baseline is worse than the candidate'."""

    @property
    def discordant(self) -> int:
        return self.only_candidate + self.only_baseline

    def to_json(self) -> dict:
        return {
            "both_passed": self.both_passed,
            "both_failed": self.both_failed,
            "only_candidate": self.only_candidate,
            "only_baseline": self.only_baseline,
            "discordant": self.discordant,
            "p_two_sided": self.p_two_sided,
            "p_candidate_worse": self.p_candidate_worse,
            "p_baseline_worse": self.p_baseline_worse,
        }


def mcnemar_exact(candidate: Sequence[bool], baseline: Sequence[bool]) -> McNemar:
    """Paired outcomes in, the exact (binomial) McNemar test out. 0 discordant pairs: p = 1."""
    if len(candidate) != len(baseline):
        raise ValueError(f"paired outcomes differ in length: {len(candidate)} vs {len(baseline)}")
    pairs = list(zip(map(bool, candidate), map(bool, baseline)))
    only_c = sum(c and not b for c, b in pairs)
    only_b = sum(b and not c for c, b in pairs)
    n = only_c + only_b
    if n == 0:
        p_two, p_worse, p_better = 1.0, 1.0, 1.0
    else:
        from scipy.stats import binomtest

        p_two = float(binomtest(only_b, n, 0.5).pvalue)
        p_worse = float(binomtest(only_b, n, 0.5, alternative="greater").pvalue)
        p_better = float(binomtest(only_c, n, 0.5, alternative="greater").pvalue)
    return McNemar(
        both_passed=sum(c and b for c, b in pairs),
        both_failed=sum(not c and not b for c, b in pairs),
        only_candidate=only_c,
        only_baseline=only_b,
        p_two_sided=p_two,
        p_candidate_worse=p_worse,
        p_baseline_worse=p_better,
    )


@dataclass(frozen=True)
class Paired:
    """Two models on the same items: each one's pass rate with its interval, and the paired test."""

    candidate: Interval
    """The candidate's (or run A's) passes with their Wilson interval."""
    baseline: Interval
    """The baseline's (or run B's) passes with their Wilson interval."""
    mcnemar: McNemar
    """The exact McNemar test on the paired outcomes."""

    def to_json(self) -> dict:
        """In the report's keys: `interval`, `baseline_interval`, `mcnemar`."""
        return {
            "interval": self.candidate.to_json(),
            "baseline_interval": self.baseline.to_json(),
            "mcnemar": self.mcnemar.to_json(),
        }


def paired(candidate: Sequence[bool], baseline: Sequence[bool], confidence: float = 0.95) -> Paired:
    """Paired pass/fail outcomes in (same items, same order), both intervals and the test out."""
    mcnemar = mcnemar_exact(candidate, baseline)
    return Paired(
        wilson_interval(sum(map(bool, candidate)), len(candidate), confidence),
        wilson_interval(sum(map(bool, baseline)), len(baseline), confidence),
        mcnemar,
    )


# --- a count criterion against its interval ---------------------------------------------------

DECIDED = "by the data"
UNDECIDED = "inside the interval"


@dataclass(frozen=True)
class AgainstThreshold:
    """A count criterion ("at least `minimum` of `total` pass") and what the interval says of it.

    The threshold is the rate `minimum / total`. When it lies inside the pass rate's interval
    (ends included) the sample cannot tell on which side of the threshold the true rate is:
    the criterion was met or missed, but decided "inside the interval", by which queries
    were written as much as by the model. This never changes whether it was met.
    """

    interval: Interval
    """The pass rate with its Wilson interval."""
    minimum: int
    """Passes the criterion requires."""

    @property
    def met(self) -> bool:
        return self.interval.passed >= self.minimum

    @property
    def threshold(self) -> float:
        """The criterion as a rate (a minimum of every item: 1.0)."""
        return self.minimum / self.interval.total if self.interval.total else 1.0

    @property
    def inside(self) -> bool:
        """Whether the threshold lies inside the interval (a minimum of 0 is met by any count: decided)."""
        return self.minimum > 0 and self.interval.low <= self.threshold <= self.interval.high

    def note(self, unit: str = "queries") -> str | None:
        """One line when decided inside the interval ("40 queries cannot tell whether the rate
        is above 85%; interval 71-93%"), else None."""
        if not self.inside:
            return None
        iv = self.interval
        rate = "is 100%" if self.threshold >= 1 else f"is above {_pct(self.threshold)}"
        return f"{iv.total} {unit} cannot tell whether the rate {rate}; interval {100 * iv.low:.0f}-{_pct(iv.high)}"

    def to_json(self, unit: str = "queries") -> dict:
        return {
            "passed": self.interval.passed,
            "total": self.interval.total,
            "min": self.minimum,
            "threshold": round(self.threshold, 4),
            "interval": self.interval.to_json(),
            "met": self.met,
            "decided": UNDECIDED if self.inside else DECIDED,
            "note": self.note(unit),
        }


def _pct(rate: float) -> str:
    return f"{100 * rate:.0f}%"


def against_threshold(passed: int, total: int, minimum: int, confidence: float = 0.95) -> AgainstThreshold:
    """`passed` of `total` against a minimum of `minimum`, with the pass rate's Wilson interval."""
    return AgainstThreshold(wilson_interval(passed, total, confidence), minimum)


# --- what a paired comparison can detect --------------------------------------------------------

POWER = 0.8


@functools.lru_cache(maxsize=32)
def _rejects(pairs: int, alpha: float):
    """For d = 0..pairs discordant pairs: the fewest 'only the baseline passed' that make the exact
    one-sided McNemar test reject at `alpha` (d + 1 where none does)."""
    import numpy as np
    from scipy.stats import binom

    need = np.empty(pairs + 1, dtype=int)
    for d in range(pairs + 1):
        k = np.arange(d + 2)
        ok = binom.sf(k - 1, d, 0.5) <= alpha  # p of seeing k or more one-way pairs by chance
        need[d] = int(k[np.argmax(ok)]) if ok.any() else d + 1
    return need


def mcnemar_power(pairs: int, difference: float, discordance: float, alpha: float) -> float:
    """Power of the exact one-sided McNemar test ("the candidate is worse", at `alpha`) on `pairs`
    paired items when the baseline's pass rate is `difference` above the candidate's and a share
    `discordance` (>= difference) of items is passed by one model only."""
    import numpy as np
    from scipy.stats import binom

    if not 0 <= difference <= discordance <= 1:
        raise ValueError(f"need 0 <= difference <= discordance <= 1, got {difference}, {discordance}")
    if discordance == 0:
        return 0.0
    d = np.arange(pairs + 1)
    one_way = (discordance + difference) / (2 * discordance)  # share of discordant pairs only the baseline passed
    reject = binom.sf(_rejects(pairs, alpha) - 1, d, one_way)
    return float(np.sum(binom.pmf(d, pairs, discordance) * reject))


@dataclass(frozen=True)
class Detectable:
    """The smallest difference in pass rate the paired test could see on this many items."""

    pairs: int
    """Paired items (queries or turns)."""
    alpha: float
    """One-sided significance level of the exact McNemar test."""
    power: float
    """The chance of seeing the difference that is asked for (0.8)."""
    observed_discordance: float
    """Share of items only one model passed, as observed."""
    difference: float | None
    """The smallest detectable difference in pass rate (0..1); None: none within reach."""
    assumed: str
    """What was assumed about the discordance, in words."""

    def sentence(self, unit: str = "queries") -> str:
        if self.difference is None:
            return (
                f"no difference in pass rate could be seen with {self.pairs} {unit} at alpha {self.alpha:g} "
                f"and {self.power:.0%} power ({self.assumed})"
            )
        return (
            f"a difference smaller than {100 * self.difference:.0f} points could not be seen with "
            f"{self.pairs} {unit} ({self.power:.0%} power, exact McNemar one-sided at alpha {self.alpha:g}; "
            f"{self.assumed})"
        )

    def to_json(self, unit: str = "queries") -> dict:
        return {
            "pairs": self.pairs,
            "alpha": self.alpha,
            "power": self.power,
            "observed_discordance": round(self.observed_discordance, 4),
            "difference": None if self.difference is None else round(self.difference, 4),
            "assumed": self.assumed,
            "sentence": self.sentence(unit),
        }


def detectable_difference(mcnemar: McNemar, alpha: float, power: float = POWER) -> Detectable:
    """The smallest baseline-minus-candidate difference the exact one-sided McNemar test on as many
    pairs as `mcnemar` counts would detect with `power` at `alpha`.

    The discordance (share of items only one model passes) is taken as observed; a difference
    larger than it needs at least that many discordant items, so the assumed discordance is
    max(observed, difference). With no discordant pair observed that is the most favourable case
    (every discordant item one way): the figure is then a lower bound.
    """
    pairs = mcnemar.both_passed + mcnemar.both_failed + mcnemar.discordant
    observed = mcnemar.discordant / pairs if pairs else 0.0
    assumed = (
        f"discordance as observed, {mcnemar.discordant}/{pairs}, or the difference itself where larger"
        if mcnemar.discordant
        else "no discordant pair observed: assumed every discordant item goes one way (a lower bound)"
    )

    def power_at(diff: float) -> float:
        return mcnemar_power(pairs, diff, max(observed, diff), alpha)

    if pairs == 0 or power_at(1.0) < power:
        return Detectable(pairs, alpha, power, observed, None, assumed)
    low, high = 0.0, 1.0  # power grows with the difference: bisect to a tenth of a point
    while high - low > 1e-3:
        mid = (low + high) / 2
        low, high = (mid, high) if power_at(mid) < power else (low, mid)
    return Detectable(pairs, alpha, power, observed, high, assumed)
