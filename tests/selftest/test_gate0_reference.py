"""Gate 0 against an independent reference, on every rendering path, with the detokenizer.

Each wrong verdict Gate 0 once gave has a candidate folder here, built at test time from
the demo's tokenizer files and the project's fixtures (fixtures/templates/):

- a v13 template with a stray `</s>` before `[TOOL_CALLS]`, shipped without tekken.json
  (so mlx-lm trains with it): Gate 0 fails, naming the position;
- a v3-style JSON-array template shipped beside a v13 tekken.json (mlx-lm renders with
  tekken.json): Gate 0 passes with a flag naming the template and the position;
- a tokenizer.json without its ByteLevel decoder: Gate 0 fails naming the decoder;
- Punie-shaped data whose tool messages are wrapped in `<tool_response>`: it converts
  whole and Gate 0 passes, its stream judged where it is served (no U+FFFD flag from the
  suite's own MistralCommonBackend).

The unit tests call punie_gates.checks.tokenizer directly; the end-to-end ones run
`pytest -m gate0` on each folder through pytester and read gate-report.json, the
markdown report and the terminal.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from punie_gates.answering.environment import ServingEnvironment
from punie_gates.answering.plan import ServingPlan
from punie_gates.checks import tokenizer as tc
from punie_gates.formats import tekken
from punie_gates.inputs import paths
from punie_gates.model import tokenizer as mt
from punie_gates.model.demo import ensure_demo_model

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = paths.fixtures_dir() / "templates"
MISTRAL_CONFIG = {"model_type": "mistral3", "text_config": {"model_type": "ministral3"}}
STRAY = "{%- if message['tool_calls'] %}\n                {{- eos_token }}\n            {%- endif %}"


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    return ensure_demo_model(tmp_path_factory.getbasetemp() / "punie-demo-cache")  # shared with other modules


def _candidate(
    root: Path,
    name: str,
    demo: Path,
    *,
    tekken_json: bool,
    template: str | None = None,
    tokenizer_json: dict | None = None,
) -> Path:
    """A tokenizer-only candidate folder: the demo's files, a Mistral config, no weights."""
    folder = root / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(MISTRAL_CONFIG), encoding="utf-8")
    shutil.copyfile(demo / "tokenizer_config.json", folder / "tokenizer_config.json")
    if tokenizer_json is None:
        (folder / "tokenizer.json").symlink_to(demo / "tokenizer.json")
    else:
        (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
    if tekken_json:
        (folder / "tekken.json").symlink_to(demo / "tekken.json")
    (folder / "chat_template.jinja").write_text(
        template if template is not None else (demo / "chat_template.jinja").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    return folder


@pytest.fixture(scope="session")
def folders(tmp_path_factory, demo_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate0-candidates")
    stray = (TEMPLATES / "v13-stray-eos.jinja").read_text(encoding="utf-8")
    assert STRAY in stray, "the fixture's fault moved: update STRAY"
    no_decoder = json.loads((demo_dir / "tokenizer.json").read_text(encoding="utf-8"))
    assert no_decoder.pop("decoder")["type"] == "ByteLevel"
    return {
        "stray-eos": _candidate(root, "stray-eos", demo_dir, tekken_json=False, template=stray),
        "stray-eos-fixed": _candidate(
            root, "stray-eos-fixed", demo_dir, tekken_json=False, template=stray.replace(STRAY, "")
        ),
        "v3-beside-tekken": _candidate(
            root,
            "v3-beside-tekken",
            demo_dir,
            tekken_json=True,
            template=(TEMPLATES / "v3-json-array.jinja").read_text(encoding="utf-8"),
        ),
        "no-decoder": _candidate(root, "no-decoder", demo_dir, tekken_json=False, tokenizer_json=no_decoder),
        "official-no-tekken": _candidate(root, "official-no-tekken", demo_dir, tekken_json=False),
    }


def _records() -> tuple[list[dict], list[str]]:
    messages, tools = tc.canonical_conversation()
    return [{"messages": messages, "tools": tools}], ["the canonical conversation"]


# -- the reference -----------------------------------------------------------------------


def test_a_reference_built_from_tokenizer_json_is_the_tekken_file(demo_dir, folders):
    """Without tekken.json the reference comes from the candidate's own tokenizer.json:
    for the demo it is byte for byte the vocabulary of its tekken.json."""
    built, _ = tekken.tekken_from_tokenizer_json(json.loads((demo_dir / "tokenizer.json").read_text()))
    shipped = json.loads((demo_dir / "tekken.json").read_text())
    size = built["config"]["default_vocab_size"] - built["config"]["default_num_special_tokens"]
    assert [v["token_bytes"] for v in built["vocab"]] == [v["token_bytes"] for v in shipped["vocab"][:size]]
    assert built["config"]["pattern"] == shipped["config"]["pattern"] and built["config"]["version"] == "v13"
    assert [t["token_str"] for t in built["special_tokens"]] == [t["token_str"] for t in shipped["special_tokens"]]
    reference = tc.build_reference(folders["official-no-tekken"])
    assert reference.independent and reference.source.startswith("tokenizer.json's vocabulary")
    records, names = _records()
    tokenizer = mt.load_candidate_tokenizer(folders["official-no-tekken"])
    assert tc.check_parity(records, tokenizer, reference, label=names).mismatched == 0


def test_mlx_lm_on_tekken_json_is_not_an_independent_reference(demo_dir):
    reference = tc.build_reference(demo_dir, mt.load_candidate_tokenizer(demo_dir))
    assert not reference.independent and reference.version.startswith("v13")


@pytest.mark.parametrize(
    ("specials", "version"),
    [
        ({"[ARGS]", "[CALL_ID]", "[TOOL_CALLS]"}, "v13"),
        ({"[SYSTEM_PROMPT]", "[TOOL_CALLS]"}, "v7"),
        ({"[TOOL_CALLS]"}, "v3"),
    ],
)
def test_the_version_follows_the_vocabulary(specials, version):
    assert tekken.infer_version(specials)[0] == version


def test_no_reference_is_said_not_skipped(tmp_path):
    with pytest.raises(tekken.ReferenceUnavailable, match="neither tekken.json nor tokenizer.json"):
        tc.build_reference(tmp_path)
    with pytest.raises(tekken.ReferenceUnavailable, match="not tekken's byte-level BPE"):
        tekken.tekken_from_tokenizer_json({"model": {"type": "Unigram"}})
    with pytest.raises(tekken.ReferenceUnavailable, match="none of Mistral's control tokens"):
        tekken.infer_version({"<|im_start|>"})


# -- rendering paths -----------------------------------------------------------------------


def test_a_stray_eos_before_tool_calls_is_caught_where_it_is(folders):
    records, names = _records()
    for name, expected in (("stray-eos", 1), ("stray-eos-fixed", 0)):
        tokenizer = mt.load_candidate_tokenizer(folders[name])
        parity = tc.check_parity(records, tokenizer, tc.build_reference(folders[name]), label=names)
        assert parity.mismatched == expected, (name, parity.examples)
    (first,) = tc.check_parity(
        records,
        mt.load_candidate_tokenizer(folders["stray-eos"]),
        tc.build_reference(folders["stray-eos"]),
        label=names,
    ).examples
    assert first.startswith("the canonical conversation: ids differ at position ")
    assert "mlx-lm has '</s>' where mistral-common has '[TOOL_CALLS]'" in first


def test_the_template_beside_tekken_json_is_the_tokenizers_backend_path(folders):
    folder = folders["v3-beside-tekken"]
    assert mt.shipped_template(folder) == "chat_template.jinja"
    assert type(mt.backend_of(mt.load_candidate_tokenizer(folder))).__name__ == "MistralCommonBackend"
    view = mt.load_tokenizers_backend(folder)
    assert type(mt.backend_of(view)).__name__ == "TokenizersBackend"
    records, names = _records()
    parity = tc.check_parity(records, view, tc.build_reference(folder), label=names, path_name="chat_template.jinja")
    assert (
        parity.mismatched == 1 and "chat_template.jinja has '[' where mistral-common has 'execute" in parity.examples[0]
    )


def test_serving_prompts_end_with_the_turn_the_model_answers():
    records, names = _records()
    (prompt,), (label,) = tc.serving_prompts(records, names)
    assert [m["role"] for m in prompt["messages"]] == ["system", "user", "assistant", "tool"]
    assert label == "the canonical conversation (its prompt)"
    many, _ = tc.serving_prompts(records * 10, names * 10, limit=3)
    assert len(many) == 3


# -- ids back to text --------------------------------------------------------------------


def _served_as_is(folder: Path, *, mistral_common: bool = False) -> ServingPlan:
    """A serving plan serving `folder` as is from this interpreter: with mistral-common hidden (the
    default server), or importable (a production environment that has it installed)."""
    return ServingPlan(folder, folder, ServingEnvironment(sys.executable, not mistral_common), {}, {})


# Characters spanning several tokens, one ending a reply, and ASCII text.
SPANNING = [("check", "print('✓ 3 passed')"), ("end", "All tests pass ✓"), ("ascii", "def f(x):\n\treturn x  # ok\n")]


def test_a_missing_decoder_is_named_where_it_is_served(folders):
    (report,) = tc.check_served_round_trip(_served_as_is(folders["no-decoder"]), list(tc.DETOKENIZER_PROBES.items()))
    assert report.backend == "TokenizersBackend" and report.decode_wrong_count == len(tc.DETOKENIZER_PROBES)
    assert report.cause.startswith("tokenizer.json has no decoder") and "Ġ" in report.cause
    assert "got 'HelloĠ" in report.decode_wrong[0] or "Ġ" in report.decode_wrong[0]


def test_the_tokenizers_backend_round_trips_every_probe(folders):
    tokenizer = mt.load_candidate_tokenizer(folders["official-no-tekken"], serving=True)
    report = tc.check_round_trip(tokenizer, list(tc.DETOKENIZER_PROBES.items()), folders["official-no-tekken"])
    assert (report.decode_wrong_count, report.stream_wrong_count, report.replaced) == (0, 0, 0), report.figure()
    assert (report.detokenizer, report.decoder) == ("BPEStreamingDetokenizer", "ByteLevel")


def test_mistral_common_backend_streams_multi_token_characters_as_replacement(demo_dir):
    """With tekken.json and mistral-common importable (the suite's own process), mlx-lm streams
    through MistralCommonBackend's pieces: a character spanning several tokens comes out as
    U+FFFD (and at the end of a reply the detokenizer raises). tokenizer.decode is exact; ASCII
    text streams exactly."""
    tokenizer = mt.load_candidate_tokenizer(demo_dir, serving=True)
    report = tc.check_round_trip(tokenizer, SPANNING, demo_dir)
    assert report.backend == "MistralCommonBackend" and report.decode_wrong_count == 0
    assert (report.stream_wrong_count, report.replaced, report.stream_raised_count) == (0, 2, 1)
    assert report.replaced_chars == ("✓",) and "\\ufffd" in report.replaced_first[0].encode("unicode_escape").decode()


def test_the_demo_streams_exactly_where_it_is_served(demo_dir):
    """The false flag Gate 0 once raised on every Mistral candidate: it measured the suite's own
    load (above), but the server runs where mistral-common is absent, loads TokenizersBackend
    for the same folder and streams those characters exactly."""
    (report,) = tc.check_served_round_trip(_served_as_is(demo_dir), SPANNING)
    assert (report.backend, report.detokenizer, report.decoder) == (
        "TokenizersBackend",
        "BPEStreamingDetokenizer",
        "ByteLevel",
    )
    assert (report.decode_wrong_count, report.stream_wrong_count, report.replaced) == (0, 0, 0), report.figure()


def test_a_server_with_mistral_common_is_measured_as_it_streams(demo_dir):
    """Where the serving environment has mistral-common (production's own, --serve-python), the
    served path is MistralCommonBackend and the damage is counted there: the check still sees it."""
    (report,) = tc.check_served_round_trip(_served_as_is(demo_dir, mistral_common=True), SPANNING)
    assert report.backend == "MistralCommonBackend" and report.decode_wrong_count == 0
    assert (report.stream_wrong_count, report.replaced, report.stream_raised_count) == (0, 2, 1)


def test_the_server_tool_parser_is_read_from_the_tokenizer(demo_dir, folders):
    with_tekken = tc.tool_parsing_of(mt.load_candidate_tokenizer(demo_dir, serving=True))
    assert (with_tekken.tokenizer_class, with_tekken.tool_parser) == ("MistralCommonBackend", None)
    without = tc.tool_parsing_of(mt.load_candidate_tokenizer(folders["official-no-tekken"], serving=True))
    assert (without.tool_parser, without.tool_call_start) == ("mlx_lm.tool_parsers.mistral", "[TOOL_CALLS]")


# -- end to end: pytest -m gate0 ------------------------------------------------------------


@pytest.fixture
def gate0(pytester, demo_dir, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("PUNIE_GATES_CACHE", str(demo_dir.parents[1]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    shutil.copytree(REPO / "tests" / "gates", pytester.path / "gates")
    small = pytester.path / "small-training"
    small.mkdir()
    for name, n in (("train.jsonl", 6), ("valid.jsonl", 2)):
        lines = (paths.fixtures_dir() / "demo-training" / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (small / name).write_text("".join(lines[:n]), encoding="utf-8")

    def run(candidate: str, data: Path = small):
        reports = pytester.path / f"reports-{Path(candidate).name}"
        result = pytester.runpytest(
            "-p",
            "no:cacheprovider",
            "gates",
            "-m",
            "gate0",
            "--candidate",
            candidate,
            "--training-data",
            str(data),
            "--report-dir",
            str(reports),
        )
        doc = json.loads((reports / "gate-report.json").read_text())
        return result, doc, (reports / "gate-report.md").read_text(encoding="utf-8")

    return run


def test_gate0_fails_the_stray_eos_template_mlx_lm_would_train_with(gate0, folders):
    result, doc, markdown = gate0(str(folders["stray-eos"]))
    gate = doc["gates"]["gate0"]
    assert (gate["status"], doc["verdict"], doc["stopped_at"]) == ("failed", "NO_GO", "gate0")
    (reason,) = [r for r in gate["reasons"] if "mistral-common" in r]
    # the reason says it in the first line, within what the terminal and the report table show
    headline = "mlx-lm has '</s>' where mistral-common has '[TOOL_CALLS]' at position 101 of the canonical"
    assert reason.startswith(f"AssertionError: {headline}")
    assert "(TokenizersBackend, chat_template.jinja)" in reason.splitlines()[0]
    assert headline in markdown
    result.stdout.fnmatch_lines(["*gate0*FAILED*mlx-lm has '</s>' where mistral-common has*"])
    assert gate["figures"]["parity"]["independent_of_mlx_lm"] is True


def test_gate0_fails_a_v3_template_beside_a_v13_tekken_json_on_the_serving_path(gate0, folders):
    """The suite's own mlx-lm renders with tekken.json (flagged template), but production's
    environment (no mistral-common) renders with the v3 template: Gate 0 fails on that path."""
    result, doc, markdown = gate0(str(folders["v3-beside-tekken"]))
    gate = doc["gates"]["gate0"]
    assert (gate["status"], doc["verdict"]) == ("failed", "NO_GO"), gate["reasons"]
    assert gate["figures"]["parity"]["mismatches"] == 0  # the suite's own (MistralCommonBackend) path is right
    (flag,) = [f for f in gate["flags"] if f.startswith("chat_template.jinja differs")]
    assert flag.startswith(
        "chat_template.jinja differs from mistral-common's reference: chat_template.jinja has "
        "'[' where mistral-common has 'execute' at position "
    )
    assert "judged on the serving path" in flag and "\n" not in flag
    (reason,) = [r for r in gate["reasons"] if "on the path production uses" in r]
    assert "'[' where mistral-common has 'execute'" in reason and "the chat template renders differently" in reason
    assert gate["figures"]["serving_parity"]["prompts"]["cause"] == "template"


def test_gate0_fails_a_tokenizer_without_its_decoder(gate0, folders):
    result, doc, markdown = gate0(str(folders["no-decoder"]))
    gate = doc["gates"]["gate0"]
    assert (gate["status"], doc["verdict"]) == ("failed", "NO_GO")
    (reason,) = [r for r in gate["reasons"] if "decoder" in r]
    assert reason.startswith("AssertionError: tokenizer.json has no decoder, so byte-level pieces come back as text")
    assert "Ġ" in reason.splitlines()[0]
    assert "tokenizer.json has no decoder" in markdown
    result.stdout.fnmatch_lines(["*gate0*FAILED*tokenizer.json has no decoder*"])
    assert gate["figures"]["parity"]["mismatches"] == 0  # the ids are right: only the text is not


def test_gate0_passes_wrapped_tool_messages_and_judges_the_stream_where_served(gate0, demo_dir):
    """The demo passes without the U+FFFD flag Gate 0 once raised on every Mistral candidate: the
    stream is judged on what the server loads (TokenizersBackend, mistral-common hidden); the
    suite's own MistralCommonBackend, which does stream 🎉 as U+FFFD, is reported and not judged."""
    result, doc, markdown = gate0("demo", paths.fixtures_dir() / "tool-role-wrapped")
    gate = doc["gates"]["gate0"]
    assert gate["status"] == "passed" and result.ret == 0, gate["reasons"]
    figures = gate["figures"]
    assert figures["train_conversion"]["rejected"] == 0 and figures["valid_conversion"]["rejected"] == 0
    assert figures["parity"]["mismatches"] == 0 and figures["template_parity"]["mismatches"] == 0
    plan = figures["serving_plan"]  # production's environment: mlx-lm without mistral-common
    assert (plan["tokenizer_class"], plan["tool_parser"], plan["change"]) == (
        "TokenizersBackend",
        "mlx_lm.tool_parsers.mistral",
        None,
    )
    assert figures["serving_parity"]["records"]["mismatches"] == 0
    assert figures["serving_parity"]["prompts"]["mismatches"] == 0
    assert not any("tool parser" in f for f in gate["flags"])
    assert not any("U+FFFD" in f for f in gate["flags"]), gate["flags"]
    served, in_suite = figures["detokenizer"], figures["detokenizer_in_suite"]
    assert served["backend"] == "TokenizersBackend" and "mistral-common hidden" in served["served"]
    assert (served["stream_replacement_chars"], served["stream_wrong"], served["decode_wrong"]) == (0, 0, 0)
    assert (in_suite["backend"], in_suite["judged"], in_suite["stream_replacement_chars"]) == (
        "MistralCommonBackend",
        False,
        1,
    )
