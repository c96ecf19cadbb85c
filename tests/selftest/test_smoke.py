"""Gate 1's logic: the memory guard, 5-bit quantization, loading, and the smoke check."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from punie_gates.checks.smoke import check_defines_function, extract_code, run_smoke
from punie_gates.errors import MemoryBudgetError
from punie_gates.model import demo
from punie_gates.model.candidate import CandidateError, resolve_candidate
from punie_gates.model.folder import quantization_bits, stored_bits
from punie_gates.model.loading import load_model
from punie_gates.model.quantize import ensure_bits
from punie_gates.model.sizes import check_memory_budget, estimate_memory_gb

# -- the smoke check on strings -----------------------------------------------

PRIME = '''def is_prime(n: int) -> bool:
    """True when n is prime."""
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n**0.5) + 1))
'''


@pytest.mark.parametrize(
    "answer",
    [
        f"Here is a function:\n\n```python\n{PRIME}```\n\nIt tries every divisor up to the square root.",
        PRIME,
        f"```py\n{PRIME}```",
        f"Sure.\n```\n{PRIME}```",
        f"```python\n{PRIME}",  # the budget cut the closing fence, the function is whole
        f"```bash\npip install nothing\n```\n```python\n{PRIME}```",
        "```python\nclass Primes:\n    def check(self, n):\n        return n > 1 and all(n % d for d in range(2, n))\n```",
    ],
)
def test_a_real_function_passes(answer):
    check = check_defines_function(answer)
    assert check.ok, check.reason
    assert check.functions


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("A prime number has exactly two divisors, so check each one in turn.", "does not parse"),
        ("Aktiv Aktiv Aktiv cú cú stattdessen", "does not parse"),
        ("```python\ndef is_prime(n):\n    if n < 2\n        return False\n```", "does not parse: line 2"),
        ("```python\nprint(all(7 % d for d in range(2, 7)))\n```", "defines no function"),
        ("```python\ndef is_prime(n):\n    pass\n```", "only stub functions"),
        ('```python\ndef is_prime(n):\n    """Check n."""\n    ...\n```', "only stub functions"),
        ("", "no code"),
        ("prime", "defines no function"),  # a bare name parses as Python; it is still no function
    ],
)
def test_prose_broken_or_empty_code_fails(answer, reason):
    check = check_defines_function(answer)
    assert not check.ok
    assert reason in check.reason


def test_extract_code_prefers_the_python_block():
    text = "```text\nnot code\n```\nthen\n```python\nx = 1\n```"
    assert extract_code(text) == "x = 1\n"
    assert extract_code("no fences at all") == "no fences at all"


# -- the memory guard ---------------------------------------------------------


def _fake_model(folder: Path, tensors: dict[str, tuple[str, list[int]]], config: dict, truncate: int = 0) -> Path:
    """A model folder whose safetensors header declares `tensors`; the data is a sparse hole."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text("{}")
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        nbytes = count * {"BF16": 2, "F16": 2, "U32": 4, "F32": 4}[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header).encode()
    with (folder / "model.safetensors").open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob)
        fh.truncate(8 + len(blob) + offset - truncate)  # sparse: no GBs are written
    return folder


def _huge_bf16(folder: Path, truncate: int = 0) -> Path:
    # 24B parameters in bfloat16: 48 GB declared, a few KB on disk.
    layer = ("BF16", [5120, 117_184])  # a multiple of the group size, as every real layer is
    tensors = {f"model.layers.{i}.mlp.weight": layer for i in range(40)}
    return _fake_model(folder, tensors, {"model_type": "mistral3", "torch_dtype": "bfloat16"}, truncate)


def test_memory_guard_refuses_a_48gb_model_on_a_24gb_budget(tmp_path):
    folder = _huge_bf16(tmp_path / "huge")
    assert (folder / "model.safetensors").stat().st_blocks * 512 < 1_000_000  # really sparse
    with pytest.raises(MemoryBudgetError) as err:
        check_memory_budget(folder, 24.0, label="candidate 'huge'")
    message = str(err.value)
    assert "candidate 'huge'" in message and "budget is 24 GB" in message and "would swap" in message
    assert 48 < estimate_memory_gb(folder) < 60


def test_the_same_model_at_5_bits_fits_20gb(tmp_path):
    folder = _huge_bf16(tmp_path / "huge")
    assert stored_bits(folder) == 16
    estimate = check_memory_budget(folder, 20.0, bits=5)
    assert 15 < estimate < 20  # ~16.5 GB of 5-bit weights plus the overhead


def test_a_truncated_download_is_named(tmp_path):
    folder = _huge_bf16(tmp_path / "cut", truncate=1000)
    with pytest.raises(CandidateError, match=r"truncated: .*interrupted download"):
        estimate_memory_gb(folder)


def test_quantization_bits_reads_mixed_recipes():
    assert quantization_bits({}) == frozenset()
    assert quantization_bits({"quantization": {"group_size": 64, "bits": 5}}) == {5}
    mixed = {
        "quantization": {"group_size": 64, "bits": 4, "model.layers.0.mlp.down_proj": {"bits": 6, "group_size": 64}}
    }
    assert quantization_bits(mixed) == {4, 6}


# -- Gate 1 on the demo ---------------------------------------------------------


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "punie-demo-cache"  # shared with test_demo.py


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "punie-work"


@pytest.fixture(scope="session")
def demo_candidate(demo_cache):
    return resolve_candidate("demo", cache_dir=demo_cache, offline=True, need_weights=True)


