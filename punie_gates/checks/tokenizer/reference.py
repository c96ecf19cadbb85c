"""The independent reference for parity: mistral-common's encoder for the candidate's own vocabulary."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from punie_gates.formats.tekken import ReferenceUnavailable, reference_tokenizer, tekken_from_tokenizer_json
from punie_gates.model.tokenizer import backend_of, tekken_path_of


@dataclass(frozen=True)
class Reference:
    """mistral-common's own encoder for the candidate's vocabulary: what every rendering
    path of the candidate is compared with."""

    finetuning: Any
    """MistralTokenizer in "finetuning" mode: training records (ending with an assistant turn)."""
    serving: Any
    """The same vocabulary in "test" mode: generation prompts (ending with a user or tool turn)."""
    source: str
    """Where the vocabulary came from, said for people."""
    version: str
    """The tokenizer version it encodes, and why that one."""
    independent: bool
    """False when mlx-lm's own backend is this very encoder (MistralCommonBackend on the same tekken.json)."""

    def figure(self) -> dict[str, Any]:
        return {"source": self.source, "version": self.version, "independent_of_mlx_lm": self.independent}


@lru_cache(maxsize=4)
def _reference(path: Path, mtime_ns: int, size: int, mode: str = "finetuning"):
    """mistral-common's tokenizer for a tekken file in `mode`, loaded once (~1 s).

    `mtime_ns` and `size` only key the cache: a rewritten file is loaded again.
    """
    return reference_tokenizer(path, validation_mode=mode)


def load_reference(path: Path, mode: str):
    path = Path(path).resolve()
    stat = path.stat()
    try:
        return _reference(path, stat.st_mtime_ns, stat.st_size, mode)
    except Exception as exc:  # mistral-common's own validation of the file
        raise ReferenceUnavailable(f"mistral-common cannot load {path.name}: {type(exc).__name__}: {exc}") from None


@lru_cache(maxsize=2)
def _built_reference(tokenizer_json: Path, mtime_ns: int, size: int) -> tuple[Any, Any, str]:
    """(finetuning, serving, version) of a tekken reference built from a tokenizer.json."""
    try:
        doc = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReferenceUnavailable(f"{tokenizer_json.name} cannot be read: {exc}") from None
    tekken, version = tekken_from_tokenizer_json(doc)
    with tempfile.TemporaryDirectory(prefix="punie-gates-reference-") as scratch:
        path = Path(scratch) / "tekken.json"  # mistral-common recognises a tekken file by its name
        path.write_text(json.dumps(tekken), encoding="utf-8")
        try:
            return reference_tokenizer(path, "finetuning"), reference_tokenizer(path, "test"), version
        except Exception as exc:
            raise ReferenceUnavailable(
                f"mistral-common rejects the vocabulary of {tokenizer_json.name}: {exc}"
            ) from None


def build_reference(folder: Path, tokenizer=None) -> Reference:
    """mistral-common's encoder for the candidate's own vocabulary.

    Its tekken.json when one is shipped; otherwise a tekken reference built from its
    tokenizer.json's vocabulary and special tokens (formats.tekken), for the version
    those tokens imply. Raises ReferenceUnavailable saying why none can be built.
    `tokenizer` (mlx-lm's) only says whether the reference is independent of it.
    """
    folder = Path(folder)
    tekken = tekken_path_of(folder)
    mistral_backend = tokenizer is not None and type(backend_of(tokenizer)).__name__ == "MistralCommonBackend"
    if tekken is not None:
        try:
            version = str(json.loads(tekken.read_text(encoding="utf-8"))["config"]["version"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReferenceUnavailable(f"tekken.json has no readable config.version ({exc})") from None
        return Reference(
            finetuning=load_reference(tekken, "finetuning"),
            serving=load_reference(tekken, "test"),
            source="the candidate's tekken.json",
            version=f"{version} (tekken.json config.version)",
            independent=not mistral_backend,
        )
    tokenizer_json = folder / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise ReferenceUnavailable("the folder ships neither tekken.json nor tokenizer.json to take a vocabulary from")
    stat = tokenizer_json.stat()
    finetuning, serving, version = _built_reference(tokenizer_json.resolve(), stat.st_mtime_ns, stat.st_size)
    return Reference(
        finetuning=finetuning,
        serving=serving,
        source="tokenizer.json's vocabulary and special tokens (no tekken.json shipped)",
        version=version,
        independent=True,
    )


def reference_ids(records: Sequence[Mapping], reference: Reference, *, serving: bool = False) -> list[list[int] | str]:
    """mistral-common's ids for each record (or why it rejects it), to compare several paths with."""
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    encoder = reference.serving if serving else reference.finetuning
    out: list[list[int] | str] = []
    for record in records:
        try:
            messages, tools = list(record["messages"]), record.get("tools") or None
            request = ChatCompletionRequest.from_openai(messages=messages, tools=tools)
            out.append(list(encoder.encode_chat_completion(request).tokens))
        except Exception as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    return out
