"""Ids back to text: tokenizer.decode and mlx-lm's streaming detokenizer must give every text back.

Measured where it is served: `check_served_round_trip` has the serving probe stream the
texts in the serving environment, on the folder the serving plan serves (what
mlx_lm.server streams replies with); `check_round_trip` makes the same measurement on a
tokenizer loaded in this process. Both are judged by `judge_round_trip`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from punie_gates.answering.serving_probe import round_trip
from punie_gates.model.tokenizer import backend_of


@dataclass(frozen=True)
class DetokenizerReport:
    """Ids back to text, through tokenizer.decode and mlx-lm's streaming detokenizer."""

    backend: str
    """The transformers tokenizer class."""
    detokenizer: str
    """mlx-lm's streaming detokenizer class (what mlx_lm.server and generate stream with)."""
    decoder: str
    """tokenizer.json's decoder, as its file says (or why there is none)."""
    checked: int
    """Texts round-tripped."""
    decode_wrong: tuple[str, ...]
    """Texts tokenizer.decode does not give back, first difference shown (all of them counted)."""
    decode_wrong_count: int
    """How many texts tokenizer.decode gets wrong."""
    stream_wrong: tuple[str, ...]
    """Texts the streaming detokenizer corrupts beyond multi-token characters, described."""
    stream_wrong_count: int
    """How many."""
    replaced: int
    """Texts whose only streaming damage is to non-ASCII characters (U+FFFD where a character
    spans several tokens, or the detokenizer raising at the end of one)."""
    replaced_chars: tuple[str, ...]
    """Those characters (the most frequent first)."""
    replaced_first: tuple[str, ...]
    """The first such texts, described."""
    stream_raised: tuple[str, ...] = ()
    """Of `replaced`, the texts the streaming detokenizer raised on (a server request would fail), described."""
    stream_raised_count: int = 0
    """How many."""

    @property
    def cause(self) -> str:
        """The decoder problem behind a wrong decode, when the files show one."""
        return "" if self.decoder.startswith(("ByteLevel", "mistral-common")) else self.decoder

    def figure(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "detokenizer": self.detokenizer,
            "decoder": self.decoder,
            "texts": self.checked,
            "decode_wrong": self.decode_wrong_count,
            "stream_wrong": self.stream_wrong_count,
            "stream_raised": self.stream_raised_count,
            "stream_replacement_chars": self.replaced,
            "replaced_chars": list(self.replaced_chars),
            "first": list(
                self.decode_wrong[:1] + self.stream_wrong[:1] + self.stream_raised[:1] + self.replaced_first[:1]
            ),
        }


# -- ids back to text ------------------------------------------------------------------

# What every reply is made of: spaces, newlines, indentation, tabs, code, and the
# non-ASCII Punie's own code prints (its typed tools report with ✓ and ✗).
DETOKENIZER_PROBES: Mapping[str, str] = {
    "spaces": "Hello, my name is Punie.  Two  spaces, then   three.",
    "newlines": "first line\nsecond line\n\nafter a blank line\n",
    "indentation": "def is_prime(n: int) -> bool:\n    if n < 2:\n        return False\n    return all(n % d for d in range(2, n))\n",
    "tabs": "name\tcount\n\tindented with a tab\r\nwindows line end",
    "code": 'result = typecheck("src/")\nprint(f"{result.error_count} errors: {[e.message for e in result.errors]}")',
    "non_ascii": "✓ 3 passed, ✗ 1 failed: café, naïve, Grüß dich, 中文, 🎉",
}


def assistant_texts(records: Sequence[Mapping], names: Sequence[str]) -> list[tuple[str, str]]:
    """(where, text) of every assistant turn: its text and its calls' arguments as the
    model writes them (JSON), i.e. what a reply streams."""
    out = []
    for record, name in zip(records, names):
        for index, message in enumerate(record["messages"]):
            if message.get("role") != "assistant":
                continue
            calls = [
                json.dumps(c["function"]["arguments"], ensure_ascii=False) for c in message.get("tool_calls") or ()
            ]
            text = (message.get("content") or "") + "".join(calls)
            if text:
                out.append((f"{name} messages[{index}]", text))
    return out


