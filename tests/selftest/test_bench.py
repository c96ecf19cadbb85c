"""`punie-gates bench` output, and the progress lines long steps print."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from punie_gates.plugin.terminal import make_progress
from punie_gates.progress import format_line, format_seconds, null_progress, progress_printer

KEYS = {
    "naive_s", "suite_s", "speedup", "prefill_tokens_naive", "prefill_tokens_suite", "verdicts_differ",
    "outputs_differ", "queries", "batch_size", "max_tokens", "machine",
}  # fmt: skip


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """A tiny bench on the demo, through the console script as a user runs it."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "punie_gates", "bench", "--candidate", "demo", "--limit", "3",
         "--max-tokens", "4", "--gen-batch-size", "2", "--json-out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return proc, out


def test_bench_prints_one_json_line_with_the_figures(bench_run):
    proc, out = bench_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    result = json.loads(lines[0])
    assert set(result) >= KEYS, f"missing {KEYS - set(result)}"
    assert result["queries"] == 3 and result["max_tokens"] == 4 and result["batch_size"] == 2
    assert result["naive_s"] > 0 and result["suite_s"] > 0 and result["speedup"] > 0
    assert 0 <= result["outputs_differ"] <= 3 and 0 <= result["verdicts_differ"] <= result["outputs_differ"]
    assert {"platform", "cpus"} <= set(result["machine"])
    assert json.loads(out.read_text(encoding="utf-8")) == result


def test_bench_times_the_training_datas_answer_lengths_too_and_names_each_workload(bench_run):
    result = json.loads(bench_run[0].stdout)
    assert result["workload"] == "plan_cap" and "capped at 4 tokens" in result["workload_description"]
    at = result["training_lengths"]
    assert at["workload"] == "training_lengths" and "drawn from its assistant turns" in at["description"]
    assert len(at["caps"]) == 3 and all(1 <= c <= 4 for c in at["caps"]), "drawn caps, held to --max-tokens"
    assert at["naive_s"] > 0 and at["suite_s"] > 0 and at["prefill_tokens_suite"] < at["prefill_tokens_naive"]
    lengths = result["answer_lengths"]
    assert lengths["source"].endswith("demo-training") and lengths["turns"] > 40
    assert lengths["p50"] <= lengths["p90"] <= lengths["p99"] <= lengths["max"]
    assert "bench at training lengths naive 3/3" in bench_run[0].stderr


def test_bench_computes_fewer_prefill_tokens_than_naive(bench_run):
    result = json.loads(bench_run[0].stdout)
    assert result["prefill_tokens_suite"] < result["prefill_tokens_naive"]
    assert result["prefill_tokens_naive"] - result["prefill_tokens_suite"] == 2 * result["shared_prefix_tokens"]


def test_bench_also_times_the_server_path_side_by_side(bench_run):
    """The same 3 queries to one mlx_lm.server: one at a time, then 2 at a time, in the same run."""
    r = json.loads(bench_run[0].stdout)
    server = r["server"]
    assert (server["queries"], server["concurrency"], server["max_tokens"]) == (3, 2, 4)
    assert server["sequential_s"] > 0 and server["concurrent_s"] > 0 and server["errors"] == 0
    assert server["sequential_completion_tokens"] == server["concurrent_completion_tokens"] == 3 * 4
    assert "mlx_lm.server" in server["command"] and " --model " in server["command"] and server["startup_s"] > 0
    assert server["stop_s"] is not None and server["versions"]["mlx-lm"]
    assert Path(server["log"]).is_file()
    from punie_gates.checks.bench import summary

    assert "mlx_lm.server: sequential" in summary(r)


def test_summary_line_reads_the_figures(bench_run):
    from punie_gates.checks.bench import summary

    r = json.loads(bench_run[0].stdout)
    line = summary(r)
    assert f"naive {r['naive_s']:.1f} s, suite {r['suite_s']:.1f} s: speedup {r['speedup']:.2f}x" in line
    assert f"prefill {r['prefill_tokens_naive']:,} vs {r['prefill_tokens_suite']:,} tokens" in line
    assert f"outputs differ {r['outputs_differ']}/3, verdicts differ {r['verdicts_differ']}/3" in line
    assert line.startswith("plan's cap: ") and "; at the training data's answer lengths (caps " in line


