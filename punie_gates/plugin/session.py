"""The run's session object: which tests belong to which gate, their outcomes, the verdict."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from punie_gates import progress
from punie_gates.answering.server_guard import stop_leftovers
from punie_gates.checks.preflight import check_run
from punie_gates.decision.html import verdict_fragment
from punie_gates.decision.outcomes import TestRecord, gate_results, unmet_checks
from punie_gates.decision.report import Report, terminal_lines, write_reports
from punie_gates.decision.report_folder import REPORT_FILES, ReportFolder, open_report_folder
from punie_gates.decision.verdict import EXIT_NOT_JUDGED, NOT_JUDGED, Verdict, decide, decide_not_judged
from punie_gates.errors import UserError, user_error_message
from punie_gates.inputs import options as gate_options
from punie_gates.inputs.gates import builtin_gates
from punie_gates.model import artifacts
from punie_gates.model.candidate import ENDPOINT_HAS_NO_FILES, GATES_NEEDING_FILES
from punie_gates.model.workdir import work_folder_figures
from punie_gates.plugin.recording import GateLogs
from punie_gates.plugin.terminal import notice_writer

ROLE_MARKERS = {
    "gate_decision": "the test that decides its gate from the gate's other tests (last in its module)",
    "gate_detail": "a per-query test whose own failure does not fail the gate (an aggregate test decides)",
    "screening": "runs only for a candidate named by its URL (an endpoint): every query and the multi-turn pass, reported, not judged",
}
_STASH = pytest.StashKey["GateSession"]()


def gate_of(item) -> str | None:
    """The gate an item belongs to, by its gateN marker."""
    for gate in builtin_gates().ids:
        if item.get_closest_marker(gate) is not None:
            return gate
    return None


def session_of(config) -> GateSession:
    return config.stash[_STASH]


class GateSession:
    """Per-run hooks and what they learn: test records, figures, flags, the verdict."""

    def __init__(self, config):
        self.config = config
        self.records: dict[str, TestRecord] = {}  # nodeid -> record, in run order
        self.logs = GateLogs(builtin_gates().ids)  # figures and flags, by gate
        self.deselected: set[str] = set()
        self.collection_errors: list[str] = []
        self.started = time.time()
        self.report: Report | None = None
        self.report_paths: tuple[Path, ...] = ()
        self._options: gate_options.GateConfig | None = None
        # A run stopped by problems the user must fix (punie_gates.errors.UserError, a full
        # disk): the causes, one line each, said once in the verdict; never a NO_GO.
        self.not_judged: list[str] = []
        self._not_judged_at: dict[str, str] = {}  # nodeid -> cause, for the tests they stopped
        self.running: str | None = None  # the test running now (to say what an interrupt cut short)
        self.interrupted: dict | None = None
        self.folder: ReportFolder | None = None  # the report folder this run holds
        self.report_missing: str | None = None  # why gate-report.* could not be written
        self.internal_error: str | None = None  # a bug that stopped the run (pytest printed its traceback)
        self._internal_traceback: str | None = None  # one raised in our own sessionfinish, printed in the summary
        self.unsaved_lines: tuple[str, ...] = ()  # JSONL results no file could take: shown after the verdict
        self._undo: list = []  # what _begin changed in the process, undone at unconfigure
        self._folder_tried = False
        self.no_files: set[str] = set()  # gates not run because the candidate is an endpoint

    @classmethod
    def install(cls, config) -> GateSession:
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
        return bool(self.records or self.deselected or self.collection_errors or self.not_judged or self.no_files)

    def options(self) -> gate_options.GateConfig:
        """The run's resolved options (raises UserError for a bad option or gates file)."""
        if self._options is None:
            self._options = gate_options.from_pytest(self.config)
        return self._options

    # -- what the gate tests call (through fixtures) ----------------------------

    def unmet_checks(self, gate: str, before_nodeid: str) -> list[str]:
        earlier = []
        for nodeid, rec in self.records.items():
            if nodeid == before_nodeid:
                break
            earlier.append(rec)
        return unmet_checks(earlier, gate)

    # -- hooks ----------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_report_header(self, config):
        lines = yield
        if config.get_verbosity() > 0:
            return lines
        # pytest-benchmark's settings line says nothing about the candidate; -v shows it.
        return [[x for x in ([r] if isinstance(r, str) else r) if not str(x).startswith("benchmark: ")]
                for r in lines if r]  # fmt: skip

    @pytest.hookimpl(wrapper=True)
    def pytest_generate_tests(self, metafunc):
        try:
            return (yield)
        except UserError as exc:  # a gate module parametrized from a broken input file: said once, below
            if gate_of(metafunc.definition) is None:
                raise
            self._stop(exc)
            return None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        if not any(gate_of(item) for item in items):
            return
        self._begin()
        try:  # a busy report folder, a broken option, thresholds file or input stops the run here
            self._folder_tried = True
            self.folder = open_report_folder(gate_options.report_dir_from_pytest(config))

            for said in stop_leftovers(self.folder.path):  # servers an earlier, killed run left behind
                progress.notice(said)
            cfg = self.options()
            items[:] = self._for_candidate_kind(cfg, items)

            check_run(cfg, gates={g for g in map(gate_of, items) if g}, explicit=_explicit(config),
                      fixtures={f for item in items for f in getattr(item, "fixturenames", ())})  # fmt: skip
        except UserError as exc:
            self._stop(exc)
        if self.not_judged:
            items[:] = []  # nothing runs: the verdict says why, once
            return
        previous = artifacts.set_damage_policy(cfg.damaged_cache)
        self._undo.append(lambda: artifacts.set_damage_policy(previous))
        registry = cfg.gates
        run_all = bool(config.getoption("punie_run_all_gates"))
        for item in items:
            gate = gate_of(item)
            if gate is None:
                continue
            decision = item.get_closest_marker("gate_decision") is not None
            detail = item.get_closest_marker("gate_detail") is not None
            self.records[item.nodeid] = TestRecord(gate, decision, detail, name=item.nodeid.rsplit("::", 1)[-1])
            prereq = None if run_all else registry[gate].depends
            if prereq in self.no_files:
                prereq = None  # an endpoint candidate: the gates that ran on its files did not run
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

    def _for_candidate_kind(self, cfg, items: list) -> list:
        """The items this candidate can run: for an endpoint (a URL) not the gates that need its
        files (each then not_run, saying why) and the screening; for any other, no screening."""

        if not cfg.candidate_endpoint:
            return [i for i in items if i.get_closest_marker("screening") is None]
        self.no_files = set(GATES_NEEDING_FILES)  # also when -m or -k left them out already
        return [i for i in items if gate_of(i) not in self.no_files]

    def _begin(self) -> None:
        """This run judges a candidate: notices go to the terminal, SIGTERM ends it like Ctrl-C."""
        previous = progress.set_notice_writer(notice_writer(self.config))
        self._undo.append(lambda: progress.set_notice_writer(previous))
        if threading.current_thread() is threading.main_thread():
            old = signal.signal(signal.SIGTERM, _terminated)
            self._undo.append(lambda: signal.signal(signal.SIGTERM, old))

    def _stop(self, exc: BaseException) -> None:
        """Record a problem the user must fix as this run's cause of not judging."""
        if isinstance(exc, UserError):  # one cause a line (a query file can hold several problems)
            causes = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        else:
            causes = [user_error_message(exc) or str(exc)]
        for cause in causes:
            if cause not in self.not_judged:
                self.not_judged.append(cause)

    def pytest_unconfigure(self, config):
        while self._undo:
            self._undo.pop()()
        if self.folder is not None:
            self.folder.release()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        cause = user_error_message(call.excinfo.value) if call.excinfo is not None else None
        if cause is None or item.nodeid not in self.records:
            return report
        # Not a verdict on the candidate: one short line here (no traceback), the cause once in
        # the verdict, and no further test repeating the same error.
        self._stop(call.excinfo.value)
        self.unsaved_lines += getattr(call.excinfo.value, "lines", ())  # results that could be kept nowhere
        self._not_judged_at[item.nodeid] = cause
        report.outcome = "skipped"
        report.longrepr = (str(item.path), (item.location[1] or 0) + 1, f"not judged: {cause}")
        item.session.shouldstop = "punie-gates: stopped, the candidate cannot be judged (the verdict says why)"
        return report

    def pytest_runtest_logstart(self, nodeid, location):
        self.running = nodeid

    def pytest_runtest_logfinish(self, nodeid, location):
        self.running = None

    def pytest_keyboard_interrupt(self, excinfo):
        if isinstance(excinfo.value, pytest.Session.Interrupted):
            return  # pytest's own stop (collection errors, a stop asked for above), not the user's
        test = self.running
        rec = self.records.get(test) if test else None
        self.interrupted = {
            "by": "SIGTERM" if "SIGTERM" in str(excinfo.value) else excinfo.typename,
            "gate": rec.gate if rec else None,
            "test": rec.name if rec else test,
        }

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
        if report.nodeid in self._not_judged_at:
            rec.outcome, rec.message = "error", "not judged: the run stopped here (the verdict says why)"
            return
        if report.when == "call":
            rec.outcome = report.outcome
        elif report.failed:  # setup or teardown
            rec.outcome = "error"
        elif report.skipped:
            rec.outcome = "skipped"
        if report.failed or report.skipped:
            rec.message = _message(report)

    def pytest_internalerror(self, excrepr, excinfo):
        """A bug (or an error nobody turned into a UserError) stopped pytest: the run is ERROR, never a verdict."""
        cause = user_error_message(excinfo.value)
        if cause is not None:
            self._stop(excinfo.value)
        else:
            self.internal_error = _internal_error(excinfo.value)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        if not self.active and not (self._folder_tried and self.internal_error):
            return
        try:
            self._sessionfinish(session, exitstatus)
        except Exception as exc:  # noqa: BLE001 (a bug here must still end the run ERROR, with run.json closed)
            self.internal_error = self.internal_error or _internal_error(exc)
            self._internal_traceback = traceback.format_exc()
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            self._write_error_report()
            if exitstatus == pytest.ExitCode.INTERNAL_ERROR:
                self._say_verdict()

    def _write_error_report(self) -> None:
        """The smallest report of a run a bug stopped: ERROR, incomplete, and run.json marked ended."""
        verdict = Verdict(NOT_JUDGED, None, (), (f"internal error: {self.internal_error}",), False)
        self.report = Report(verdict=verdict, results={}, candidate=None, baseline=None, run_all_gates=False,
                             started=self.started, finished=time.time(), run=None)  # fmt: skip
        try:
            self._write_report()
        except Exception:  # noqa: BLE001 (the run.json state below is what must survive)
            self.report_missing = "the report could not be written either (traceback above)"
        if self.folder is not None:
            self.folder.finish("internal error", [])
            self.folder.release()

    def _sessionfinish(self, session, exitstatus):
        try:
            cfg = self.options()
        except UserError as exc:  # a broken option or thresholds file: not judged
            cfg = None
            self._stop(exc)
        registry = cfg.gates if cfg else builtin_gates()
        results = gate_results(
            registry,
            list(self.records.values()),
            self.logs,
            deselected=self.deselected,
            collection_errors=self.collection_errors,
        )
        results = self._explain_not_run(results)
        if self.no_files:
            results = {
                g: dataclasses.replace(r, status="not_run", reasons=(ENDPOINT_HAS_NO_FILES,))
                if g in self.no_files
                else r
                for g, r in results.items()
            }
        if self.not_judged:
            stopped = {self.records[n].gate for n in self._not_judged_at}
            verdict: Verdict = decide_not_judged(
                results, self.not_judged, stopped_gates=sorted(stopped), order=registry.ids
            )
        else:
            complete = not _partial(self.config) and not self.interrupted and not self.no_files
            verdict = decide(results, complete=complete, order=registry.ids)
        if self.interrupted and not self.not_judged:
            where = (
                f" while {self.interrupted['gate']} was running ({self.interrupted['test']})"
                if self.interrupted["gate"]
                else ""
            )
            if verdict.verdict == "NO_GO" and verdict.stopped_at:  # the hard failure came first: it decides
                why = f"then interrupted ({self.interrupted['by']}){where}: the NO_GO at {verdict.stopped_at} stands"
                verdict = dataclasses.replace(verdict, reasons=(*verdict.reasons, why), complete=False)
            else:
                why = (f"interrupted ({self.interrupted['by']}){where}: no go/no-go was reached; run the same command "
                       "again to go on (training resumes from its last checkpoint, finished work is reused)")  # fmt: skip
                verdict = dataclasses.replace(verdict, reasons=(why, *verdict.reasons), complete=False)
        if self.internal_error:  # a bug stopped the run: whatever was decided so far is not a verdict
            verdict = Verdict(NOT_JUDGED, None, verdict.flags, (f"internal error: {self.internal_error}",), False)
        if self.folder is None and not self._folder_tried:
            self._folder_tried = True
            try:  # a run that collected no gate test (all deselected) still gets its report folder
                self.folder = open_report_folder(gate_options.report_dir_from_pytest(self.config))
            except UserError as exc:
                self._stop(exc)
        files = sorted({*self.folder.written(), *REPORT_FILES}) if self.folder else []
        run = {"id": self.folder.run_id, "files": files} if self.folder else None
        if self.folder is not None and self.folder.moved_to is not None:
            run["previous_moved_to"] = str(self.folder.moved_to)
        self.report = Report(
            verdict=verdict,
            results=results,
            candidate=cfg.candidate if cfg else None,
            baseline=cfg.baseline if cfg else None,
            run_all_gates=cfg.run_all_gates if cfg else False,
            started=self.started,
            finished=time.time(),
            collection_errors=tuple(self.collection_errors),
            answer_via=("endpoint" if cfg.candidate_endpoint else cfg.answer_via) if cfg else None,
            interrupted=self.interrupted,
            run=run,
            work_folder=work_folder_figures(cfg.work_dir) if cfg else None,
        )
        self._write_report()
        if self.internal_error:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            if exitstatus == pytest.ExitCode.INTERNAL_ERROR:  # pytest shows no summary then: the verdict is said here
                self._say_verdict()
            return
        if verdict.verdict == NOT_JUDGED:
            session.exitstatus = EXIT_NOT_JUDGED
            return
        if verdict.verdict == "INCOMPLETE":
            return  # a partial run keeps pytest's own exit status
        if verdict.passes:
            if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
                session.exitstatus = pytest.ExitCode.OK
        elif exitstatus == pytest.ExitCode.OK or self.not_judged:  # (a stop of ours is not an interrupt)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write_report(self) -> None:
        """gate-report.json/.md/.html into the run's folder; when that fails, say why (the
        terminal still shows the verdict) and leave no partial file."""
        if self.folder is None:
            self.report_missing = "this run could not take its report folder (the cause is above)"
            return
        try:
            self.report_paths = write_reports(self.folder.path, self.report)
        except OSError as exc:
            left = [n for n in REPORT_FILES if (self.folder.path / n).is_file()]
            written = f" (written: {', '.join(left)})" if left else ""
            self.report_missing = f"{exc.strerror or exc} writing {exc.filename or self.folder.path}{written}"
        state = ("internal error" if self.internal_error else "not judged" if self.not_judged
                 else "interrupted" if self.interrupted else "finished")  # fmt: skip
        self.folder.finish(state, list(self.report.run["files"]) if self.report.run else [])
        self.folder.release()

    def _explain_not_run(self, results):
        """Gates that never ran because the run stopped early say so."""
        if self.not_judged:
            why = "not run: the run stopped first (the verdict says why)"
        elif self.interrupted:
            why = "not run: the run was interrupted" + (
                f" during {self.interrupted['gate']}" if self.interrupted["gate"] else ""
            )
        else:
            return results
        out = {}
        for gate, result in results.items():
            if result.status == "not_run" and (not result.reasons or result.reasons[0].startswith("not collected")):
                result = dataclasses.replace(result, reasons=(why,))
            if self.interrupted and gate == self.interrupted.get("gate") and result.status == "not_run":
                result = dataclasses.replace(
                    result, reasons=(f"interrupted while {self.interrupted['test']} was running",)
                )
            out[gate] = result
        return out

    def _say_verdict(self) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None and self.report is not None:
            for line in terminal_lines(self.report, self.report_paths, self.report_missing):
                terminal.write_line(line)

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        if self._internal_traceback:
            for line in self._internal_traceback.rstrip().splitlines():
                terminalreporter.write_line(f"INTERNALERROR> {line}")
        if self.report is None or not (self.active or self.internal_error):
            return
        for line in terminal_lines(self.report, self.report_paths, self.report_missing):
            terminalreporter.write_line(line)
        if self.unsaved_lines:
            terminalreporter.write_line(
                f"results that could not be saved ({len(self.unsaved_lines)} JSONL lines, "
                "for `punie-gates score --responses`):"
            )
            for line in self.unsaved_lines:
                terminalreporter.write_line(line)


