"""The pytest plugin: options, markers, shared fixtures, gate ordering and the verdict.

Loaded by the checkout's conftest.py (or `-p punie_gates.plugin`). It stays inert
in runs that collect no gate tests, such as the self-tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from punie_gates import config as gate_options
from punie_gates.verdict import GATE_ORDER, GateResult, decide

pytest_plugins = ["punie_gates.candidate_fixtures"]

MARKERS = {
    "gate0": "Gate 0: the tokenizer's tool markers are single control tokens (hard)",
    "gate1": "Gate 1: the model loads in MLX, fits the memory budget and writes code (hard)",
    "gate2": "Gate 2: generation latency against Punie's 2.90 s (soft: flag, continue)",
    "gate3": "Gate 3: zero-shot tool calling (caution: flag, continue)",
    "gate4": "Gate 4: small LoRA, fused to 5 bits, >= 6/10 (hard)",
    "gate5": "Gate 5: full training, 40 validation queries, per-category minimums (hard)",
    "gate_decision": "the test that decides its gate from the gate's other tests (last in its module)",
    "gate_detail": "a per-query test whose own failure does not fail the gate (an aggregate test decides)",
}
_STASH = pytest.StashKey["GateBook"]()


@dataclass
class ItemInfo:
    gate: str
    decision: bool
    detail: bool
    outcome: str = "not_run"  # passed | failed | skipped | error | not_run
    message: str = ""
    seconds: float = 0.0


@dataclass
class GateBook:
    """What this session learned about each gate: its tests, outcomes and figures."""

    items: dict[str, ItemInfo] = field(default_factory=dict)  # nodeid -> info, in run order
    deselected: set[str] = field(default_factory=set)  # gates with a deselected test
    figures: dict[str, dict[str, Any]] = field(default_factory=lambda: {g: {} for g in GATE_ORDER})
    collection_errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    verdict: Any = None
    results: dict[str, GateResult] = field(default_factory=dict)
    report_paths: tuple[Path, ...] = ()
    candidate: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.items or self.deselected or self.collection_errors)


def _gate_of(item) -> str | None:
    for gate in GATE_ORDER:
        if item.get_closest_marker(gate) is not None:
            return gate
    return None


# -- hooks -------------------------------------------------------------------


def pytest_addoption(parser):
    gate_options.add_options(parser)


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    session = GateSession(config)
    config.stash[_STASH] = session.book
    config.pluginmanager.register(session, "punie-gates-session")
    if config.pluginmanager.hasplugin("html"):  # pytest-html is installed: the verdict goes on its page too
        config.pluginmanager.register(_HtmlSummary(session.book), "punie-gates-html")


def _gate_config(config) -> gate_options.GateConfig:
    cached = getattr(config, "_punie_gate_config", None)
    if cached is None:
        cached = gate_options.from_pytest(config)
        config._punie_gate_config = cached
    return cached


def _thresholds(config) -> dict:
    try:
        return dict(_gate_config(config).thresholds)
    except ValueError:  # the gate_config fixture reports a broken file to the user
        return {}


class GateSession:
    """Per-run hooks: which tests belong to which gate, their outcomes, the verdict."""

    def __init__(self, config):
        self.config = config
        self.book = GateBook()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        if not any(_gate_of(item) for item in items):
            return
        try:  # a broken option or thresholds file stops the run before any gate runs
            thresholds = dict(_gate_config(config).thresholds)
        except ValueError as exc:
            self.book.collection_errors.append(str(exc))
            raise pytest.UsageError(str(exc)) from None
        run_all = bool(config.getoption("punie_run_all_gates"))
        for item in items:
            gate = _gate_of(item)
            if gate is None:
                continue
            decision = item.get_closest_marker("gate_decision") is not None
            detail = item.get_closest_marker("gate_detail") is not None
            self.book.items[item.nodeid] = ItemInfo(gate, decision, detail)
            prereq = None if run_all else thresholds.get(gate, {}).get("depends")
            # pytest-dependency orders the gates: every test of a gate needs the
            # prerequisite gate's decision test to have passed; the decision test
            # carries the gate's name for the next gate to depend on.
            kwargs: dict[str, Any] = {"scope": "session"}
            if prereq:
                kwargs["depends"] = [prereq]
            if decision:
                kwargs["name"] = gate
            if len(kwargs) > 1:
                item.add_marker(pytest.mark.dependency(**kwargs))

    def pytest_deselected(self, items):
        for item in items:
            gate = _gate_of(item)
            if gate is not None:
                self.book.deselected.add(gate)

    def pytest_collectreport(self, report):
        if report.failed and "gates" in Path(str(report.fspath)).parts:
            last = report.longreprtext.strip().splitlines()[-1] if report.longreprtext else "collection error"
            self.book.collection_errors.append(f"{report.nodeid}: {last}")

    def pytest_runtest_logreport(self, report):
        info = self.book.items.get(report.nodeid)
        if info is None:
            return
        info.seconds += report.duration
        if report.when == "call":
            info.outcome = report.outcome
        elif report.failed:  # setup or teardown
            info.outcome = "error"
        elif report.skipped:
            info.outcome = "skipped"
        if report.failed or report.skipped:
            info.message = _message(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        book = self.book
        if not book.active:
            return
        from punie_gates import report

        book.results = _results(self.config, book)
        book.verdict = decide(book.results, complete=not _partial(self.config))
        try:
            cfg = _gate_config(self.config)
        except ValueError as exc:  # a broken option or thresholds file: never GO
            cfg = None
            book.verdict = decide({}, complete=True)
            book.collection_errors.append(str(exc))
        book.candidate = cfg.candidate if cfg else None
        report_dir = cfg.report_dir if cfg else Path(self.config.invocation_params.dir) / "reports"
        book.report_paths = report.write_reports(report_dir, book, cfg)
        if book.verdict.verdict == "INCOMPLETE":
            return  # a partial run keeps pytest's own exit status
        if book.verdict.passes:
            if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
                session.exitstatus = pytest.ExitCode.OK
        elif exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        if not self.book.active or self.book.verdict is None:
            return
        from punie_gates import report

        for line in report.terminal_lines(self.book):
            terminalreporter.write_line(line)


class _HtmlSummary:
    """pytest-html's summary hook, registered only when pytest-html is loaded (never a dependency)."""

    def __init__(self, book: GateBook):
        self.book = book

    def pytest_html_results_summary(self, prefix, summary, postfix, session):
        if not self.book.report_paths:  # no gate ran: nothing to add
            return
        import json

        from punie_gates.decision.html import verdict_fragment

        json_path, *others = self.book.report_paths
        doc = json.loads(Path(json_path).read_text(encoding="utf-8"))
        prefix.append(verdict_fragment(doc, next((p for p in others if Path(p).suffix == ".html"), None)))