def test_bench_shows_progress_on_stderr_only(bench_run):
    proc, _ = bench_run
    assert "[punie-gates] bench naive 3/3" in proc.stderr
    assert "[punie-gates] bench suite 3/3" in proc.stderr
    assert "[punie-gates]" not in proc.stdout


@pytest.mark.parametrize("argv", [["--max-tokens", "0"], ["--gen-batch-size", "0"], ["--limit", "0"]])
def test_bench_refuses_bad_numbers(argv, capsys):
    from punie_gates.commands.bench import main

    assert main(["--candidate", "demo", *argv]) == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_bench_names_a_bad_query_file(tmp_path, capsys):
    from punie_gates.commands.bench import main

    bad = tmp_path / "queries.toml"
    bad.write_text("[[query]]\nid = 1\n", encoding="utf-8")
    assert main(["--candidate", "demo", "--queries", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err


# Progress lines ------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_is_throttled_but_always_shows_completion():
    lines, clock = [], Clock()
    progress = progress_printer(lines.append, interval=2.0, clock=clock)
    for done in range(1, 11):
        clock.now += 0.5
        progress("train", done, 10, loss=1.0 / done)
    # first call, then every 2 s (4 calls of 0.5 s), then the completing call
    assert [line.split()[2] for line in lines] == ["1/10", "5/10", "9/10", "10/10"]
    assert "loss=0.1 " in lines[-1] + " " and "ETA" not in lines[-1]
    assert "ETA 2s" in lines[1]  # 4 steps in 2 s, 5 to go


def test_progress_line_format():
    line = format_line("generate", 10, 40, {"tokens_per_s": 41.2345}, eta_s=95)
    assert line == "[punie-gates] generate 10/40 (25%) tokens_per_s=41.23 ETA 1m35s"
    assert format_line("fuse", 3, 0, {}, eta_s=None) == "[punie-gates] fuse 3"
    assert [format_seconds(s) for s in (0, 59.6, 61, 3725)] == ["0s", "1m00s", "1m01s", "1h02m"]


def test_steps_are_throttled_independently():
    lines, clock = [], Clock()
    progress = progress_printer(lines.append, clock=clock)
    progress("convert", 1, 100)
    progress("generate", 1, 40)
    progress("convert", 2, 100)
    assert [line.split()[1] for line in lines] == ["convert", "generate"]


def test_null_progress_accepts_figures():
    assert null_progress("x", 1, 2, loss=0.5) is None


def test_make_progress_under_pytest(pytester):
    """Lines reach the terminal while a test runs (capture is bypassed); -q keeps quiet."""
    pytester.makeconftest(
        textwrap.dedent(
            """
            import pytest
            from punie_gates.plugin.terminal import make_progress

            @pytest.fixture
            def progress(pytestconfig):
                return make_progress(pytestconfig)
            """
        )
    )
    pytester.makepyfile(
        textwrap.dedent(
            """
            def test_long_step(progress):
                for done in range(1, 4):
                    progress("generate", done, 3, tokens_per_s=5.0)
            """
        )
    )
    shown = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    shown.assert_outcomes(passed=1)
    shown.stdout.fnmatch_lines(["*[[]punie-gates] generate 1/3 (33%) tokens_per_s=5*", "*generate 3/3 (100%)*"])
    quiet = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    quiet.assert_outcomes(passed=1)
    assert "[punie-gates]" not in quiet.stdout.str()


def test_make_progress_without_a_terminal_reporter_is_silent():
    class PluginManager:
        def get_plugin(self, name):
            return None

    class Config:
        pluginmanager = PluginManager()

        def get_verbosity(self):
            return 0

    assert make_progress(Config()) is null_progress
