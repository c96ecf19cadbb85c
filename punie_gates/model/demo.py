"""The built-in offline candidate: a tiny random-weight model shaped like Devstral Small 2.

`--candidate demo` lets the whole suite run with no network and no 24B download:
the architecture mlx-lm uses for Devstral Small 2 (a `mistral3` wrapper around
a `ministral3` text model), shrunk to hidden size 64, with the tekken
vocabulary mistral-common ships laid out as a v13 tokenizer (punie_gates.formats.tekken).
Its weights are random, so it writes gibberish: it must fail Gate 1's smoke
test, and every report says it is a demo.

Built on first use into `<cache>/demo/<key>`, where the key hashes the recipe
and the library versions that shape the files; the same inputs give the same
bytes. The build happens in a private folder renamed into place when complete
(punie_gates.model.artifacts), so a killed build never leaves a folder a later run
trusts.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from punie_gates.formats.tekken import save_hf_tokenizer, write_tekken
from punie_gates.inputs import paths
from punie_gates.model import artifacts

MARKER = "punie_gates_demo.json"
SEED = 20251226
RECIPE_VERSION = 2  # bump when the build below changes what it writes

# Devstral Small 2's text model is ministral3: 40 layers, hidden 5120, 32 heads
# (8 KV heads), yarn rope with llama-4 attention scaling. The demo keeps the
# kinds (GQA, yarn, untied lm_head, the 131072 vocabulary) and shrinks the sizes.
# 10 layers so that training's 8 LoRA layers are a strict subset, as 8 of 40 are
# on the real model (mlx-lm silently adapts every layer when asked for more than
# exist). Sizes are multiples of 64 so 5-bit quantization (group size 64) covers
# every linear layer.
TEXT_CONFIG = {
    "model_type": "ministral3",
    "hidden_size": 64,
    "num_hidden_layers": 10,
    "intermediate_size": 192,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "rms_norm_eps": 1e-5,
    "vocab_size": 131072,
    "max_position_embeddings": 262144,
    "tie_word_embeddings": False,
    # ministral3 requires rope_theta, llama_4_scaling_beta and
    # original_max_position_embeddings here; yarn needs the rest.
    "rope_parameters": {
        "rope_type": "yarn",
        "rope_theta": 1000000.0,
        "factor": 16.0,
        "original_max_position_embeddings": 16384,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
        "llama_4_scaling_beta": 0.1,
    },
}
CONFIG = {
    "architectures": ["Mistral3ForConditionalGeneration"],
    "model_type": "mistral3",
    "text_config": TEXT_CONFIG,
    # Not 5-bit, so Gate 1 must quantize it, as it does a real 8-bit candidate.
    # float32 rather than float16: quantized layers keep the weights' dtype for
    # their scales, and MLX's CPU backend (where the demo runs: CI, Linux) does a
    # quantized matmul with float16 scales ~30x slower than with float32
    # (measured on 2 cores: 655 vs 20 ms for the 131072x64 lm_head), which made
    # 200 greedy tokens take 130 s instead of 9 s.
    "torch_dtype": "float32",
    "bos_token_id": 1,
    "eos_token_id": 2,
}
# tekken.json stays in the folder. Mistral's own Devstral repo ships it, and
# mlx_lm.convert under transformers 5 writes it back (MistralCommonBackend saves
# in Mistral's format), so a fresh MLX conversion carries it. With it,
# transformers picks MistralCommonBackend: the stricter backend (text cannot
# forge control tokens; "test" mode refuses prompts ending with an assistant
# turn, "finetuning" mode prompts ending with a user turn), which the suite must
# handle. tokenizer.json stays as well: mlx-lm picks its streaming detokenizer
# from it. Whether the mlx-community 8-bit repo carries tekken.json was not
# checked here; every gate reads whichever files the candidate has.
KEEP_TEKKEN = True

NOTE = (
    "punie-gates demo candidate: a tiny model with Devstral Small 2's architecture "
    "(mistral3/ministral3) and a Devstral-compatible tekken tokenizer, with RANDOM weights. "
    "It writes gibberish and must fail Gate 1's smoke test; it exercises the suite offline "
    "and says nothing about any real model."
)


def key_parts() -> dict:
    """Everything the demo's bytes depend on (its cache folder is named after their hash)."""

    return {
        "recipe": RECIPE_VERSION,
        "config": CONFIG,
        "seed": SEED,
        "tekken_layout": "v13",
        "keep_tekken": KEEP_TEKKEN,
        "versions": artifacts.library_versions(),
    }


