"""Options as users type them: every `pytest ...` line of the README, docs/ and the
workflows, run as written from the checkout.

The plugin is a `pytest11` entry point (pyproject.toml), so its options are known before
pytest reads the command line: `--candidate PATH` and `--training-data PATH` work with a
space, not only with `=`. Paths are replaced by the project's fixtures, hub ids and
`$CANDIDATE` by a local demo folder, and a run that would take too long is cut: gate runs
to `-m gate0` (they must reach a verdict), the self-tests to `--collect-only` (they must
collect cleanly). Lines that make the same run once cut and substituted (the same options
in another order or in `--opt=V` form, a workflow's line and a doc's) run once; a failure
names every place that shows it. The report folder goes to a scratch folder through
PUNIE_GATES_REPORT_DIR, so the checkout is left as it was.

Until the checkout is installed again (`pip install -e .`), the environment's
punie-gates may predate the entry point; the tests then put a distribution declaring
pyproject.toml's own entry point on the path, which is what the install does.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from test_docs import WORKFLOWS, _code_lines, _workflow_lines

from punie_gates.inputs import paths
from punie_gates.model.demo import ensure_demo_model

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
TIMEOUT = 900


def _pytest_lines() -> list[tuple[str, list[str]]]:
    """Every `pytest ...` command the docs show: in shell blocks, in inline code (`pytest -m
    gate0`, also across a line break) and in the workflows' run steps; each run once (the
    places that show the same run are kept in SAME_RUN, for the failure message)."""
    found, first = [], {}
    sources = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        inline = [" ".join(span.split()) for span in re.findall(r"`(pytest(?:\s[^`]*)?)`", text)]
        sources.append((path, _code_lines(text) + inline))
    sources += [(path, _workflow_lines(path)) for path in WORKFLOWS]
    for path, lines in sources:
        for line in lines:
            words = shlex.split(line, comments=True)
            while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value prefixes
                words = words[1:]
            if words[:1] != ["pytest"] or "..." in words:
                continue
            where = f"{path.relative_to(REPO)}: {line}"
            # Lines that run the same once cut and substituted run once: `pytest` and `pytest -m
            # gate0`; `--opt=V` and `--opt V`, options in another order (pytest's argparse reads
            # them alike); a workflow's line and a doc's line with the same options. Of such lines
            # the one with the fewest `--opt=V` runs (the space form is the one that needs the
            # entry point); the `=` form still runs in lines that have no space-form twin
            # (docs/ci.md's `--candidate=...`).
            cut = _same_run(_as_run(words, Path("D"), Path("T"), Path("R"))[0])
            if cut not in first:
                first[cut] = len(found)
                found.append((where, words))
                continue
            at = first[cut]
            kept = found[at]
            if sum("=" in w for w in words) < sum("=" in w for w in kept[1]):
                found[at], where = (where, words), kept[0]
                SAME_RUN[found[at][0]] = SAME_RUN.pop(kept[0], [])
            SAME_RUN.setdefault(found[at][0], []).append(where)
    return found


SAME_RUN: dict[str, list[str]] = {}


def _same_run(args: list[str]) -> tuple[tuple[str, ...], ...]:
    """The run `args` make, whatever their order and `=` or space form: each option with its
    values, sorted (an argument before any option, such as a test path, leads its own group)."""
    groups: list[list[str]] = []
    for arg in args:
        flag, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if flag.startswith("-") or not groups:
            groups.append([flag])
        else:
            groups[-1].append(flag)
        if eq:
            groups[-1].append(value)
    return tuple(sorted(tuple(g) for g in groups))


def _declared_entry_point() -> tuple[str, str]:
    ((name, value),) = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"][
        "pytest11"
    ].items()
    return name, value


def _installed_entry_point() -> bool:
    name, value = _declared_entry_point()
    return any(ep.name == name and ep.value == value for ep in importlib.metadata.entry_points(group="pytest11"))


@pytest.fixture(scope="module")
def entry_point_site(tmp_path_factory) -> Path:
    """A folder holding a distribution that declares pyproject.toml's pytest11 entry point."""
    site = tmp_path_factory.mktemp("site")
    dist = site / "punie_gates_entry_point-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: punie-gates-entry-point\nVersion: 0\n")
    name, value = _declared_entry_point()
    (dist / "entry_points.txt").write_text(f"[pytest11]\n{name} = {value}\n")
    return site


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return ensure_demo_model(tmp_path_factory.getbasetemp() / "punie-demo-cache")