@pytest.fixture(scope="session")
def loaded_demo(demo_candidate, work_dir):
    return load_model(demo_candidate, work_dir=work_dir, memory_budget_gb=20.0, bits=5)


def test_demo_is_quantized_to_5_bits_and_loads_within_budget(loaded_demo, demo_candidate):
    assert loaded_demo.is_demo and loaded_demo.name == "demo"
    assert (loaded_demo.bits, loaded_demo.source_bits, loaded_demo.quantized_by_suite) == (5, 32, True)
    assert loaded_demo.source_path == demo_candidate.path and loaded_demo.path != demo_candidate.path
    assert 0 < loaded_demo.peak_memory_gb < 20.0
    assert 0 < loaded_demo.disk_gb < 0.1
    # The quantized folder keeps the candidate's tokenizer files byte for byte.
    for name in ("tekken.json", "tokenizer.json", "chat_template.jinja", demo.MARKER):
        assert (loaded_demo.path / name).read_bytes() == (demo_candidate.path / name).read_bytes()
    assert type(loaded_demo.tokenizer._tokenizer).__name__ == "MistralCommonBackend"


def test_quantized_model_is_cached_and_a_5bit_model_is_used_as_is(loaded_demo, demo_candidate, work_dir):
    again = ensure_bits(demo_candidate.path, work_dir, 5)
    assert (again.path, again.cached, again.seconds) == (loaded_demo.path, True, 0.0)
    as_is = ensure_bits(loaded_demo.path, work_dir, 5)
    assert (as_is.path, as_is.quantized_by_suite, as_is.source_bits) == (loaded_demo.path, False, 5)


def test_an_8bit_model_is_dequantized_then_quantized_to_5(demo_candidate, tmp_path):
    eight = ensure_bits(demo_candidate.path, tmp_path, bits=8)
    assert json.loads((eight.path / "config.json").read_text())["quantization"]["bits"] == 8
    five = ensure_bits(eight.path, tmp_path, bits=5)
    config = json.loads((five.path / "config.json").read_text())
    assert (five.source_bits, quantization_bits(config)) == (8, {5})


def test_demo_smoke_fails_quoting_its_gibberish(loaded_demo):
    result = run_smoke(loaded_demo.model, loaded_demo.tokenizer, max_tokens=8)
    assert not result.passed
    assert result.generated_tokens == 8 and result.output.strip()
    message = result.failure_message()
    assert "expected Python that parses and defines a function" in message
    assert repr(result.output[:300])[1:-1] in message
    assert result.figures()["smoke_passed"] is False


def test_a_tiny_budget_refuses_before_loading(demo_candidate, work_dir):
    with pytest.raises(MemoryBudgetError, match=r"candidate 'demo'.*budget is 0.1 GB"):
        load_model(demo_candidate, work_dir=work_dir, memory_budget_gb=0.1, bits=5)


# -- the gate module end to end, on the demo ----------------------------------------


def test_gate1_on_the_demo_passes_load_and_memory_and_fails_the_smoke(
    pytester, repo_root, demo_cache, work_dir, loaded_demo, monkeypatch
):
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    gates = pytester.mkdir("gates")
    shutil.copy(repo_root / "tests" / "gates" / "test_gate1_load.py", gates)
    toml = (repo_root / "data" / "gates.toml").read_text().replace("smoke_max_tokens = 200", "smoke_max_tokens = 8")
    assert "smoke_max_tokens = 8" in toml
    (pytester.path / "gates.toml").write_text(toml)
    monkeypatch.setenv("PUNIE_GATES_CACHE", str(demo_cache))  # the session's demo: a warm lookup
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "gates/test_gate1_load.py", "--candidate", "demo", "--run-all-gates",
        "--gates", "gates.toml", "--work-dir", str(work_dir), "--report-dir", "reports",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=2)
    report = json.loads((pytester.path / "reports" / "gate-report.json").read_text())
    gate1 = report["gates"]["gate1"]
    assert gate1["status"] == "failed"
    figures = gate1["figures"]
    assert (figures["bits"], figures["source_bits"], figures["quantized_by_suite"], figures["is_demo"]) == (
        5,
        32,
        True,
        True,
    )
    assert figures["smoke_passed"] is False and figures["smoke_output"]
    assert figures["load_seconds"] > 0 and figures["peak_memory_gb"] < figures["memory_budget_gb"]
    reasons = " ".join(gate1["reasons"])
    assert "expected Python that parses and defines a function" in reasons and "demo candidate" in reasons


def test_fixtures_give_the_demo_its_tokenizer_and_no_baseline(pytester, demo_candidate, demo_cache, monkeypatch):
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    pytester.makepyfile(
        test_fixtures=(
            "def test_it(candidate, candidate_tokenizer, baseline_model):\n"
            "    assert (candidate.is_demo, candidate.source, candidate.family) == (True, 'demo', 'mistral')\n"
            "    assert candidate_tokenizer.convert_tokens_to_ids('[ARGS]') == 32\n"
            "    assert baseline_model is None\n"
        )
    )
    monkeypatch.setenv("PUNIE_GATES_CACHE", str(demo_cache))  # warm: the session's demo
    pytester.runpytest("-p", "no:cacheprovider", "--candidate", "demo").assert_outcomes(passed=1)


def test_an_unusable_candidate_errors_every_test_that_needs_it_with_the_reason(pytester, tmp_path):
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    pytester.makepyfile(test_fixtures="def test_a(candidate_model):\n    pass\n\ndef test_b(candidate):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--candidate", str(tmp_path / "missing-model"))
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*CandidateError: candidate '*missing-model': no such folder*"])
