"""Gate 1's smoke test: a plain coding request, greedy, and the answer must be Python
that parses and defines a function with a real body (analysed with `ast`, never run)."""

from __future__ import annotations

import ast
import re
import time
from dataclasses import dataclass
from typing import Any

from punie_gates.answering.prompts import render_prompt

SMOKE_PROMPT = "Write a Python function that checks whether a number is prime."


SMOKE_MAX_TOKENS = 200


QUOTE_CHARS = 300  # how much of a failed answer an assertion quotes


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str) -> str:
    """The first ```python block (else the first fenced block), else the whole text.

    A block the generation budget cut short (no closing fence) runs to the end.
    """
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    for lang, body in blocks:
        if lang in ("python", "py", "python3"):
            return body
    for lang, body in blocks:
        if not lang:
            return body
    return text


@dataclass(frozen=True)
class CodeCheck:
    ok: bool
    reason: str  # why not, or what was found
    functions: tuple[str, ...]  # names of the functions with a real body


def check_defines_function(text: str) -> CodeCheck:
    """Does `text` hold Python that parses and defines a function with a real body?

    A body of only a docstring, `pass` or `...` does not count: a stub is not
    a function that checks anything.
    """
    code = extract_code(text).strip()
    if not code:
        return CodeCheck(False, "no code in the answer", ())
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return CodeCheck(False, f"the code does not parse: line {exc.lineno}: {exc.msg}", ())
    defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    real = tuple(n.name for n in defined if not _is_stub(n.body))
    if real:
        return CodeCheck(True, f"defines {', '.join(real)}", real)
    if defined:
        return CodeCheck(False, f"only stub functions ({', '.join(n.name for n in defined)}): no body", ())
    return CodeCheck(False, "parses, but defines no function", ())


def _is_stub(body: list[ast.stmt]) -> bool:
    for stmt in body:
        if isinstance(stmt, ast.Pass):
            continue
        if (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Constant)
            and (isinstance(stmt.value.value, str) or stmt.value.value is Ellipsis)
        ):
            continue
        return False
    return True


@dataclass(frozen=True)
class SmokeResult:
    prompt: str
    output: str
    check: CodeCheck
    prompt_tokens: int
    generated_tokens: int
    finish_reason: str | None
    seconds: float
    peak_memory_gb: float  # during generation, the resident model included

    @property
    def passed(self) -> bool:
        return self.check.ok

    def failure_message(self) -> str:
        quoted = self.output[:QUOTE_CHARS] + ("..." if len(self.output) > QUOTE_CHARS else "")
        return (
            f"smoke test: expected Python that parses and defines a function for {self.prompt!r}; "
            f"found: {self.check.reason} ({self.generated_tokens} tokens, finish: {self.finish_reason}). "
            f"Output (first {QUOTE_CHARS} chars): {quoted!r}"
        )

    def figures(self) -> dict[str, Any]:
        return {
            "smoke_passed": self.passed,
            "smoke_reason": self.check.reason,
            "smoke_output": self.output[:QUOTE_CHARS],
            "smoke_prompt_tokens": self.prompt_tokens,
            "smoke_generated_tokens": self.generated_tokens,
            "smoke_finish_reason": self.finish_reason,
            "smoke_seconds": round(self.seconds, 2),
            "smoke_peak_memory_gb": round(self.peak_memory_gb, 3),
        }


def run_smoke(model, tokenizer, prompt: str = SMOKE_PROMPT, max_tokens: int = SMOKE_MAX_TOKENS) -> SmokeResult:
    """Greedy answer to `prompt` through the chat template, judged by check_defines_function."""
    import mlx.core as mx
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    ids = render_prompt(tokenizer, [{"role": "user", "content": prompt}], None)
    mx.reset_peak_memory()
    started = time.perf_counter()
    text, last = "", None
    for last in stream_generate(model, tokenizer, ids, max_tokens=max_tokens, sampler=make_sampler(temp=0.0)):
        text += last.text
    seconds = time.perf_counter() - started
    return SmokeResult(
        prompt=prompt,
        output=text,
        check=check_defines_function(text),
        prompt_tokens=len(ids),
        generated_tokens=last.generation_tokens if last else 0,
        finish_reason=last.finish_reason if last else None,
        seconds=seconds,
        peak_memory_gb=mx.get_peak_memory() / 1e9,
    )
