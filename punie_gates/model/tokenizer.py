"""Loading a candidate's tokenizer as mlx-lm does, and rendering conversations to ids.

One place for both modes Mistral's backend needs: finetuning (training
conversations end with an assistant turn) and serving (generation prompts end
with a user or tool turn). Reads tokenizer and config files only, never weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from mlx_lm.tokenizer_utils import TokenizerWrapper


# How mlx-lm must load a Mistral tokenizer for training. transformers 5 picks
# MistralCommonBackend when the folder holds tekken.json *and* a config.json whose
# model_type is a Mistral one (mistral3, ministral3, ...); in its default "test"
# mode that backend refuses conversations ending with an assistant turn, which
# is every training example. Other backends ignore `mode`.
FINETUNING_TOKENIZER_CONFIG: Mapping[str, Any] = {"mode": "finetuning", "trust_remote_code": False}


def training_tokenizer_config(folder: Path) -> dict[str, Any]:
    """How the suite's training loads a folder's tokenizer: as `mlx_lm.lora` does in production's
    environment (mlx-lm without mistral-common), i.e. `TokenizersBackend` from tokenizer.json
    rendering with the shipped chat template, even where tekken.json sits beside it
    (`mistral_format=False`, which transformers' AutoTokenizer reads and pops). Without a
    tokenizer.json only Mistral's backend can load the folder: finetuning mode then."""
    if (Path(folder) / "tokenizer.json").is_file():
        return {"mistral_format": False, "trust_remote_code": False}
    return dict(FINETUNING_TOKENIZER_CONFIG)


@dataclass(frozen=True)
class Rendered:
    """Token ids of records rendered as mlx-lm's ChatDataset renders them."""

    ids: tuple[tuple[int, ...] | None, ...]  # None where rendering failed
    errors: tuple[str, ...]


def load_candidate_tokenizer(path: Path, *, serving: bool = False) -> TokenizerWrapper:
    """The candidate's tokenizer as mlx-lm must load it for LoRA training.

    `serving=True` loads the default mode instead, the one generation prompts
    (ending with a user turn) render with; both modes encode alike.

    A `TokenizerWrapper` from `mlx_lm.utils.load_tokenizer` with
    FINETUNING_TOKENIZER_CONFIG. Reads tokenizer and config files only, never
    weights, never remote code, never the network. Under MistralCommonBackend
    this finetuning-mode tokenizer in turn refuses conversations ending with a
    user or tool turn (generation prompts): serving needs the default mode.
    """
    from mlx_lm.utils import load_tokenizer

    path = Path(path)
    if not path.is_dir():
        # mlx-lm would treat a missing folder as a Hub repo id and download it.
        raise FileNotFoundError(f"{path}: not a local folder; Gate 0 reads a local candidate folder")
    if not any((path / name).is_file() for name in ("tokenizer.json", "tekken.json", "tokenizer.model")):
        raise FileNotFoundError(f"{path}: no tokenizer.json, tekken.json or tokenizer.model in the candidate folder")
    extra = {"trust_remote_code": False} if serving else dict(FINETUNING_TOKENIZER_CONFIG)
    return load_tokenizer(path, tokenizer_config_extra=extra)


def backend_of(tokenizer):
    """The transformers tokenizer inside an mlx-lm TokenizerWrapper (or itself)."""
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    return tokenizer._tokenizer if isinstance(tokenizer, TokenizerWrapper) else tokenizer


def tekken_path_of(folder: Path) -> Path | None:
    path = Path(folder) / "tekken.json"
    return path if path.is_file() else None


def shipped_template(folder: Path) -> str | None:
    """Which file holds the chat template a tokenizers backend renders with (transformers
    reads chat_template.jinja first, then chat_template.json, then tokenizer_config.json)."""
    import json

    folder = Path(folder)
    for name in ("chat_template.jinja", "chat_template.json"):
        if (folder / name).is_file():
            return name
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return "tokenizer_config.json (chat_template)" if isinstance(config, dict) and config.get("chat_template") else None


def _template_text(folder: Path) -> str | None:
    import json

    name = shipped_template(folder)
    if name is None:
        return None
    if name == "chat_template.jinja":
        return (folder / name).read_text(encoding="utf-8")
    doc = json.loads((folder / name.split(" ")[0]).read_text(encoding="utf-8"))
    template = doc.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    return template if isinstance(template, str) else None


def load_tokenizers_backend(folder: Path) -> TokenizerWrapper:
    """The folder's tokenizer as mlx-lm loads it when no tekken.json sits beside it: the
    generic tokenizers backend with the shipped chat template, which is also what
    transformers' pipelines, LM Studio and llama.cpp conversions render with.

    The folder is viewed through a scratch folder of links without tekken.json (so
    transformers does not pick MistralCommonBackend). A folder with tekken.json and a
    template but no tokenizer.json gets transformers' own conversion of the tekken file,
    carrying that template. Loads tokenizer files only.
    """
    import shutil
    import tempfile

    from mlx_lm.utils import load_tokenizer

    folder = Path(folder).resolve()
    with tempfile.TemporaryDirectory(prefix="punie-gates-template-") as scratch:
        view = Path(scratch)
        if (folder / "tokenizer.json").is_file():
            for path in folder.iterdir():
                if path.is_file() and path.name != "tekken.json" and path.suffix != ".safetensors":
                    (view / path.name).symlink_to(path)
        else:
            from transformers.integrations.mistral import convert_tekken_tokenizer

            template = _template_text(folder)
            convert_tekken_tokenizer(str(folder / "tekken.json"), chat_template=template).save_pretrained(str(view))
            if (folder / "config.json").is_file():
                shutil.copyfile(folder / "config.json", view / "config.json")
        return load_tokenizer(view, tokenizer_config_extra={"trust_remote_code": False})


def render_prompt_ids(tokenizer, messages: Sequence[Mapping], tools: Sequence[Mapping] | None) -> list[int]:
    """Ids of a generation prompt, rendered as mlx_lm.server renders a chat request."""
    ids = tokenizer.apply_chat_template(
        list(messages), tools=list(tools) if tools else None, add_generation_prompt=True, return_dict=False
    )
    return [int(i) for i in ids]


def render_ids(tokenizer, messages: Sequence[Mapping], tools: Sequence[Mapping] | None) -> list[int]:
    """Ids for one conversation, rendered the way mlx_lm.tuner.datasets.ChatDataset does."""
    ids = tokenizer.apply_chat_template(list(messages), tools=list(tools) if tools else None, return_dict=False)
    return [int(i) for i in ids]


def record_name(label: str | Sequence[str], index: int) -> str:
    """`label[index]`, or the index-th of per-record names (e.g. "train.jsonl line 7")."""
    return f"{label}[{index}]" if isinstance(label, str) else label[index]


def render_records(records: Sequence[Mapping], tokenizer, label: str | Sequence[str] = "record") -> Rendered:
    ids: list[tuple[int, ...] | None] = []
    errors: list[str] = []
    for index, record in enumerate(records):
        try:
            ids.append(tuple(render_ids(tokenizer, record["messages"], record.get("tools"))))
        except Exception as exc:  # any template or validation error is the finding
            ids.append(None)
            errors.append(f"{record_name(label, index)}: the tokenizer cannot render it: {type(exc).__name__}: {exc}")
    return Rendered(tuple(ids), tuple(errors))
