"""An offline, Devstral-compatible tekken tokenizer built from what mistral-common ships.

mistral-common carries `tekken_240911.json` (a v3 file, no `[ARGS]`). Laid out
as a v13 tokenizer with `[ARGS]`, `[CALL_ID]`, `[THINK]`, `[/THINK]` as control
tokens, its BPE reproduces Devstral Small 2's recorded ids. The ranks chosen for
the four added tokens are ours (FACTS.md): code must look them up, never assume
them. The untouched v3 layout, where `[ARGS]` is several pieces, is the ready
negative case for Gate 0.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

# Ranks 0-19 as the shipped file orders them, then our ranks for the v13 extras.
_CONTROL_TOKENS = (
    "<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]",
    "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]", "[PREFIX]", "[MIDDLE]",
    "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]",
)  # fmt: skip
_V13_EXTRAS = {32: "[ARGS]", 33: "[CALL_ID]", 34: "[THINK]", 35: "[/THINK]"}
LAYOUTS = ("v13", "v3")


def shipped_tekken_path() -> Path:
    """The tekken vocabulary file inside the installed mistral-common."""
    path = resources.files("mistral_common") / "data" / "tekken_240911.json"
    return Path(str(path))


def tekken_document(layout: str = "v13") -> dict:
    """The shipped vocabulary as a tekken JSON document in the given layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown tekken layout {layout!r}; expected one of {LAYOUTS}")
    doc = json.loads(shipped_tekken_path().read_text(encoding="utf-8"))
    if layout == "v3":
        return doc
    n_special = doc["config"]["default_num_special_tokens"]
    names = {rank: tok for rank, tok in enumerate(_CONTROL_TOKENS)} | _V13_EXTRAS
    doc["special_tokens"] = [
        {"rank": rank, "token_str": names.get(rank, f"<SPECIAL_{rank}>"), "is_control": True}
        for rank in range(n_special)
    ]
    doc["config"]["version"] = "v13"
    doc.pop("image", None)  # text-only: the demo has no vision encoder
    return doc


def write_tekken(dest: Path, layout: str = "v13") -> Path:
    """Write `tekken.json` in `layout` to `dest` (a file path); deterministic bytes."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(tekken_document(layout), ensure_ascii=False, sort_keys=True)
    dest.write_text(text, encoding="utf-8")
    return dest


def reference_tokenizer(tekken_path: Path, validation_mode: str = "finetuning"):
    """mistral-common's own tokenizer for a tekken file: the reference encoding."""
    from mistral_common.protocol.instruct.validator import ValidationMode
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    return MistralTokenizer.from_file(str(tekken_path), mode=ValidationMode(validation_mode))


def official_chat_template(version: str = "v13") -> str:
    """The chat template mistral-common generates for a tokenizer version."""
    from mistral_common.integrations.chat_templates.template_generator import (
        TemplateConfig,
        build_chat_template,
    )
    from mistral_common.tokens.tokenizers.base import TokenizerVersion

    return build_chat_template(TemplateConfig(version=TokenizerVersion(version)))


def save_hf_tokenizer(tekken_path: Path, out_dir: Path, version: str = "v13") -> Path:
    """Convert a tekken file to a transformers tokenizer folder mlx-lm can load.

    Writes tokenizer.json, tokenizer_config.json and chat_template.jinja. The
    tekken file itself is not copied: whether it sits beside the model decides
    which tokenizer class transformers picks (see FACTS.md), so callers choose.
    """
    from transformers.integrations.mistral import convert_tekken_tokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = convert_tekken_tokenizer(str(tekken_path), chat_template=official_chat_template(version))
    tok.save_pretrained(str(out_dir))
    return out_dir


# -- a reference for a candidate that ships no tekken.json ------------------------------

# The newest tokenizer version each vocabulary marker implies (mistral-common's
# SpecialTokens). v11 and v13 share their control tokens; v13 is Devstral Small 2's and
# the one whose template writes no call ids, so a vocabulary with [ARGS] is judged as v13.
_VERSION_MARKERS = (
    ("[MODEL_SETTINGS]", "v15"),
    ("[ARGS]", "v13"),
    ("[SYSTEM_PROMPT]", "v7"),
    ("[TOOL_CALLS]", "v3"),
)