def demo_model_dir(cache_dir: Path) -> Path:
    """Where the demo for this recipe and these library versions lives (maybe not built yet)."""

    return artifacts.artifact_dir(Path(cache_dir), "demo", key_parts())


def ensure_demo_model(cache_dir: Path | None = None) -> Path:
    """The demo model folder under `cache_dir` (default paths.cache_dir()), built if missing."""
    return ensure_built(cache_dir, "demo", key_parts(), build_demo_model)


def ensure_built(cache_dir: Path | None, kind: str, parts: dict, build) -> Path:
    """`<cache>/<kind>/<key of parts>`, made by `build(folder)` in a private folder renamed
    into place when missing (shared by the built-in candidates)."""

    cache_dir = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    final = artifacts.artifact_dir(cache_dir, kind, parts)
    if (done := artifacts.cached(final)) is not None:
        return done
    with artifacts.building(final, parts) as partial:
        build(partial)
    return final


def is_demo_model(path: Path) -> bool:
    """True for a folder built by this module (it carries the demo marker)."""
    try:
        return bool(json.loads((Path(path) / MARKER).read_text(encoding="utf-8")).get("demo"))
    except (OSError, ValueError, AttributeError):
        return False


def build_demo_model(dest: Path) -> Path:
    """Write the demo's files into the empty folder `dest` (deterministic bytes)."""
    dest = write_tokenizer_files(dest)
    (dest / "config.json").write_text(json.dumps(CONFIG, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _write_random_weights(dest)
    marker = {"demo": True, "random_weights": True, "note": NOTE, "seed": SEED, "recipe": RECIPE_VERSION}
    (dest / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return dest


def write_tokenizer_files(dest: Path) -> Path:
    """The demo's tokenizer (tekken v13 layout, transformers files) written into `dest`."""

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tekken = write_tekken(dest / "tekken.json", layout="v13")
    save_hf_tokenizer(tekken, dest, version="v13")
    if not KEEP_TEKKEN:
        tekken.unlink()
    return dest


def _write_random_weights(dest: Path) -> None:
    import mlx.core as mx
    from mlx.utils import tree_map
    from mlx_lm.models import mistral3
    from mlx_lm.utils import save_model

    # Layer initialisers draw from MLX's global generator: seeding it makes the
    # weights, and so the safetensors bytes, the same on every build.
    mx.random.seed(SEED)
    model = mistral3.Model(mistral3.ModelArgs.from_dict(copy.deepcopy(CONFIG)))
    model.update(tree_map(lambda a: a.astype(mx.float32), model.parameters()))
    mx.eval(model.parameters())
    save_model(dest, model)


def _build_into(target: Path, parts: dict | None = None, build=None) -> Path | None:
    """Build a built-in candidate (default: the random demo) into the folder `target`."""

    parts = key_parts() if parts is None else parts
    build = build_demo_model if build is None else build
    target = target.expanduser().resolve()
    if target.exists():
        if not target.is_dir() or (any(target.iterdir()) and not is_demo_model(target)):
            print(f"punie-gates demo-model: {target} exists and is not an empty folder or a demo model; "
                  "pick another folder", file=sys.stderr)  # fmt: skip
            return None
        if _same_recipe(target, parts):
            return target
    with artifacts.building(target, parts) as partial:
        build(partial)
    return target


def _same_recipe(folder: Path, parts: dict) -> bool:
    try:
        recorded = json.loads((folder / artifacts.INPUTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return artifacts.is_complete(folder) and recorded == json.loads(json.dumps(parts))
