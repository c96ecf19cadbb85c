"""gate-report.html and `punie-gates compare`: the page people read, checked in a real browser.

The browser tests open the page in headless Chromium (Debian's chromium and
chromium-driver, driven by selenium) and read the RENDERED DOM: what a person
sees, not what the template wrote. Outside CI a machine without Chromium skips
them with the install command; under CI=true a missing browser fails, so CI
cannot pass by skipping. PUNIE_GATES_CHECK_RUN=DIR also checks a real run's page.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time
import tomllib
import zlib
from pathlib import Path

import pytest

from punie_gates.checks.rescoring import rescore_folder
from punie_gates.decision import compare, html
from punie_gates.decision.html import category_of, render_page, report_page, write_html

REPO = Path(__file__).resolve().parents[2]
INSTALL = (
    "install it with `apt-get update && apt-get install -y chromium chromium-driver` "
    "and `pip install -e .[selftest]` (selenium); .ci/run does both"
)
HOSTILE = "<script>document.title='pwned'</script><img id=injected src=x onerror=\"document.body.dataset.hit=1\">"
SHOTS = os.environ.get("PUNIE_GATES_SHOTS")  # also copy screenshots here (for looking at them)


# -- a small handcrafted run -------------------------------------------------------------


def tiny_png(width: int = 40, height: int = 20) -> bytes:
    """A valid PNG (a blue-to-white gradient), written by hand: no plotting library needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, x * 255 // width, 255))
        for _ in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def answer(passed: bool, response: str, **extra) -> dict:
    verdict = "PASS" if passed else "FAIL"
    return {
        "passed": passed,
        "tools": extra.pop("tools", []),
        "fields": extra.pop("fields", []),
        "reason": f"{verdict}: expected X; found Y",
        "response": response[:300],
        **extra,
    }


def handcrafted_doc(report_dir: Path, *, baseline: bool = True) -> dict:
    """A report document shaped like gate-report.json, with every optional part present."""
    g5 = [
        {
            "id": "direct_answers-01",
            **answer(True, "A list is mutable."),
            **({"baseline": answer(True, "Lists are mutable.")} if baseline else {}),
        },
        {
            "id": "cross_tool-01",
            **answer(False, HOSTILE, tools=["typecheck"], fields=["errors"]),
            **(
                {"baseline": answer(True, "[TOOL_CALLS]execute_code[ARGS]{}", tools=["typecheck", "ruff_check"])}
                if baseline
                else {}
            ),
        },
        {
            "id": "cross_tool-02",
            **answer(
                True,
                '[TOOL_CALLS]execute_code[ARGS]{"code": "x"}',
                tools=["pytest_run"],
                followup=answer(False, "follow-up reply"),
            ),
            **({"baseline": answer(True, "ok")} if baseline else {}),
        },
        {
            "id": "git_tools-01",
            **answer(False, "no idea"),
            **({"baseline": answer(False, "no idea either")} if baseline else {}),
        },
    ]
    figures5 = {
        "queries": g5,
        "correct": 2,
        "total": 4,
        "loss_curve_png": str(report_dir / "gate5-loss-curve.png"),
        "loss": {"first_val": 2.0, "last_val": 0.3},
        "steps": [
            {"step": "train", "seconds": 12.5, "peak_memory_gb": 3.25, "bytes": 1000},
            {"step": "fuse", "seconds": 2.0, "peak_memory_gb": 1.5, "bytes": 2000},
        ],
    }
    if baseline:
        figures5.update(
            {
                "interval": {"passed": 2, "total": 4, "low": 0.15, "high": 0.85, "confidence": 0.95},
                "baseline_interval": {"passed": 3, "total": 4, "low": 0.3, "high": 0.95, "confidence": 0.95},
                "mcnemar": {
                    "both_passed": 2,
                    "both_failed": 1,
                    "only_candidate": 0,
                    "only_baseline": 1,
                    "p_two_sided": 1.0,
                },
            }
        )
    gate = lambda name, kind, status, secs, reasons=(), figures=None, tests=None: {  # noqa: E731
        "name": name,
        "kind": kind,
        "status": status,
        "seconds": secs,
        "tests": tests or {status: 1},
        "reasons": list(reasons),
        "figures": figures or {},
    }
    return {
        "suite": "punie-gates 0.1.0",
        "verdict": "NO_GO",
        "stopped_at": "gate5",
        "complete": True,
        "flags": [],
        "reasons": ["gate5 (full training) failed: 2/4 correct, expected >= 34"],
        "candidate": {"spec": "demo", "is_demo": True, "note": "built-in offline demo candidate: RANDOM weights"},
        "baseline": "/models/qwen3" if baseline else None,
        "run_all_gates": False,
        "started": "2026-01-01T00:00:00+0000",
        "seconds": 42.0,
        "machine": {"platform": "Linux", "machine": "x86_64", "cpus": 2},
        "collection_errors": [],
        "gates": {
            "gate0": gate(
                "tokenizer",
                "hard",
                "passed",
                1.5,
                figures={
                    "markers": {
                        "[TOOL_CALLS]": {
                            "ids": [9],
                            "id": 9,
                            "single": True,
                            "control": True,
                            "emitted": True,
                            "text_can_produce": False,
                        },
                        "[ARGS]": {
                            "ids": [32],
                            "id": 32,
                            "single": True,
                            "control": True,
                            "emitted": True,
                            "text_can_produce": False,
                        },
                    }
                },
            ),
            "gate1": gate("load and smoke", "hard", "passed", 3.0, figures={"peak_memory_gb": 1.9}),
            "gate2": gate(
                "latency",
                "soft",
                "failed",
                5.0,
                ["average 16 s, expected <= 15 s"],
                figures={"queries": ["direct_answers-01"], "avg_latency_s": 16.0, "punie_reported_latency_s": 2.9},
            ),
            "gate3": gate(
                "zero-shot",
                "caution",
                "passed",
                2.0,
                figures={
                    "queries": [
                        {
                            "id": "existing_tools-01",
                            "expect": "tool",
                            "calls": ["execute_code"],
                            "valid_calls": 1,
                            "problems": [],
                            "response": "call",
                        },
                        {
                            "id": "direct_answers-02",
                            "expect": "direct",
                            "calls": [],
                            "valid_calls": 0,
                            "problems": [],
                            "response": "text",
                        },
                    ]
                },
            ),
            "gate4": gate(
                "small LoRA", "hard", "passed", 9.0, figures={"loss_curve_png": "elsewhere/gate4-loss-curve.png"}
            ),
            "gate5": gate(
                "full training",
                "hard",
                "failed",
                20.0,
                ["2/4 correct, expected >= 34"],
                figures5,
                {"passed": 3, "failed": 2},
            ),
        },
    }