@pytest.fixture(scope="module")
def small_training(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small-training")
    for name, n in (("train.jsonl", 6), ("valid.jsonl", 2)):
        lines = (paths.fixtures_dir() / "demo-training" / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (folder / name).write_text("".join(lines[:n]), encoding="utf-8")
    return folder


def _pytest() -> list[str]:
    script = Path(sys.executable).with_name("pytest")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pytest"]


def _run(
    args: list[str], site: Path | None, reports: Path, demo: Path, extra_env: dict | None = None, cwd: Path = REPO
):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(site) if site else "", env.get("PYTHONPATH", "")]))
    env |= {"HF_HUB_OFFLINE": "1", "PUNIE_GATES_CACHE": str(demo.parents[1]), "PUNIE_GATES_REPORT_DIR": str(reports)}
    env |= extra_env or {}
    for name in ("PUNIE_GATES_CANDIDATE", "PUNIE_GATES_TRAINING_DATA", "PYTEST_ADDOPTS", "PYTEST_PLUGINS"):
        if not (extra_env and name in extra_env):
            env.pop(name, None)
    return subprocess.run([*_pytest(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def _as_run(words: list[str], demo: Path, data: Path, reports: Path) -> tuple[list[str], bool]:
    """The documented words with paths substituted, cut to what a self-test can afford;
    and whether the run is collect-only."""
    out = []
    for word in words[1:]:
        flag, eq, value = word.partition("=") if word.startswith("--") else ("", "", word)
        if eq:
            out.append(f"{flag}={_substitute(value, demo, data, reports, flag)}")
        else:
            out.append(_substitute(word, demo, data, reports, out[-1] if out else ""))
    collect_only = any(w.startswith("tests/selftest") for w in out)
    if collect_only:
        out.append("--collect-only")
    elif "-m" not in out:
        out[:0] = ["-m", "gate0"]
    return out, collect_only


def _substitute(value: str, demo: Path, data: Path, reports: Path, option: str) -> str:
    if option in ("--candidate", "--baseline") and value != "demo":
        return str(demo)  # a hub id, ~/models/..., or $CANDIDATE: the local demo folder
    if option == "--training-data":
        return str(data)
    if option == "--report-dir":
        return str(reports)
    return value


PYTEST_LINES = _pytest_lines()


@pytest.fixture(scope="module")
def documented_run(entry_point_site, demo_dir, small_training, tmp_path_factory):
    """Runs documented words (`pytest ...`) as the tests below do, each run once per module:
    (the process, the arguments run, whether collect-only, its report folder). The space-form
    test reads the same run as the README's `pytest -m gate0 --candidate ... --training-data ...`
    instead of paying for it twice."""
    done: dict[tuple, tuple] = {}

    def run(words: list[str]):
        key = _same_run(_as_run(words, Path("D"), Path("T"), Path("R"))[0])
        if key not in done:
            reports = tmp_path_factory.mktemp("reports") / "reports"
            args, collect_only = _as_run(words, demo_dir, small_training, reports)
            # The defaults stand for things the docs assume: the default candidate is a hub id (the
            # local demo folder stands in), the default training data is Punie's data/phase27_merged
            # (which the workflows fetch and name in PUNIE_GATES_TRAINING_DATA): the small fixture.
            env = {"PUNIE_GATES_CANDIDATE": str(demo_dir), "PUNIE_GATES_TRAINING_DATA": str(small_training)}
            done[key] = (_run(args, entry_point_site, reports, demo_dir, env), args, collect_only, reports)
        return done[key]

    return run


@pytest.mark.parametrize(("where", "words"), PYTEST_LINES, ids=[w for w, _ in PYTEST_LINES])
def test_every_documented_pytest_command_runs_as_written(where, words, documented_run):
    if any(w.startswith("--html") for w in words):
        pytest.importorskip("pytest_html", reason="the README shows --html for when pytest-html is installed")
    proc, args, collect_only, reports = documented_run(words)
    also = "".join(f"\nthe same run is documented in {w}" for w in SAME_RUN.get(where, ()))
    shown = f"{where}{also}\nran: pytest {shlex.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "unrecognized arguments" not in proc.stderr, shown
    # pytest's rootdir and config are the checkout's, whatever paths the options carry
    assert f"rootdir: {REPO}" in proc.stdout and "configfile: pyproject.toml" in proc.stdout, shown
    if collect_only:
        assert proc.returncode == 0 and re.search(r"\d+ tests? collected", proc.stdout), shown
        return
    doc = json.loads((reports / "gate-report.json").read_text())
    assert doc["verdict"] == "INCOMPLETE" and doc["gates"]["gate0"]["status"] == "passed", shown
    assert proc.returncode == 0 and "VERDICT: INCOMPLETE" in proc.stdout, shown


def test_space_form_works_from_the_checkout_as_a_new_user_types_it(demo_dir, small_training, documented_run, tmp_path):
    """The Done-when line, `pytest -m gate0 --candidate PATH --training-data PATH`: with
    the entry point it reaches Gate 0's verdict; without it (the plugin loaded by the root
    conftest only) pytest took PATH for a test path and never knew the option. The run is the
    README's line of the same words (documented_run): its flags name candidate and data, so
    the environment's defaults the documented runs set change nothing."""
    proc, args, _, reports = documented_run(["pytest", "-m", "gate0", "--candidate", "C", "--training-data", "T"])
    assert args == ["-m", "gate0", "--candidate", str(demo_dir), "--training-data", str(small_training)]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the checkout's config, as with the `=` form: testpaths, so only the gates are collected
    assert f"rootdir: {REPO}" in proc.stdout and "testpaths: tests/gates" in proc.stdout, proc.stdout[:2000]
    assert re.search(
        r"collected (\d+) items / \1 deselected|collected \d+ items / \d+ deselected / \d+ selected", proc.stdout
    )
    assert "tests/selftest" not in proc.stdout
    doc = json.loads((reports / "gate-report.json").read_text())
    assert doc["gates"]["gate0"]["figures"]["training_data"] == str(small_training)
    assert doc["gates"]["gate0"]["figures"]["candidate"] == demo_dir.name
    if _installed_entry_point():
        return  # this environment already has it installed: nothing to compare with
    before = _run(args, None, tmp_path / "without", demo_dir)
    assert before.returncode != 0 and "unrecognized arguments: --candidate" in before.stderr, before.stderr[-2000:]


def test_the_plugin_is_registered_once_by_entry_point_and_conftest(entry_point_site, demo_dir, tmp_path):
    """The root conftest.py still names the plugin (for checkouts not reinstalled); the entry
    point's name is the module's, so pytest finds it registered and does not add it again
    (pluggy would refuse a second registration under another name)."""
    import shutil

    checkout = tmp_path / "checkout"  # the checkout's own conftest.py and pyproject.toml, and a probe
    checkout.mkdir()
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copyfile(REPO / name, checkout / name)
    assert "punie_gates.plugin" in (checkout / "conftest.py").read_text()
    probe = checkout / "test_probe.py"
    probe.write_text(
        "import punie_gates.plugin as plugin\n"
        "def test_once(pytestconfig):\n"
        "    pm = pytestconfig.pluginmanager\n"
        "    mine = [p for p in pm.get_plugins() if p is plugin]\n"
        "    assert len(mine) == 1 and pm.get_name(plugin) == 'punie_gates.plugin'\n"
        "    assert pm.has_plugin('punie_gates.plugin.fixtures')\n"
        "    # --candidate PATH (a space): still this checkout's rootdir, config and addopts\n"
        f"    assert pytestconfig.rootpath == {str(checkout)!r} or str(pytestconfig.rootpath) == {str(checkout)!r}\n"
        "    assert pytestconfig.inipath.name == 'pyproject.toml'\n"
        "    assert pytestconfig.getini('testpaths') == ['tests/gates']\n"
        "    assert pytestconfig.option.strict_markers and not pm.has_plugin('cacheprovider')\n"
        "    print('REGISTERED-ONCE')\n"
    )
    # the entry point, the conftest's pytest_plugins and an explicit -p: one registration
    proc = _run(
        [str(probe), "-s", "-q", "-p", "punie_gates.plugin", "--candidate", str(demo_dir)],
        entry_point_site,
        tmp_path / "r",
        demo_dir,
        cwd=checkout,
    )
    assert proc.returncode == 0 and "REGISTERED-ONCE" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "already registered" not in proc.stderr