def _difference(expected: str, got: str) -> str:
    at = next((k for k, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    lo = max(0, at - 12)
    return f"at character {at}: expected {expected[lo : at + 12]!r}, got {got[lo : at + 12]!r}"


def _decoder_description(backend_class: str, folder: Path | None) -> str:
    if backend_class == "MistralCommonBackend":
        return "mistral-common's own decode (MistralCommonBackend)"
    path = Path(folder) / "tokenizer.json" if folder is not None else None
    if path is None or not path.is_file():
        return "no tokenizer.json to read a decoder from"
    stat = path.stat()
    return _decoder_of(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _decoder_of(path: str, mtime_ns: int, size: int) -> str:
    """The decoder a tokenizer.json file names (cached by file and version: a real one is ~17 MB of JSON)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "tokenizer.json cannot be read"
    decoder = doc.get("decoder")
    if not decoder:
        return (
            "tokenizer.json has no decoder, so byte-level pieces come back as text (Ġ for a space, Ċ for a "
            "newline); add its ByteLevel decoder"
        )
    if decoder.get("type") != "ByteLevel" and "ByteLevel" in json.dumps(doc.get("pre_tokenizer")):
        return f"tokenizer.json's decoder is {decoder.get('type')}, not the ByteLevel decoder its pre-tokenizer needs"
    return str(decoder.get("type"))


def _ascii(text: str) -> str:
    return "".join(c for c in text if ord(c) < 128)


def texts_to_stream(*groups: Sequence[tuple[str, str]]) -> list[str]:
    """Every text of the groups, and the ASCII part of each text that has other characters (to
    tell damage confined to those characters from any other), each once: what to measure."""
    texts = [t for group in groups for _, t in group]
    return list(dict.fromkeys(texts + [_ascii(t) for t in texts if _ascii(t) != t]))


def _leading_spaces_only(text: str, streamed: str) -> bool:
    """Whether `streamed` is `text` less some of its leading spaces (mlx-lm trims the start of a reply)."""
    return streamed == text or (text.endswith(streamed) and not text[: len(text) - len(streamed)].strip(" "))


def check_round_trip(
    tokenizer, texts: Sequence[tuple[str, str]], folder: Path | None = None, limit: int = 3
) -> DetokenizerReport:
    """Encode each text, then decode it with tokenizer.decode and stream it through mlx-lm's
    detokenizer (`tokenizer` is an mlx-lm TokenizerWrapper loaded in this process); both must
    give it back exactly. The measurement is the serving probe's own (`serving_probe.round_trip`);
    `check_served_round_trip` makes it in the serving environment instead."""
    backend = backend_of(tokenizer)
    found = round_trip(tokenizer, texts_to_stream(texts))
    return judge_round_trip(
        texts,
        found,
        backend=type(backend).__name__,
        detokenizer=type(tokenizer.detokenizer).__name__,
        decoder=_decoder_description(type(backend).__name__, folder),
        limit=limit,
    )


def check_served_round_trip(plan, *groups: Sequence[tuple[str, str]], limit: int = 3) -> tuple[DetokenizerReport, ...]:
    """`check_round_trip` on the path production serves: the serving probe, run by the plan's
    interpreter (answering.plan.ServingPlan) on the folder it serves, loads the tokenizer as
    mlx_lm.server does there and streams each text; one report per group of texts. What the
    plan's own probe already streamed (`plan_serving(..., round_trip=texts_to_stream(...))`)
    is read from it; anything else is probed now."""
    measured = texts_to_stream(*groups)
    found = dict(plan.served.get("round_trip") or {})
    probed = plan.served
    if missing := [t for t in measured if t not in found]:
        probed = plan.environment.probe({"folder": str(plan.served_folder), "round_trip": missing})
        found |= probed["round_trip"]
    backend = str(probed.get("tokenizer_class"))
    return tuple(
        judge_round_trip(
            group,
            found,
            backend=backend,
            detokenizer=str(probed.get("detokenizer")),
            decoder=_decoder_description(backend, plan.served_folder),
            limit=limit,
        )
        for group in groups
    )


def judge_round_trip(
    texts: Sequence[tuple[str, str]],
    found: Mapping[str, Mapping[str, str]],
    *,
    backend: str,
    detokenizer: str,
    decoder: str,
    limit: int = 3,
) -> DetokenizerReport:
    """The report on `texts` from what decode and the stream gave back (`found`: text -> the serving
    probe's `round_trip` entry, the ASCII parts of non-ASCII texts included).

    Leading spaces the streaming detokenizer drops at the start of a reply are mlx-lm's
    convention and not counted. A stream difference that vanishes once the text's
    non-ASCII characters are taken out (U+FFFD in place of a character that spans
    several tokens, or the detokenizer raising at the end of one) is counted apart
    (`replaced`): it corrupts only those characters. Anything else is `stream_wrong`.
    """
    decode_wrong: list[str] = []
    stream_wrong: list[str] = []
    replaced_first: list[str] = []
    raised: list[str] = []
    counts = [0, 0, 0, 0]
    chars: Counter[str] = Counter()

    def streams_right(text: str) -> tuple[bool, str, str | None]:
        got = found[text]
        if "raised" in got:
            return False, f"{got['raised']} (at the end of {text[-24:]!r})", None
        streamed = got["streamed"]
        return _leading_spaces_only(text, streamed), f"the stream {_difference(text, streamed)}", streamed

    for where, text in texts:
        decoded = found[text]["decoded"]
        if decoded != text:
            counts[0] += 1
            if len(decode_wrong) < limit:
                decode_wrong.append(f"{where}: tokenizer.decode {_difference(text, decoded)}")
        right, why, streamed = streams_right(text)
        if right:
            continue
        if _ascii(text) != text and streams_right(_ascii(text))[0]:
            counts[2] += 1
            if streamed is None:  # it raised on the character that ends the text
                chars.update(c for c in text[::-1][:1] if ord(c) >= 128)
            else:
                chars.update(c for c in text if ord(c) >= 128 and c not in streamed)
            if " raised " in why:
                counts[3] += 1
                if len(raised) < limit:
                    raised.append(f"{where}: {why}")
            elif len(replaced_first) < limit:
                replaced_first.append(f"{where}: {why}")
        else:
            counts[1] += 1
            if len(stream_wrong) < limit:
                stream_wrong.append(f"{where}: {why}")
    return DetokenizerReport(
        backend=backend,
        detokenizer=detokenizer,
        decoder=decoder,
        checked=len(texts),
        decode_wrong=tuple(decode_wrong),
        decode_wrong_count=counts[0],
        stream_wrong=tuple(stream_wrong),
        stream_wrong_count=counts[1],
        replaced=counts[2],
        replaced_chars=tuple(c for c, _ in chars.most_common(8)),
        replaced_first=tuple(replaced_first),
        stream_raised=tuple(raised),
        stream_raised_count=counts[3],
    )
