"""The typed results (punie_gates.results): every figures class survives JSON and back, a value
of the wrong type names where it is, unknown keys are left out, and the recorder's check
refuses a figure its gate does not have."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from punie_gates.errors import UserError
from punie_gates.results.codec import ResultsError, field_hints, from_json, to_json
from punie_gates.results.document import FIGURES_BY_GATE, RunResults, check_figure, read_results
from punie_gates.results.shared import WilsonInterval

_JSON_LEAVES = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8)


def strategy(hint: Any, depth: int = 0) -> st.SearchStrategy:
    """Values of `hint` as the codec reads them (tuples for sequences, dicts for mappings)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return _JSON_LEAVES
    if origin is Union or origin is types.UnionType:
        return st.one_of(*(strategy(a, depth) for a in args))
    if origin is Literal:
        return st.sampled_from(args)
    if hint is type(None):
        return st.none()
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if depth > 3:
            return st.builds(hint)  # every field None: the recursion ends
        hints = field_hints(hint)
        return st.fixed_dictionaries({}, optional={k: strategy(h, depth + 1) for k, h in hints.items()}).map(
            lambda kw: hint(**kw)
        )
    if origin in (tuple, Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return st.tuples(*(strategy(a, depth) for a in args))
        return st.lists(strategy(args[0], depth + 1), max_size=2).map(tuple)
    if origin in (dict, Mapping):
        return st.dictionaries(st.text(max_size=5), strategy(args[1], depth + 1), max_size=2)
    return {
        bool: st.booleans(),
        int: st.integers(-(10**6), 10**6),
        float: st.floats(allow_nan=False, allow_infinity=False),
        str: st.text(max_size=10),
    }[hint]


@pytest.mark.parametrize("cls", [*FIGURES_BY_GATE.values(), RunResults], ids=lambda c: c.__name__)
def test_every_figures_class_survives_json_and_back(cls):
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(strategy(cls))
    def round_trip(value):
        text = json.dumps(to_json(value))
        assert from_json(cls, json.loads(text), "figures") == value

    round_trip()


def test_a_report_reads_back_typed_per_gate():
    doc = {
        "verdict": "NO_GO",
        "gates": {
            "gate5": {"status": "failed", "figures": {"correct": 30, "total": 40, "interval": {"passed": 30}}},
            "gate0": {"figures": {"parity": "not made: no reference"}},
        },
    }
    results = read_results(doc)
    assert results.verdict == "NO_GO"
    assert results.gates["gate5"].figures.correct == 30
    assert results.gates["gate5"].figures.interval == WilsonInterval(passed=30)
    assert results.gates["gate0"].figures.parity == "not made: no reference"


def test_a_wrong_value_names_its_path():
    with pytest.raises(ResultsError) as caught:
        read_results({"gates": {"gate5": {"figures": {"correct": "x"}}}})
    assert str(caught.value) == 'gates.gate5.figures.correct: expected an int, found "x"'
    assert isinstance(caught.value, UserError)


@pytest.mark.parametrize(
    ("figures", "where"),
    [
        ({"correct": True}, "gates.gate5.figures.correct: expected an int, found true"),
        ({"queries": [{"id": "a"}, {"id": 3}]}, "gates.gate5.figures.queries[1].id: expected a string, found 3"),
        ({"categories": {"direct": {"interval": []}}}, "gates.gate5.figures.categories.direct.interval: expected an"),
        ({"speed": 3}, "gates.gate5.figures.speed: expected a string or an object (Speed), found 3"),
    ],
)
def test_nested_wrong_values_name_their_path(figures, where):
    with pytest.raises(ResultsError, match=f"^{__import__('re').escape(where)}"):
        read_results({"gates": {"gate5": {"figures": figures}}})


def test_unknown_keys_are_left_out_and_listed():
    unknown: list[str] = []
    doc = {"newer": 1, "gates": {"gate2": {"figures": {"avg_latency_s": 1, "per_query": [{"id": "q", "x": 2}]}}}}
    results = read_results(doc, unknown)
    assert results.gates["gate2"].figures.avg_latency_s == 1.0
    assert unknown == ["newer", "gates.gate2.figures.per_query[0].x"]
    assert read_results({"gates": {"gate9": {"figures": {"steps": [], "what": 1}}}}).gates["gate9"].figures.steps == ()


def test_the_recorder_check_refuses_an_unknown_figure_naming_it():
    with pytest.raises(ResultsError, match=r"test_x records 'corect', which gate5's figures .* do not have"):
        check_figure("gate5", "corect", 3, "test_x")
    with pytest.raises(ResultsError, match=r"^test_x: gates.gate5.figures.total: expected an int, found \"3\""):
        check_figure("gate5", "total", "3", "test_x")
    assert check_figure("gate5", "interval", WilsonInterval(passed=1, total=2), "test_x") == {"passed": 1, "total": 2}
    assert check_figure("gate2", "queries", ("a", "b"), "test_x") == ["a", "b"]


def test_a_lenient_read_leaves_a_wrong_value_out_and_says_where():
    problems: list[str] = []
    doc = {"verdict": 3, "gates": {"gate5": {"figures": {"correct": "x", "total": 40}}, "gate4": {"figures": []}}}
    results = read_results(doc, problems=problems)
    assert results.verdict is None and results.gates["gate5"].figures.total == 40
    assert results.gates["gate5"].figures.correct is None and results.gates["gate4"].figures is None
    assert problems == [
        "verdict: expected a string, found 3",
        'gates.gate5.figures.correct: expected an int, found "x"',
        "gates.gate4.figures: expected an object (Gate4Figures), found []",
    ]


def test_every_key_of_the_report_has_a_docstring():
    from punie_gates.results.reference import documented_classes, missing_docstrings

    assert not missing_docstrings(), "give these a docstring in punie_gates/results/: " + ", ".join(
        missing_docstrings()
    )
    assert set(FIGURES_BY_GATE.values()) <= set(documented_classes())


def test_the_recorder_keeps_a_wrong_detail_and_says_where():
    problems: list[str] = []
    rows = [{"id": "a", "passed": "yes"}]
    assert check_figure("gate5", "queries", rows, "test_x", problems) == rows
    assert problems == ['gates.gate5.figures.queries[0].passed: expected true or false, found "yes"']
    with pytest.raises(ResultsError, match="queries: expected a list"):
        check_figure("gate5", "queries", {"id": "a"}, "test_x", problems)
