"""Wilson intervals and the exact McNemar test against known cases, and Gate 5's criterion on them."""

from __future__ import annotations

import math

import pytest

from punie_gates.checks.comparison import compare_with_baseline, comparison_figures, interval_figures
from punie_gates.checks.scoring import Score
from punie_gates.inputs.queries import Query
from punie_gates.stats import mcnemar_exact, wilson_interval


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The textbook formula, to check the library's answer."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(34, 40), (0, 40), (40, 40), (29, 40), (3, 5), (0, 5)])
def test_wilson_matches_the_formula(k, n):
    iv = wilson_interval(k, n)
    low, high = _wilson(k, n)
    assert (iv.low, iv.high) == (pytest.approx(max(low, 0.0), abs=1e-9), pytest.approx(min(high, 1.0), abs=1e-9))
    assert iv.low <= k / n <= iv.high


def test_34_of_40_is_about_71_to_93_percent():
    iv = wilson_interval(34, 40)
    assert round(iv.low, 2) == 0.71 and round(iv.high, 2) == 0.93


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(5, 4)
    assert wilson_interval(0, 0).to_json()["high"] == 1.0  # an empty sample says nothing


def test_no_discordant_pair_gives_p_1():
    m = mcnemar_exact([True] * 30 + [False] * 10, [True] * 30 + [False] * 10)
    assert (m.discordant, m.p_two_sided, m.p_candidate_worse) == (0, 1.0, 1.0)
    assert (m.both_passed, m.both_failed) == (30, 10)


def test_ten_discordant_pairs_all_one_way():
    candidate = [False] * 10 + [True] * 30
    baseline = [True] * 40
    m = mcnemar_exact(candidate, baseline)
    assert (m.only_candidate, m.only_baseline) == (0, 10)
    assert m.p_candidate_worse == pytest.approx(2**-10)
    assert m.p_two_sided == pytest.approx(2**-9)
    # the other way round the candidate is not worse at all
    assert mcnemar_exact(baseline, candidate).p_candidate_worse == pytest.approx(1.0)


def test_paired_outcomes_must_pair():
    with pytest.raises(ValueError, match="length"):
        mcnemar_exact([True], [True, False])


# --- Gate 5's criterion -----------------------------------------------------------------


def _queries(n: int) -> list[Query]:
    cats = ("direct_answers", "cross_tool")
    return [Query(id=f"{cats[i % 2]}-{i:02d}", category=cats[i % 2], text="q", expect="tool") for i in range(n)]


def _scores(queries, passed) -> dict[str, Score]:
    return {q.id: Score(q.id, p, (), (), "PASS" if p else "FAIL", ()) for q, p in zip(queries, passed)}


def test_significantly_worse_fails_and_fewer_is_flagged():
    qs = _queries(40)
    base = _scores(qs, [True] * 40)
    worse = compare_with_baseline(qs, _scores(qs, [False] * 10 + [True] * 30), base, alpha=0.05)
    assert worse.significantly_worse and worse.problem and worse.flag is None
    assert "only the baseline 10" in worse.problem and "0.000977" in worse.problem

    slightly = compare_with_baseline(qs, _scores(qs, [False] * 2 + [True] * 38), base, alpha=0.05)
    assert slightly.problem is None and "not significantly" in slightly.flag  # p = 0.25

    equal = compare_with_baseline(qs, base, base, alpha=0.05)
    assert equal.problem is None and equal.flag is None and equal.outcome() == "not worse than the baseline"

    recorded = compare_with_baseline(qs, _scores(qs, [False] * 10 + [True] * 30), base, alpha=None)
    assert recorded.problem is None and recorded.flag is None and recorded.outcome().startswith("recorded")


def test_comparison_figures_use_the_reports_keys():
    qs = _queries(10)
    mine, theirs = _scores(qs, [True, False] * 5), _scores(qs, [True] * 10)
    figures = comparison_figures(qs, mine, theirs, compare_with_baseline(qs, mine, theirs, 0.05))
    assert figures["interval"]["passed"] == 5 and figures["baseline_interval"]["passed"] == 10
    assert figures["mcnemar"]["only_baseline"] == 5 and figures["mcnemar"]["p_two_sided"] == pytest.approx(2**-4)
    for name, entry in figures["categories"].items():
        assert {"interval", "baseline_interval", "mcnemar", "baseline_correct"} <= set(entry), name
    assert figures["comparison"]["made"] and figures["comparison"]["alpha"] == 0.05
    assert interval_figures(qs, mine)["categories"]["direct_answers"]["interval"]["passed"] == 5