def write_run(report_dir: Path, *, baseline: bool = True) -> dict:
    """A report folder as a run leaves it: JSON, responses (full text), loss curves, then the page."""
    report_dir.mkdir(parents=True, exist_ok=True)
    doc = handcrafted_doc(report_dir, baseline=baseline)
    (report_dir / "gate-report.json").write_text(json.dumps(doc, indent=2))
    (report_dir / "gate4-loss-curve.png").write_bytes(tiny_png())
    (report_dir / "gate5-loss-curve.png").write_bytes(tiny_png(60, 30))
    long_reply = "A list is mutable. " + "x" * 400 + " END-OF-FULL-TEXT"
    rows = {"direct_answers-01": long_reply, "cross_tool-01": HOSTILE}
    (report_dir / "gate5-responses.jsonl").write_text(
        "".join(json.dumps({"id": k, "response": v}) + "\n" for k, v in rows.items())
    )
    write_html(report_dir, doc)
    return doc


def query_rows(doc: dict) -> int:
    """Answers the report holds: the per-query rows of Gates 3-5 (Gate 2 lists only ids)."""
    return sum(
        sum(isinstance(q, dict) for q in doc["gates"][g]["figures"].get("queries", []))
        for g in html.QUERY_GATES
        if g in doc["gates"]
    )


# -- the page's source: escaping, self-containment, optional parts --------------------------