def _message(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.strip()
    return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else ""


def _partial(config) -> bool:
    """Whether the user picked a subset of the gates (then no go/no-go is given)."""
    opt = config.option
    if getattr(opt, "markexpr", "") or getattr(opt, "keyword", ""):
        return True
    return any("::" in arg or Path(arg).is_file() for arg in config.args)


def _status(infos: list[ItemInfo]) -> str:
    decisions = [i for i in infos if i.decision]
    if decisions:
        # A check that errored measured nothing: the gate errored, whatever the decision says.
        if any(i.outcome == "error" for i in infos if not i.detail):
            return "error"
        return decisions[-1].outcome
    if any(i.outcome == "error" for i in infos):
        return "error"
    if any(i.outcome == "failed" for i in infos if not i.detail):
        return "failed"
    return "not_run"


def _results(config, book: GateBook) -> dict[str, GateResult]:
    thresholds = _thresholds(config)
    results = {}
    for gate in GATE_ORDER:
        infos = [i for i in book.items.values() if i.gate == gate]
        status = _status(infos)
        reasons = [i.message for i in infos if i.outcome in ("failed", "error") and not i.detail and not i.decision]
        if not reasons:
            reasons = [i.message for i in infos if i.decision and i.outcome != "passed"]
        if status == "skipped":
            reasons = [next((i.message for i in infos if i.outcome == "skipped" and i.message), "skipped")]
        if status == "not_run":
            if gate in book.deselected:
                reasons = ["deselected in this run (-m/-k or a path)"]
            elif not infos:
                reasons = ["not collected: " + ("; ".join(book.collection_errors) or "no test of this gate was found")]
        counts: dict[str, int] = {}
        for i in infos:
            counts[i.outcome] = counts.get(i.outcome, 0) + 1
        spec = thresholds.get(gate, {})
        results[gate] = GateResult(
            gate=gate,
            status=status,
            kind=spec.get("kind", "hard"),
            name=spec.get("name", ""),
            figures=dict(book.figures.get(gate, {})),
            reasons=tuple(dict.fromkeys(_clean(r) for r in reasons if r)),
            seconds=round(sum(i.seconds for i in infos), 3),
            tests=counts,
            flags=tuple(str(f) for f in book.figures.get(gate, {}).get("flags", ())),
        )
    return results


def _clean(reason: str) -> str:
    # pytest-dependency says "test_x depends on gate0"; say it for people.
    if " depends on gate" in reason:
        gate = reason.rsplit(" ", 1)[-1]
        return f"not run: depends on {gate}, which did not pass (--run-all-gates runs it anyway)"
    return reason


# -- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="session")
def gate_config(pytestconfig) -> gate_options.GateConfig:
    """The resolved options of this run (flags, ini keys, environment, data/gates.toml)."""
    try:
        return _gate_config(pytestconfig)
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)


