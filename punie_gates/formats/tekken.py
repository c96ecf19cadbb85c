"""An offline, Devstral-compatible tekken tokenizer built from what mistral-common ships.

mistral-common carries `tekken_240911.json` (a v3 file, no `[ARGS]`). Laid out
as a v13 tokenizer with `[ARGS]`, `[CALL_ID]`, `[THINK]`, `[/THINK]` as control
tokens, its BPE reproduces Devstral Small 2's recorded ids. The ranks chosen for
the four added tokens are ours (FACTS.md): code must look them up, never assume
them. The untouched v3 layout, where `[ARGS]` is several pieces, is the ready
negative case for Gate 0.
"""

from __future__ import annotations

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