def test_page_is_self_contained_and_escapes_replies(tmp_path):
    doc = write_run(tmp_path)
    source = (tmp_path / "gate-report.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;document.title=" in source and HOSTILE not in source
    # only the page's own two script elements: the embedded JSON and the filter
    assert len(re.findall(r"<script\b", source)) == 2
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", source), "the page must not load anything"
    assert "default-src &#39;none&#39;" in source  # CSP: no network, only the page's script by hash
    assert source.count("data:image/png;base64,") == 2  # both loss curves embedded
    embedded = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', source, re.S).group(1)
    assert json.loads(embedded) == doc
    assert "END-OF-FULL-TEXT" in source  # the saved response, not the report's 300 characters


def test_optional_parts_are_omitted_when_absent(tmp_path):
    write_run(tmp_path, baseline=False)
    source = (tmp_path / "gate-report.html").read_text(encoding="utf-8")
    assert "<th>baseline</th>" not in source and "pass rates" not in source
    assert "resources per step" in source  # steps are still there
    bare = {"verdict": "INCOMPLETE", "candidate": {"spec": "x"}, "gates": {}}
    page = render_page(report_page(bare))
    assert 'id="verdict">INCOMPLETE<' in page
    for absent in ('id="gates"', 'id="queries"', 'id="curves"', "Loss curves", 'id="filter-category"'):
        assert absent not in page


def test_baseline_and_followups_side_by_side(tmp_path):
    doc = handcrafted_doc(tmp_path)
    page = report_page(doc, tmp_path, responses={})
    section = next(s for s in page.sections if s.gate == "gate5")
    assert section.sides == ("candidate", "baseline") and section.has_followups
    by_id = {r.id: r for r in section.rows}
    assert by_id["cross_tool-01"].disagree and by_id["cross_tool-02"].disagree  # side vs side; turn vs follow-up
    assert not by_id["git_tools-01"].disagree and by_id["git_tools-01"].outcome == "fail"
    gate3 = next(s for s in page.sections if s.gate == "gate3")
    assert [r.outcome for r in gate3.rows] == ["pass", "pass"]
    assert {g.gate: g.peak_memory_gb for g in page.gates}["gate5"] == 3.25
    assert category_of("cross_tool-02") == "cross_tool" and category_of("odd") == ""


def test_write_html_is_atomic_and_overwrites(tmp_path):
    doc = handcrafted_doc(tmp_path)
    first = write_html(tmp_path, doc)
    doc["verdict"] = "GO"
    second = write_html(tmp_path, doc)
    assert first == second == tmp_path / "gate-report.html"
    assert 'id="verdict">GO<' in second.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["gate-report.html"]  # no temporary file left


def test_templates_ship_with_the_package():
    # hatch's wheel target ships every file under punie_gates/, templates included;
    # PackageLoader reads them from the installed package, never from the checkout.
    from importlib import resources

    folder = resources.files("punie_gates.decision").joinpath("templates")
    assert {"report.html.j2", "report.css", "report.js", "summary.html.j2"} <= {p.name for p in folder.iterdir()}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["punie_gates"]
    assert any(d.lower().startswith("jinja2") for d in pyproject["project"]["dependencies"])


# -- in the browser ------------------------------------------------------------------------


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _found(env: str, names: tuple[str, ...]) -> str | None:
    if os.environ.get(env):
        return os.environ[env] if Path(os.environ[env]).is_file() else None
    return next((p for p in map(shutil.which, names) if p), None)


def chromium_path() -> str | None:
    """The browser: $PUNIE_GATES_CHROMIUM, else Debian's chromium (or Chrome) on PATH."""
    return _found("PUNIE_GATES_CHROMIUM", BROWSERS)


def chromedriver_path() -> str | None:
    """Its driver: $PUNIE_GATES_CHROMEDRIVER, else chromedriver on PATH (Debian's chromium-driver)."""
    return _found("PUNIE_GATES_CHROMEDRIVER", ("chromedriver",))


def _browser_missing() -> list[str]:
    missing = []
    if chromium_path() is None:
        missing.append("chromium")
    if chromedriver_path() is None:
        missing.append("chromedriver (chromium-driver)")
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium")
    return missing


@pytest.fixture(scope="module")
def browser():
    missing = _browser_missing()
    if missing:
        message = f"the page's browser checks need {', '.join(missing)}: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium_path()
    profile = tempfile.mkdtemp(prefix="punie-gates-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver and browser path: selenium's own driver download is never used.
    service = Service(executable_path=chromedriver_path())
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, path: Path):
    driver.get(path.resolve().as_uri())
    return driver


def screenshot(driver, path: Path, shot: str) -> Path:
    """The whole page as a PNG beside it (and as $PUNIE_GATES_SHOTS/<shot>.png when set)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(int(height) + 40, 8000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SHOTS) / f"{shot}.png")
    return path


def visible_rows(driver):
    return [r for r in driver.find_elements("css selector", "tr.query-row") if r.is_displayed()]


def check_dom_against_report(driver, doc: dict) -> None:
    """What the rendered page shows agrees with gate-report.json."""
    assert driver.find_element("id", "verdict").text == doc["verdict"]
    gate_rows = driver.find_elements("css selector", "#gate-table tr.gate-row")
    assert [r.get_attribute("data-gate") for r in gate_rows] == list(doc["gates"])
    assert [r.find_element("css selector", ".gate-status").text for r in gate_rows] == [
        g["status"] for g in doc["gates"].values()
    ]
    for row, g in zip(gate_rows, doc["gates"].values()):
        shown = row.find_element("css selector", ".gate-reason .short").text  # clipped, the rest folded
        first = " ".join((g["reasons"][0] if g["reasons"] else "").split())
        assert first.startswith(shown.removesuffix(" …")) and len(shown) <= 202
    assert len(driver.find_elements("css selector", "tr.query-row")) == query_rows(doc)
    assert len(visible_rows(driver)) == query_rows(doc)  # no filter applied at first
    if doc["candidate"].get("note"):
        assert doc["candidate"]["note"] in driver.find_element("id", "top").text
    # self-contained: the page fetched nothing and its script ran under the CSP
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_rendered_page_matches_the_report(browser, tmp_path):
    doc = write_run(tmp_path)
    started = time.perf_counter()
    check_dom_against_report(open_page(browser, tmp_path / "gate-report.html"), doc)
    assert browser.find_element("id", "filter-count").text == f"{query_rows(doc)} of {query_rows(doc)} queries shown"
    gate5 = browser.find_element("css selector", 'tr.gate-row[data-gate="gate5"]')
    assert "3.25 GB" in gate5.text
    assert len(browser.find_elements("css selector", "#curves img")) == 2
    assert all(
        browser.execute_script("return arguments[0].naturalWidth", img) > 0
        for img in browser.find_elements("css selector", "#curves img")
    )
    headers = [th.text for th in browser.find_elements("css selector", '.query-section[data-gate="gate5"] thead th')]
    assert headers == ["query", "candidate", "baseline"]
    assert "follow-up" in browser.find_element("id", "q-gate5-cross_tool-02").text.lower()
    assert "pass rates" in browser.find_element("id", "tables").text
    screenshot(browser, tmp_path / "gate-report.png", "handcrafted-gate-report")
    assert time.perf_counter() - started < 30


def test_filters_hide_rows(browser, tmp_path):
    from selenium.webdriver.support.ui import Select

    doc = write_run(tmp_path)
    open_page(browser, tmp_path / "gate-report.html")
    Select(browser.find_element("id", "filter-category")).select_by_value("cross_tool")
    shown = visible_rows(browser)
    assert [r.get_attribute("data-id") for r in shown] == ["cross_tool-01", "cross_tool-02"]
    assert not browser.find_element("css selector", '.query-section[data-gate="gate3"]').is_displayed()
    Select(browser.find_element("id", "filter-outcome")).select_by_value("fail")
    assert [r.get_attribute("data-id") for r in visible_rows(browser)] == ["cross_tool-01"]
    Select(browser.find_element("id", "filter-category")).select_by_value("")
    Select(browser.find_element("id", "filter-outcome")).select_by_value("disagree")
    assert [r.get_attribute("data-id") for r in visible_rows(browser)] == ["cross_tool-01", "cross_tool-02"]
    gates = Select(browser.find_element("id", "filter-gate"))
    assert [o.get_attribute("value") for o in gates.options] == ["", "gate3", "gate5"]  # Gate 2 lists ids only
    gates.select_by_value("gate3")
    assert visible_rows(browser) == []
    Select(browser.find_element("id", "filter-outcome")).select_by_value("")
    assert len(visible_rows(browser)) == 2
    assert browser.find_element("id", "filter-count").text == f"2 of {query_rows(doc)} queries shown"


def test_markup_in_a_reply_is_shown_as_text(browser, tmp_path):
    write_run(tmp_path)
    open_page(browser, tmp_path / "gate-report.html")
    row = browser.find_element("id", "q-gate5-cross_tool-01")
    reply = row.find_element("css selector", "pre.reply")
    assert reply.text == HOSTILE  # shown literally
    assert reply.find_elements("css selector", "*") == []  # no element was created from it
    assert browser.find_elements("id", "injected") == []
    assert browser.title != "pwned" and browser.execute_script("return document.body.dataset.hit") is None
    assert browser.execute_script("return document.scripts.length") == 2


def test_compare_page_in_the_browser(browser, two_runs, tmp_path):
    from punie_gates.commands.compare import main

    out = tmp_path / "compare.html"
    assert main([str(two_runs[0]), str(two_runs[1]), "--out", str(out)]) == 0
    open_page(browser, out)
    rows = browser.find_elements("css selector", "tr.query-row")
    assert len(rows) == 38
    assert [th.text for th in browser.find_elements("css selector", ".query-section thead th")] == [
        "query",
        "A: run-a",
        "B: run-b",
    ]
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "filter-outcome")).select_by_value("disagree")
    assert sorted(r.get_attribute("data-id") for r in visible_rows(browser)) == sorted(BROKEN)
    assert browser.find_elements("id", "injected") == []
    screenshot(browser, tmp_path / "compare.png", "compare")


@pytest.mark.skipif(
    not os.environ.get("PUNIE_GATES_CHECK_RUN"),
    reason="set PUNIE_GATES_CHECK_RUN=REPORT_DIR to check a real run's page",
)
def test_a_real_runs_page(browser):
    folder = Path(os.environ["PUNIE_GATES_CHECK_RUN"])
    doc = json.loads((folder / "gate-report.json").read_text(encoding="utf-8"))
    open_page(browser, folder / "gate-report.html")
    check_dom_against_report(browser, doc)
    screenshot(browser, folder / "gate-report.png", f"{folder.name}-gate-report")


# -- compare -------------------------------------------------------------------------------

IDEAL = tomllib.loads((REPO / "fixtures" / "responses" / "ideal_mistral.toml").read_text())["case"]
BROKEN = ("direct_answers-01", "cross_tool-02", "git_tools-04")  # run B's bad answers
DROPPED = ("existing_lsp-05", "field_access-03")  # answered by run A only


@pytest.fixture
def two_runs(tmp_path):
    """Run A answers all 40 ideally; run B breaks three answers and skips two queries."""
    a, b = tmp_path / "run-a", tmp_path / "run-b"
    for folder in (a, b):
        folder.mkdir()
    (a / "gate5-responses.jsonl").write_text(
        "".join(json.dumps({"id": c["id"], "response": c["response"]}) + "\n" for c in IDEAL)
    )
    lines = []
    for c in IDEAL:
        if c["id"] in DROPPED:
            continue
        text = HOSTILE + " [TOOL_CALLS]broken" if c["id"] in BROKEN else c["response"]
        lines.append(json.dumps({"id": c["id"], "response": text}) + "\n")
    (b / "gate4-responses.jsonl").write_text("this file is not read: gate5's wins\n")
    (b / "gate5-responses.jsonl").write_text("".join(lines))
    (b / "gate-report.json").write_text(json.dumps({"verdict": "NO_GO", "candidate": {"spec": "demo"}}))
    return a, b


def test_compare_pairs_the_runs_on_common_queries(two_runs):
    from punie_gates.inputs.catalog import load_catalog
    from punie_gates.inputs.queries import load_queries

    catalog = load_catalog()
    queries = load_queries(None, catalog)
    result = compare.compare_runs(*(compare.run_of(rescore_folder(f, queries, catalog)) for f in two_runs), queries)
    out = compare.comparison_json(result)
    assert (out["compared"], out["only_in_a"], out["only_in_b"]) == (38, list(DROPPED), [])
    assert (out["a"]["passed"], out["a"]["total"], out["b"]["passed"], out["b"]["total"]) == (38, 38, 35, 38)
    assert out["a"]["answered"] == 40 and out["b"]["verdict"] == "NO_GO"
    m = out["mcnemar"]
    assert (m["both_passed"], m["both_failed"], m["only_a"], m["only_b"]) == (35, 0, 3, 0)
    assert m["p_two_sided"] == pytest.approx(0.25) and m["p_b_worse"] == pytest.approx(0.125) and m["p_a_worse"] == 1.0
    assert out["a"]["interval"]["low"] < out["a"]["interval"]["high"] == 1.0
    cross = out["categories"]["cross_tool"]
    assert (cross["a"]["passed"], cross["b"]["passed"], cross["b"]["total"]) == (5, 4, 5)
    assert set(out["categories"]) == {c["id"].rsplit("-", 1)[0] for c in IDEAL}


def test_compare_command_prints_one_json_line_and_writes_the_page(two_runs, tmp_path, capsys, monkeypatch):
    from punie_gates.commands import main

    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(two_runs[0]), str(two_runs[1])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert Path(out["html"]).resolve() == (tmp_path / "compare.html").resolve()
    page = (tmp_path / "compare.html").read_text(encoding="utf-8")
    assert page.count('class="query-row"') == 38 and "existing_lsp-05" in page  # missing ids named
    assert "&lt;script&gt;document.title" in page and HOSTILE not in page


def test_compare_reports_bad_input_with_the_fix(two_runs, tmp_path, capsys):
    from punie_gates.commands.compare import main

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(two_runs[0]), str(empty)]) == 2
    err = capsys.readouterr().err
    assert "gate5-responses.jsonl nor gate4-responses.jsonl" in err and "--report-dir" in err
    (empty / "gate5-responses.jsonl").write_text('{"id": "nope-01", "response": "x"}\n')
    assert main([str(two_runs[0]), str(empty)]) == 2
    assert "gate5-responses.jsonl:1: unknown query id 'nope-01'" in capsys.readouterr().err


def test_compare_loads_no_model(two_runs, tmp_path, monkeypatch):
    """Re-scoring needs mlx-lm's tool parsers only: loading a model or reading weights fails the test."""
    import mlx.core as mx
    import mlx_lm
    import mlx_lm.utils

    def refuse(*args, **kwargs):
        raise AssertionError("compare must not load a model or read weights")

    for module, name in ((mlx_lm, "load"), (mlx_lm.utils, "load"), (mlx_lm.utils, "load_model"), (mx, "load")):
        monkeypatch.setattr(module, name, refuse)
    from punie_gates.commands.compare import main

    before = set(sys.modules)
    assert main([str(two_runs[0]), str(two_runs[1]), "--out", str(tmp_path / "c.html")]) == 0
    assert not {m for m in set(sys.modules) - before if m.startswith("mlx_lm.models.")}  # no architecture was built


# -- pytest conventions ----------------------------------------------------------------------

FAKE_GATE = (
    "import pytest\npytestmark = [pytest.mark.{gate}]\n\n"
    "def test_check(gate_record):\n    gate_record.update(steps=[dict(step='<b>42</b>', seconds=1.0)])\n\n"
    "@pytest.mark.gate_decision\ndef test_{gate}_decision(gate_outcome):\n    gate_outcome.check()\n"
)


def fake_gates(pytester):
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    gates = pytester.mkdir("gates")
    for gate in ("gate0", "gate1", "gate2", "gate3", "gate4", "gate5"):
        (gates / f"test_{gate}_fake.py").write_text(FAKE_GATE.format(gate=gate))
    return gates


def test_terminal_summary_names_the_page_and_junitxml_still_works(pytester):
    fake_gates(pytester)
    reports = pytester.path / "reports"
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--report-dir",
        str(reports),
        "--candidate",
        "demo",
        "--junitxml",
        str(pytester.path / "junit.xml"),
        "gates",
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(["VERDICT: GO", "report: *gate-report.json, *gate-report.md, *gate-report.html"])
    assert (reports / "gate-report.html").is_file()
    junit = (pytester.path / "junit.xml").read_text()
    assert junit.count("<testcase ") == 12 and 'failures="0"' in junit


def test_pytest_html_report_gets_the_verdict_table(pytester):
    pytest.importorskip(
        "pytest_html", reason="pytest-html is optional: its hook is registered only when it is installed"
    )
    gates = fake_gates(pytester)
    (gates / "test_gate2_fake.py").write_text(
        FAKE_GATE.format(gate="gate2").replace(
            "gate_record.update(steps=[dict(step='<b>42</b>', seconds=1.0)])", "assert False, 'slow <i>really</i>'"
        )
    )
    out = pytester.path / "pytest-report.html"
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--report-dir",
        str(pytester.path / "reports"),
        "--candidate",
        "demo",
        f"--html={out}",
        "--self-contained-html",
        "gates",
    )
    assert result.ret == 0  # a soft gate failed: GO_WITH_FLAGS
    page = out.read_text(encoding="utf-8")
    ours = re.search(r'<div class="punie-gates-verdict">.*?</div>', page, re.S).group(0)
    assert "punie-gates verdict: GO_WITH_FLAGS" in ours and "gate-report.html" in ours
    assert ours.count("<td>passed</td>") == 5 and "<td>failed</td>" in ours
    assert "slow &lt;i&gt;really&lt;/i&gt;" in ours and "<i>" not in ours  # escaped like the page
