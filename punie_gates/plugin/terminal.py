"""Terminal output while gates run: progress lines through pytest's terminal reporter."""

from __future__ import annotations

from collections.abc import Callable

from punie_gates.progress import Progress, null_progress, progress_printer


def make_progress(config, *, interval: float = 2.0) -> Progress:
    """Progress written through pytest's terminal reporter, visible while a test runs.

    Quiet (`-q`) or without a terminal reporter it is `null_progress`. Output
    capture is suspended around each line, the way live logging does it.
    """
    write = notice_writer(config)
    if write is None or config.get_verbosity() < 0:
        return null_progress
    return progress_printer(write, interval=interval)


def notice_writer(config) -> Callable[[str], None] | None:
    """A line writer through pytest's terminal reporter with output capture suspended
    (punie_gates.progress notices use it, even under -q); None without a reporter."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return None
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if capture is None:
            reporter.write_line(line)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    return write