class _HtmlSummary:
    """pytest-html's summary hook, registered only when pytest-html is loaded (never a dependency)."""

    def __init__(self, session: GateSession):
        self.session = session

    def pytest_html_results_summary(self, prefix, summary, postfix, session):
        if self.session.report is None:  # no gate ran: nothing to add
            return

        html_page = next((p for p in self.session.report_paths if Path(p).suffix == ".html"), None)
        prefix.append(verdict_fragment(self.session.report.to_json(), html_page))


def _message(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.strip()
    return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else ""


def _internal_error(exc: BaseException) -> str:
    return (
        f"{type(exc).__name__}: {exc} (a bug in punie-gates, not a verdict on the candidate: the traceback "
        "is above; please report it)"
    )


def _terminated(signum, frame):
    # A stop from outside (CI cancelling, `timeout`, `kill`): end like Ctrl-C, so that
    # the report says the run was interrupted and where, instead of leaving none.
    raise KeyboardInterrupt("SIGTERM")


def _explicit(config) -> set[str]:
    """The options given on the command line (dest names), as opposed to defaults."""
    return {o.dest for o in gate_options.OPTIONS if config.getoption(f"punie_{o.dest}") not in (None, False)}


def _partial(config) -> bool:
    """Whether the user picked a subset of the gates (then no go/no-go is given)."""
    opt = config.option
    if getattr(opt, "markexpr", "") or getattr(opt, "keyword", ""):
        return True
    return any("::" in arg or Path(arg).is_file() for arg in config.args)