class _Recorder:
    def __init__(self, book: GateBook, gate: str):
        self._figures = book.figures[gate]

    def __call__(self, key: str, value: Any) -> Any:
        self._figures[key] = value
        return value


@pytest.fixture
def gate_record(request):
    """`gate_record(key, value)` puts a figure in gates.<gate>.figures of the report."""
    gate = _gate_of(request.node)
    if gate is None:
        raise pytest.UsageError(f"{request.node.nodeid}: gate_record needs a gateN marker")
    return _Recorder(request.config.stash[_STASH], gate)


class _Outcome:
    def __init__(self, book: GateBook, nodeid: str, gate: str):
        self._book, self._nodeid, self._gate = book, nodeid, gate

    def check(self) -> None:
        """Fail unless every earlier non-detail test of this gate passed."""
        problems = []
        for nodeid, info in self._book.items.items():
            if nodeid == self._nodeid:
                break
            if info.gate != self._gate or info.detail or info.decision:
                continue
            if info.outcome != "passed":
                name = nodeid.rsplit("::", 1)[-1]
                problems.append(f"{name} {info.outcome}" + (f": {info.message}" if info.message else ""))
        if problems:
            pytest.fail(f"{self._gate} did not pass: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def gate_outcome(request):
    """For a gate's decision test: `gate_outcome.check()`."""
    gate = _gate_of(request.node)
    return _Outcome(request.config.stash[_STASH], request.node.nodeid, gate)


@pytest.fixture(scope="session")
def progress(pytestconfig):
    """A `progress(step, done, total, **figures)` callable that writes to the terminal."""
    from punie_gates.progress import make_progress

    return make_progress(pytestconfig)


@pytest.fixture(scope="session")
def catalog(gate_config):
    from punie_gates.catalog import load_catalog

    return load_catalog(gate_config.tools_path)


@pytest.fixture(scope="session")
def query_set(gate_config, catalog):
    from punie_gates.queries import load_queries

    return load_queries(gate_config.queries_path, catalog=catalog)


@pytest.fixture(scope="session")
def training_data(gate_config, catalog):
    """(train, valid) converted to Mistral form with the catalog's tools, rejects included."""
    from punie_gates.convert import convert_training_folder

    folder = gate_config.training_data
    if folder is None or not (folder / "train.jsonl").is_file() or not (folder / "valid.jsonl").is_file():
        pytest.fail(
            f"training data not found: {folder} must hold train.jsonl and valid.jsonl in Qwen3 form "
            "(point --training-data at Punie's data/phase27_merged folder)",
            pytrace=False,
        )
    return convert_training_folder(folder, tools=catalog.native_schemas())


@pytest.fixture(scope="session")
def system_prompt(gate_config, training_data) -> str:
    """The validation prompts' system prompt: the one training used, unless given."""
    from punie_gates import paths
    from punie_gates.prompts import default_system_prompt

    if gate_config.system_prompt_path is not None:
        return gate_config.system_prompt_path.read_text(encoding="utf-8").strip()
    train, _ = training_data
    return default_system_prompt(train.records) or (paths.data_dir() / "system_prompt.txt").read_text(encoding="utf-8").strip()