# --- a count criterion against its interval --------------------------------------------------

from punie_gates.stats import against_threshold, detectable_difference, mcnemar_power  # noqa: E402


def test_34_of_40_passes_with_a_note_naming_its_interval():
    c = against_threshold(34, 40, 34)
    assert c.met and c.inside
    assert c.note() == "40 queries cannot tell whether the rate is above 85%; interval 71-93%"
    assert c.to_json()["decided"] == "inside the interval"


@pytest.mark.parametrize("passed,met", [(40, True), (20, False)])
def test_40_and_20_of_40_are_decided_by_the_data(passed, met):
    # 40/40: the interval (91-100%) lies above 85%; 20/40: it (35-65%) lies below.
    c = against_threshold(passed, 40, 34)
    assert c.met is met and not c.inside and c.note() is None
    assert c.to_json()["decided"] == "by the data"


def test_small_categories_are_rarely_decided():
    # 5 queries: 5/5 cannot show a rate of 80% (interval 57-100%), nor 100%; one miss shows
    # the rate is below 100%; a minimum of 0 is met by any count.
    assert against_threshold(5, 5, 4).inside and against_threshold(5, 5, 5).inside
    assert "is 100%" in against_threshold(5, 5, 5).note()
    assert not against_threshold(4, 5, 5).inside and not against_threshold(4, 5, 5).met
    assert not against_threshold(0, 5, 0).inside


# --- what the paired test can detect, checked by simulation ----------------------------------


def _simulated_power(pairs, difference, discordance, alpha, trials, seed):
    """Draw `trials` paired samples and count how often mcnemar_exact's one-sided p <= alpha."""
    import numpy as np

    rng = np.random.default_rng(seed)
    only_b, only_c = (discordance + difference) / 2, (discordance - difference) / 2
    draws = rng.multinomial(pairs, [only_b, only_c, 1 - discordance], size=trials)
    hits = 0
    for b, c, rest in draws:
        m = mcnemar_exact([False] * b + [True] * c + [True] * rest, [True] * b + [False] * c + [True] * rest)
        hits += m.p_candidate_worse <= alpha
    return hits / trials


@pytest.mark.parametrize("difference,discordance", [(0.15, 0.2), (0.1, 0.1)])
def test_power_matches_a_simulation(difference, discordance):
    exact = mcnemar_power(40, difference, discordance, 0.05)
    simulated = _simulated_power(40, difference, discordance, 0.05, trials=1500, seed=22)
    assert simulated == pytest.approx(exact, abs=0.04)  # 3 standard errors of 1500 draws


def test_the_detectable_difference_is_seen_80_percent_of_the_time():
    base = [True] * 34 + [False] * 6
    cand = [True] * 31 + [False] * 3 + [True] * 3 + [False] * 3  # 3 + 3 discordant
    d = detectable_difference(mcnemar_exact(cand, base), alpha=0.05)
    assert d.pairs == 40 and d.observed_discordance == pytest.approx(6 / 40)
    assert 0.1 < d.difference < 0.3
    at = _simulated_power(40, d.difference, max(d.observed_discordance, d.difference), 0.05, 1500, seed=5)
    below = _simulated_power(40, d.difference - 0.06, max(d.observed_discordance, d.difference - 0.06), 0.05, 1500, 6)
    assert at == pytest.approx(0.8, abs=0.04) and below < 0.7
    assert "could not be seen with 40 queries" in d.sentence()


def test_no_discordance_assumes_every_discordant_item_one_way():
    same = [True] * 38 + [False] * 2
    d = detectable_difference(mcnemar_exact(same, same), alpha=0.05)
    assert "lower bound" in d.assumed and d.difference == pytest.approx(0.16, abs=0.01)
    assert detectable_difference(mcnemar_exact([True] * 3, [True] * 3), alpha=0.05).difference is None
