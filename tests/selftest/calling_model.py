"""A candidate that really writes calls, by construction: the demo's shape with weights set so that
greedy decoding writes one well-formed Devstral call for every prompt.

Every transformer layer adds nothing (o_proj and down_proj are zero), so the last hidden
state is the normalised embedding of the current token: the model is a bigram table.
Each token of the chain gets its own embedding direction, and the lm_head maps that
direction to the next token of the chain, so after a prompt's last token (`[/INST]`, or
`[/TOOL_RESULTS]` after a tool result) it writes
`[TOOL_CALLS]execute_code[ARGS]{"code": "print(git_status('.'))"}</s>`.
Every token of the chain is distinct (checked), zeros and one value per row survive
5-bit quantization exactly. Laid out with or without tekken.json beside tokenizer.json.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CALL_NAME = "execute_code"
CALL_ARGUMENTS = '{"code": "print(git_status(\'.\'))"}'
_SKIP = {
    "model.safetensors",
    "model.safetensors.index.json",
    "punie_gates_demo.json",
    "inputs.json",
    "COMPLETE",
    "LAST_USED",
}


def build_calling_model(demo: Path, dest: Path, *, keep_tekken: bool) -> Path:
    import mlx.core as mx
    from tokenizers import Tokenizer

    demo, dest = Path(demo), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for path in demo.iterdir():
        if path.name in _SKIP or (path.name == "tekken.json" and not keep_tekken):
            continue
        shutil.copyfile(path, dest / path.name)
    tokenizer = Tokenizer.from_file(str(demo / "tokenizer.json"))
    ids = lambda text: tokenizer.encode(text, add_special_tokens=False).ids  # noqa: E731
    special = tokenizer.token_to_id
    chain = [special("[TOOL_CALLS]"), *ids(CALL_NAME), special("[ARGS]"), *ids(CALL_ARGUMENTS), special("</s>")]
    starts = [special("[/INST]"), special("[/TOOL_RESULTS]")]
    sources = starts + chain[:-1]
    assert len(set(chain)) == len(chain) and not set(starts) & set(chain), "the chain needs distinct tokens"
    successor = {s: chain[0] for s in starts} | dict(zip(chain[:-1], chain[1:]))

    weights = mx.load(str(demo / "model.safetensors"))
    hidden = weights["language_model.model.norm.weight"].shape[0]
    assert len(successor) <= hidden
    embed = mx.zeros_like(weights["language_model.model.embed_tokens.weight"])
    head = mx.zeros_like(weights["language_model.lm_head.weight"])
    for dim, source in enumerate(dict.fromkeys(sources)):
        embed[source, dim] = 1.0
        head[successor[source], dim] = 4.0  # after RMSNorm the direction has length sqrt(hidden)
    weights["language_model.model.embed_tokens.weight"] = embed
    weights["language_model.lm_head.weight"] = head
    weights["language_model.model.norm.weight"] = mx.ones((hidden,))
    for name in list(weights):
        if name.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")):
            weights[name] = mx.zeros_like(weights[name])
    mx.save_safetensors(str(dest / "model.safetensors"), weights, metadata={"format": "mlx"})
    return dest
