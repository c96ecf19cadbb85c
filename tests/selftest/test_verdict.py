"""The decision matrix, over every combination of gate outcomes it names."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from punie_gates.decision.verdict import STATUSES, GateResult, decide
from punie_gates.inputs.gates import builtin_gates

GATE_ORDER = builtin_gates().ids
KINDS = {g.id: g.kind for g in builtin_gates()}


def test_the_registry_holds_the_seed_decision_matrix():
    assert KINDS == {
        "gate0": "hard",
        "gate1": "hard",
        "gate2": "soft",
        "gate3": "caution",
        "gate4": "hard",
        "gate5": "hard",
    }


def results(**statuses):
    return {g: GateResult(g, statuses.get(g, "passed"), KINDS[g], reasons=(f"{g} reason",)) for g in GATE_ORDER}


def test_all_passed_is_go():
    v = decide(results())
    assert (v.verdict, v.stopped_at, v.passes) == ("GO", None, True)


@pytest.mark.parametrize("gate", ["gate0", "gate1", "gate4", "gate5"])
@pytest.mark.parametrize("status", ["failed", "error"])
def test_a_hard_gate_that_fails_or_errors_stops_the_evaluation(gate, status):
    v = decide(results(**{gate: status}))
    assert (v.verdict, v.stopped_at, v.passes) == ("NO_GO", gate, False)
    assert gate in v.reasons[0]


@pytest.mark.parametrize("gate,label", [("gate2", "soft gate failed"), ("gate3", "caution")])
def test_soft_and_caution_failures_flag_and_continue(gate, label):
    v = decide(results(**{gate: "failed"}))
    assert (v.verdict, v.stopped_at, v.passes) == ("GO_WITH_FLAGS", None, True)
    assert v.flags == (f"{gate} {label}: {gate} reason",)


def test_both_flags_are_kept():
    v = decide(results(gate2="failed", gate3="failed"))
    assert v.verdict == "GO_WITH_FLAGS" and len(v.flags) == 2


def test_a_flag_does_not_hide_a_later_hard_failure():
    v = decide(results(gate2="failed", gate4="failed"))
    assert (v.verdict, v.stopped_at) == ("NO_GO", "gate4")
    assert v.flags and "gate2" in v.flags[0]


def test_the_first_hard_failure_is_where_it_stopped():
    v = decide(results(gate1="failed", gate4="failed", gate5="error"))
    assert v.stopped_at == "gate1"


@pytest.mark.parametrize("gate", GATE_ORDER)
@pytest.mark.parametrize("status", ["skipped", "not_run"])
def test_a_gate_that_did_not_run_is_never_passed(gate, status):
    v = decide(results(**{gate: status}))
    assert v.verdict == "NO_GO" and not v.passes
    assert gate in v.reasons[0] and "never GO" in v.reasons[0]


def test_an_absent_gate_is_never_passed():
    partial = {g: r for g, r in results().items() if g != "gate3"}
    v = decide(partial)
    assert v.verdict == "NO_GO" and "gate3 not run" in v.reasons[0]


@pytest.mark.parametrize("gate", ["gate2", "gate3"])
def test_an_errored_soft_gate_measured_nothing(gate):
    v = decide(results(**{gate: "error"}))
    assert v.verdict == "NO_GO" and v.stopped_at is None


def test_partial_run_that_passed_is_incomplete_not_go():
    only0 = {"gate0": GateResult("gate0", "passed", "hard")}
    v = decide(only0, complete=False)
    assert (v.verdict, v.passes) == ("INCOMPLETE", False)
    assert "gate1 not run" in v.reasons[0]


def test_partial_run_with_a_hard_failure_is_no_go():
    only0 = {"gate0": GateResult("gate0", "failed", "hard", reasons=("[ARGS] splits",))}
    v = decide(only0, complete=False)
    assert (v.verdict, v.stopped_at) == ("NO_GO", "gate0")


def test_unknown_gate_or_status_is_refused():
    with pytest.raises(ValueError):
        decide({"gate9": GateResult("gate0", "passed", "hard")})
    with pytest.raises(ValueError):
        GateResult("gate0", "ok", "hard")


@given(st.tuples(*[st.sampled_from(STATUSES) for _ in GATE_ORDER]), st.booleans())
def test_matrix_properties(statuses, complete):
    rs = {g: GateResult(g, s, KINDS[g]) for g, s in zip(GATE_ORDER, statuses)}
    v = decide(rs, complete=complete)
    by_gate = dict(zip(GATE_ORDER, statuses))
    hard_bad = [g for g in GATE_ORDER if KINDS[g] == "hard" and by_gate[g] in ("failed", "error")]
    assert (v.verdict == "GO") == all(s == "passed" for s in statuses)
    if v.passes:  # exit status 0 only with every gate run and every hard gate passed
        assert not hard_bad and all(s in ("passed", "failed") for s in statuses)
    assert v.stopped_at == (hard_bad[0] if hard_bad else None)
    if hard_bad:
        assert v.verdict == "NO_GO"


def test_every_combination_is_decided():
    for statuses in itertools.product(STATUSES, repeat=len(GATE_ORDER)):
        rs = {g: GateResult(g, s, KINDS[g]) for g, s in zip(GATE_ORDER, statuses)}
        assert decide(rs).verdict in ("GO", "GO_WITH_FLAGS", "NO_GO")


def test_a_passed_gate_can_carry_a_flag():
    rs = results()
    rs["gate5"] = GateResult("gate5", "passed", "hard", flags=("3.1x slower than the baseline",))
    v = decide(rs)
    assert (v.verdict, v.flags) == ("GO_WITH_FLAGS", ("gate5: 3.1x slower than the baseline",))
