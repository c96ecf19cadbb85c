"""A LoRA adapter folder with random weights, in mlx-lm's format, for tests and benchmarks.

Fusion does not care whether an adapter was trained: any `adapters.safetensors`
+ `adapter_config.json` pair that mlx-lm's `load(adapter_path=...)` accepts
exercises the same code. Writing one takes a second; training one on the demo
takes over a minute.
"""

from __future__ import annotations

import json
from pathlib import Path


def write_random_adapter(
    base_path: Path,
    dest: Path,
    *,
    num_layers: int = 8,
    rank: int = 8,
    scale: float = 20.0,
    magnitude: float = 1e-3,
    seed: int = 0,
) -> Path:
    """Write a random LoRA adapter for the model at `base_path` into `dest` (created); returns `dest`.

    The layers are the ones mlx-lm's training would adapt (its
    `linear_to_lora_layers` on the last `num_layers` blocks). `lora_a` is drawn
    as mlx-lm initialises it, `lora_b` (zero before training) from a normal
    distribution of standard deviation `magnitude`, so the delta is not zero.
    Same arguments, same bytes.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load_model

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    model, _ = load_model(Path(base_path), lazy=True)
    model.freeze()
    params = {"rank": rank, "scale": scale, "dropout": 0.0}
    linear_to_lora_layers(model, min(num_layers, len(model.layers)), params)
    key = mx.random.key(seed)
    weights = {}
    for name, value in sorted(tree_flatten(model.trainable_parameters())):
        key, sub = mx.random.split(key)
        if name.endswith(".lora_a"):
            bound = 1.0 / value.shape[0] ** 0.5
            weights[name] = mx.random.uniform(-bound, bound, value.shape, dtype=mx.float32, key=sub)
        else:
            weights[name] = magnitude * mx.random.normal(value.shape, dtype=mx.float32, key=sub)
    if not weights:
        raise ValueError(f"{base_path}: mlx-lm found no layer to adapt")
    mx.save_safetensors(str(dest / "adapters.safetensors"), weights)
    config = {"fine_tune_type": "lora", "num_layers": min(num_layers, len(model.layers)), "lora_parameters": params}
    (dest / "adapter_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return dest