class ReferenceUnavailable(ValueError):
    """No mistral-common reference can be built from these files; the message says why."""


def infer_version(special_tokens: set[str] | frozenset[str]) -> tuple[str, str]:
    """(tokenizer version, why) implied by a vocabulary's control tokens.

    Raises ReferenceUnavailable when the vocabulary holds none of Mistral's tool
    markers, or implies v15, whose model-settings block needs a builder a vocabulary
    does not carry.
    """
    for marker, version in _VERSION_MARKERS:
        if marker in special_tokens:
            if version == "v15":
                raise ReferenceUnavailable(
                    f"the vocabulary has {marker}, a v15 tokenizer whose model-settings block only a "
                    "tekken.json can describe; ship the model's tekken.json"
                )
            why = f"its control tokens include {marker}"
            if version == "v13":
                why += " (v11 has the same tokens; v13 is Devstral Small 2's version)"
            return version, why
    raise ReferenceUnavailable("the vocabulary has none of Mistral's control tokens ([TOOL_CALLS], [INST], ...)")


def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte-to-unicode table reversed: the character a byte-level BPE writes for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


def tekken_from_tokenizer_json(doc: dict, version: str | None = None) -> tuple[dict, str]:
    """(a tekken document, the version and why) from a byte-level BPE tokenizer.json.

    The candidate's own vocabulary: control tokens are its special added tokens with
    the lowest ids (ranks 0..n-1, as tekken orders them), and every other id's piece is
    decoded from byte-level form into the bytes tekken ranks by id. The split pattern is
    tekken's own (the one in the tekken file mistral-common ships), not the
    tokenizer.json's: a wrong regex there is a known fault of published Mistral
    tokenizers, and the reference must not inherit it. Raises ReferenceUnavailable for
    a tokenizer that is not laid out that way (it could not have come from a tekken file).
    """
    model = doc.get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ReferenceUnavailable(f"tokenizer.json's model is {model.get('type')!r}, not tekken's byte-level BPE")
    pre = doc.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    split = next((s for s in steps if s.get("type") == "Split"), None)
    pattern = ((split or {}).get("pattern") or {}).get("Regex")
    if not pattern or not any(s.get("type") == "ByteLevel" for s in steps):
        raise ReferenceUnavailable(
            "tokenizer.json's pre-tokenizer is not a regex split followed by ByteLevel, as tekken's is"
        )
    specials = sorted((t["id"], t["content"]) for t in doc.get("added_tokens", ()) if t.get("special"))
    n_special = next((k for k, (i, _) in enumerate(specials) if i != k), len(specials))
    if n_special == 0:
        raise ReferenceUnavailable("tokenizer.json has no special tokens at ids 0, 1, 2, ... where tekken keeps them")
    names = {content for _, content in specials[:n_special]}
    if version is None:
        version, why = infer_version(names)
    else:
        why = "given"
    by_id = {i: piece for piece, i in model["vocab"].items()}
    size = max(max(by_id, default=-1), specials[-1][0]) + 1
    decoder = _byte_level_decoder()
    vocab = []
    for rank, token_id in enumerate(range(n_special, size)):
        piece = by_id.get(token_id)
        if piece is None:
            raise ReferenceUnavailable(
                f"tokenizer.json has no entry for id {token_id}: its ids are not tekken's dense ranks"
            )
        try:
            raw = bytes(decoder[c] for c in piece)
        except KeyError:
            raise ReferenceUnavailable(
                f"tokenizer.json piece {piece!r} (id {token_id}) is not byte-level text"
            ) from None
        vocab.append({"rank": rank, "token_bytes": base64.b64encode(raw).decode("ascii"), "token_str": None})
    tekken_pattern = json.loads(shipped_tekken_path().read_text(encoding="utf-8"))["config"]["pattern"]
    if pattern != tekken_pattern:
        why += "; its tokenizer.json split regex differs from tekken's, which the reference uses"
    document = {
        "config": {
            "pattern": tekken_pattern,
            "num_vocab_tokens": len(vocab),
            "default_vocab_size": size,
            "default_num_special_tokens": n_special,
            "version": version,
        },
        "vocab": vocab,
        "special_tokens": [
            {"rank": i, "token_str": content, "is_control": True} for i, content in specials[:n_special]
        ],
    }
    return document, f"{version} ({why})"
