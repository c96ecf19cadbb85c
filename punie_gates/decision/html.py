"""gate-report.html: the run's report rendered as one self-contained page a person reads.

Everything is inside the file (CSS and JS inline, loss curves as data: URIs, the
report document as embedded JSON) so it opens offline and can be mailed or attached
to CI. A Content-Security-Policy allows no network at all and only the page's own
script (by hash), and Jinja2 autoescaping shows a reply holding markup as text.
The page's content is its view model (punie_gates.decision.page), built from the report
document by punie_gates.decision.page_from_report (with page_queries, page_tables,
page_figures, page_words); the names callers need are re-exported here for those that
build pages of their own (`punie-gates compare`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from punie_gates.decision.page import Answer, Curve, GateRow, Page, QueryRow, QuerySection, Table
from punie_gates.decision.page_figures import key_figures, run_peak_memory
from punie_gates.decision.page_from_report import report_page
from punie_gates.decision.page_queries import QUERY_GATES, RESPONSE_FILES, category_of, read_responses, saved_text
from punie_gates.decision.page_words import interval_text, mcnemar_text
from punie_gates.decision.report_read import typed_report

__all__ = [
    "Answer", "Curve", "GateRow", "Page", "QueryRow", "QuerySection", "Table", "QUERY_GATES", "RESPONSE_FILES",
    "HTML_NAME", "category_of", "interval_text", "key_figures", "mcnemar_text", "read_responses", "report_page", "run_peak_memory",
    "saved_text", "clip", "render_page", "write_html", "write_page", "verdict_fragment",
]  # fmt: skip

HTML_NAME = "gate-report.html"


def _asset(name: str) -> str:
    return resources.files("punie_gates.decision").joinpath("templates", name).read_text(encoding="utf-8")


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("punie_gates.decision", "templates"),
        autoescape=True,  # every reply is untrusted text: markup in it must show as text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = _cell
    env.filters["clip"] = clip
    env.filters["seconds"] = lambda v: f"{v:.1f} s" if isinstance(v, (int, float)) else "-"
    env.filters["gb"] = lambda v: f"{v:.2f} GB" if isinstance(v, (int, float)) else ""
    return env


def clip(text: str, limit: int = 240) -> str:
    """The first `limit` characters, cut at a word, with an ellipsis when something was cut."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return (cut if len(cut) > limit // 2 else text[:limit]) + " …"


def _cell(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, Mapping):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render_page(page: Page) -> str:
    """The page as one HTML document (no external resource of any kind)."""
    script = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            page=page,
            css=_asset("report.css"),
            script=script,
            csp=csp,
        )
    )


def write_html(report_dir: Path, doc: Mapping[str, Any]) -> Path:
    """Render the run's page into report_dir/gate-report.html (atomically) and return its path."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    return write_page(report_dir / HTML_NAME, report_page(doc, report_dir))


def write_page(path: Path, page: Page) -> Path:
    """Write a rendered page to `path` through a temporary file and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(render_page(page), encoding="utf-8")
        os.replace(tmp, path)
    finally:  # a failed write (a folder at `path`, a full disk) leaves no temporary file behind
        tmp.unlink(missing_ok=True)
    return path


def verdict_fragment(doc: Mapping[str, Any], html_path: Path | None = None) -> str:
    """The verdict and gate table as an HTML fragment (escaped), for pytest-html's summary."""
    report = typed_report(doc)
    return (
        _environment()
        .get_template("summary.html.j2")
        .render(
            doc={"verdict": report.verdict or "", "stopped_at": report.stopped_at, "gates": report.gates or {}},
            note=(report.candidate.note if report.candidate else None) or "",
            html_path=str(html_path) if html_path else "",
        )
    )
