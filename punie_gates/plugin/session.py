"""The run's session object: which tests belong to which gate, their outcomes, the verdict."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from punie_gates.decision.outcomes import GateLog, TestRecord, gate_results, unmet_checks
from punie_gates.decision.report import Report, terminal_lines, write_reports
from punie_gates.decision.verdict import Verdict, decide
from punie_gates.errors import UserError
from punie_gates.inputs import options as gate_options
from punie_gates.inputs.gates import builtin_gates
from punie_gates.resources import folder_bytes

ROLE_MARKERS = {
    "gate_decision": "the test that decides its gate from the gate's other tests (last in its module)",
    "gate_detail": "a per-query test whose own failure does not fail the gate (an aggregate test decides)",
}
_STASH = pytest.StashKey["GateSession"]()


def gate_of(item) -> str | None:
    """The gate an item belongs to, by its gateN marker."""
    for gate in builtin_gates().ids:
        if item.get_closest_marker(gate) is not None:
            return gate
    return None


def session_of(config) -> "GateSession":
    return config.stash[_STASH]


class GateSession:
    """Per-run hooks and what they learn: test records, figures, flags, the verdict."""

    def __init__(self, config):
        self.config = config
        self.records: dict[str, TestRecord] = {}  # nodeid -> record, in run order
        self.logs: dict[str, GateLog] = {g: GateLog() for g in builtin_gates().ids}
        self.deselected: set[str] = set()
        self.collection_errors: list[str] = []
        self.started = time.time()
        self.report: Report | None = None
        self.report_paths: tuple[Path, ...] = ()
        self._options: gate_options.GateConfig | None = None

    @classmethod
    def install(cls, config) -> "GateSession":
        for gate in builtin_gates():
            config.addinivalue_line("markers", f"{gate.id}: {gate.marker_help}")
        for name, text in ROLE_MARKERS.items():
            config.addinivalue_line("markers", f"{name}: {text}")
        session = cls(config)
        config.stash[_STASH] = session
        config.pluginmanager.register(session, "punie-gates-session")
        if config.pluginmanager.hasplugin("html"):  # pytest-html is installed: the verdict goes on its page too
            config.pluginmanager.register(_HtmlSummary(session), "punie-gates-html")
        return session

    @property
    def active(self) -> bool:
        return bool(self.records or self.deselected or self.collection_errors)

    def options(self) -> gate_options.GateConfig:
        """The run's resolved options (raises UserError for a bad option or gates file)."""
        if self._options is None:
            self._options = gate_options.from_pytest(self.config)
        return self._options

    # -- what the gate tests call (through fixtures) ----------------------------

    def record(self, gate: str, key: str, value: Any) -> Any:
        self.logs[gate].figures[key] = value
        return value

    def flag(self, gate: str, text: str) -> None:
        if text not in self.logs[gate].flags:
            self.logs[gate].flags.append(text)

    def unmet_checks(self, gate: str, before_nodeid: str) -> list[str]:
        earlier = []
        for nodeid, rec in self.records.items():
            if nodeid == before_nodeid:
                break
            earlier.append(rec)
        return unmet_checks(earlier, gate)

    # -- hooks ----------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        if not any(gate_of(item) for item in items):
            return
        try:  # a broken option or thresholds file stops the run before any gate runs
            registry = self.options().gates
        except UserError as exc:
            self.collection_errors.append(str(exc))
            raise pytest.UsageError(str(exc)) from None
        run_all = bool(config.getoption("punie_run_all_gates"))
        for item in items:
            gate = gate_of(item)
            if gate is None:
                continue
            decision = item.get_closest_marker("gate_decision") is not None
            detail = item.get_closest_marker("gate_detail") is not None
            self.records[item.nodeid] = TestRecord(gate, decision, detail, name=item.nodeid.rsplit("::", 1)[-1])
            prereq = None if run_all else registry[gate].depends
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
        self.deselected.update(g for g in map(gate_of, items) if g is not None)

    def pytest_collectreport(self, report):
        if report.failed and "gates" in Path(str(report.fspath)).parts:
            last = report.longreprtext.strip().splitlines()[-1] if report.longreprtext else "collection error"
            self.collection_errors.append(f"{report.nodeid}: {last}")

    def pytest_runtest_logreport(self, report):
        rec = self.records.get(report.nodeid)
        if rec is None:
            return
        rec.seconds += report.duration
        if report.when == "call":
            rec.outcome = report.outcome
        elif report.failed:  # setup or teardown
            rec.outcome = "error"
        elif report.skipped:
            rec.outcome = "skipped"
        if report.failed or report.skipped:
            rec.message = _message(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        if not self.active:
            return
        try:
            cfg = self.options()
        except UserError as exc:  # a broken option or thresholds file: never GO
            cfg = None
            self.collection_errors.append(str(exc))
        registry = cfg.gates if cfg else builtin_gates()
        results = gate_results(registry, list(self.records.values()), self.logs,
                               deselected=self.deselected, collection_errors=self.collection_errors)
        verdict: Verdict = decide(results, complete=not _partial(self.config), order=registry.ids)
        if cfg is None:
            verdict = decide({}, complete=True, order=registry.ids)
        self.report = Report(
            verdict=verdict,
            results=results,
            candidate=cfg.candidate if cfg else None,
            baseline=cfg.baseline if cfg else None,
            run_all_gates=cfg.run_all_gates if cfg else False,
            started=self.started,
            finished=time.time(),
            collection_errors=tuple(self.collection_errors),
            work_folder=work_folder_figures(cfg.work_dir) if cfg else None,
        )
        report_dir = cfg.report_dir if cfg else Path(self.config.invocation_params.dir) / "reports"
        self.report_paths = write_reports(report_dir, self.report)
        if verdict.verdict == "INCOMPLETE":
            return  # a partial run keeps pytest's own exit status
        if verdict.passes:
            if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
                session.exitstatus = pytest.ExitCode.OK
        elif exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        if not self.active or self.report is None:
            return
        for line in terminal_lines(self.report, self.report_paths):
            terminalreporter.write_line(line)


class _HtmlSummary:
    """pytest-html's summary hook, registered only when pytest-html is loaded (never a dependency)."""

    def __init__(self, session: GateSession):
        self.session = session

    def pytest_html_results_summary(self, prefix, summary, postfix, session):
        if self.session.report is None:  # no gate ran: nothing to add
            return
        from punie_gates.decision.html import verdict_fragment

        html_page = next((p for p in self.session.report_paths if Path(p).suffix == ".html"), None)
        prefix.append(verdict_fragment(self.session.report.to_json(), html_page))


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


def work_folder_figures(work_dir: Path) -> dict[str, Any]:
    """The work folder and its size at the end of the run (cached models, adapters, fused models)."""
    return {"path": str(work_dir), "bytes": folder_bytes(work_dir) if Path(work_dir).is_dir() else 0}
