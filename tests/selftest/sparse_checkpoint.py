"""Sparse safetensors checkpoints: real headers, zero-filled holes, no weights.

`write_sparse_checkpoint(folder, config)` writes the tensors a mistral3 config implies
(the text model, and a pixtral vision tower and projector when the config has a
vision_config) in the layout Mistral's published checkpoints use, split into shards.
The data regions are holes (`truncate`), so a 24B layout costs a few KB of disk while
every header-reading check sees the real names, dtypes, shapes and offsets.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path

DTYPE_BYTES = {"F8_E4M3": 1, "BF16": 2, "F16": 2, "F32": 4, "U32": 4}
FP8_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")  # fmt: skip


def text_tensors(text: dict, *, fp8: bool, prefix: str = "language_model.") -> dict[str, tuple[str, list[int]]]:
    hidden, layers = text["hidden_size"], text["num_hidden_layers"]
    heads, kv, head_dim = text["num_attention_heads"], text["num_key_value_heads"], text["head_dim"]
    mlp, vocab = text["intermediate_size"], text["vocab_size"]
    shapes = {
        "self_attn.q_proj": [heads * head_dim, hidden], "self_attn.k_proj": [kv * head_dim, hidden],
        "self_attn.v_proj": [kv * head_dim, hidden], "self_attn.o_proj": [hidden, heads * head_dim],
        "mlp.gate_proj": [mlp, hidden], "mlp.up_proj": [mlp, hidden], "mlp.down_proj": [hidden, mlp],
    }  # fmt: skip
    out = {f"{prefix}model.embed_tokens.weight": ("BF16", [vocab, hidden])}
    for i in range(layers):
        base = f"{prefix}model.layers.{i}"
        for name, shape in shapes.items():
            out[f"{base}.{name}.weight"] = ("F8_E4M3" if fp8 else "BF16", shape)
            if fp8:
                out[f"{base}.{name}.weight_scale_inv"] = ("BF16", [])
                out[f"{base}.{name}.activation_scale"] = ("BF16", [])
        out[f"{base}.input_layernorm.weight"] = ("BF16", [hidden])
        out[f"{base}.post_attention_layernorm.weight"] = ("BF16", [hidden])
    out[f"{prefix}model.norm.weight"] = ("BF16", [hidden])
    if not text.get("tie_word_embeddings"):
        out[f"{prefix}lm_head.weight"] = ("BF16", [vocab, hidden])
    return out


def vision_tensors(vision: dict, text_hidden: int, merge: int) -> dict[str, tuple[str, list[int]]]:
    hidden, mlp, layers = vision["hidden_size"], vision["intermediate_size"], vision["num_hidden_layers"]
    patch, channels = vision["patch_size"], vision["num_channels"]
    out = {
        "vision_tower.patch_conv.weight": ("BF16", [hidden, channels, patch, patch]),
        "vision_tower.ln_pre.weight": ("BF16", [hidden]),
    }
    for i in range(layers):
        base = f"vision_tower.transformer.layers.{i}"
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[f"{base}.attention.{name}.weight"] = ("BF16", [hidden, hidden])
        out[f"{base}.feed_forward.gate_proj.weight"] = ("BF16", [mlp, hidden])
        out[f"{base}.feed_forward.up_proj.weight"] = ("BF16", [mlp, hidden])
        out[f"{base}.feed_forward.down_proj.weight"] = ("BF16", [hidden, mlp])
        out[f"{base}.attention_norm.weight"] = ("BF16", [hidden])
        out[f"{base}.ffn_norm.weight"] = ("BF16", [hidden])
    out["multi_modal_projector.norm.weight"] = ("BF16", [hidden])
    out["multi_modal_projector.patch_merger.merging_layer.weight"] = ("BF16", [hidden, hidden * merge * merge])
    out["multi_modal_projector.linear_1.weight"] = ("BF16", [text_hidden, hidden])
    out["multi_modal_projector.linear_2.weight"] = ("BF16", [text_hidden, text_hidden])
    return out


def checkpoint_tensors(config: dict) -> dict[str, tuple[str, list[int]]]:
    text = config["text_config"]
    fp8 = (config.get("quantization_config") or {}).get("quant_method") == "fp8"
    tensors = text_tensors(text, fp8=fp8)
    if "vision_config" in config:
        tensors |= vision_tensors(config["vision_config"], text["hidden_size"], config.get("spatial_merge_size", 2))
    return tensors


def _write_shard(file: Path, tensors: dict[str, tuple[str, list[int]]]) -> int:
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        nbytes = math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with file.open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob)
        fh.truncate(8 + len(blob) + offset)  # a hole: nothing is written
    return offset


def write_sparse_checkpoint(
    folder: Path, config: dict, *, shards: int = 6, tensors: dict | None = None, tokenizer_from: Path | None = None
) -> Path:
    """`folder` with config.json, sparse model-*.safetensors shards and their index (of
    `tensors`, default the config's checkpoint_tensors), plus the tokenizer files of
    `tokenizer_from` (copied) when given."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    names = list((tensors if tensors is not None else checkpoint_tensors(config)).items())
    per = math.ceil(len(names) / shards)
    weight_map, total = {}, 0
    for k in range(shards):
        part = dict(names[k * per : (k + 1) * per])
        file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        total += _write_shard(folder / file, part)
        weight_map |= dict.fromkeys(part, file)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    if tokenizer_from is not None:
        for name in ("tekken.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            if (Path(tokenizer_from) / name).is_file():
                shutil.copyfile(Path(tokenizer_from) / name, folder / name)
    return folder
