"""A run's report files: gate-report.json, .md and .html, each written whole or not at all.

The document is decision.report_document, the markdown decision.report_markdown, the
terminal's table decision.report_terminal, the page decision.html; their names are
importable from here as well.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from punie_gates.decision.html import write_html
from punie_gates.decision.report_document import Report, demo_note, serving_plans
from punie_gates.decision.report_markdown import markdown
from punie_gates.decision.report_terminal import steps_line, terminal_lines

__all__ = ["Report", "demo_note", "markdown", "serving_plans", "steps_line", "terminal_lines", "write_reports"]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_reports(report_dir: Path, report: Report) -> tuple[Path, Path, Path]:
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    doc = report.to_json()
    json_path, md_path = report_dir / "gate-report.json", report_dir / "gate-report.md"
    try:  # each file whole or not at all: a failed write leaves no temporary file behind
        _atomic_write(json_path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        _atomic_write(md_path, markdown(doc))
        return json_path, md_path, write_html(report_dir, doc)
    finally:
        for tmp in report_dir.glob(f".gate-report.*.{os.getpid()}.tmp"):
            tmp.unlink(missing_ok=True)
