"""How the demo-agent's weights are made: set by construction from Punie's training conversations.

The demo-agent (punie_gates.model.demo_agent) ships these weights; this module
regenerates them (`punie-gates demo-model --agent DIR --retrain`):
- conversations: Punie's Phase 27 train split (when given) and the suite's own
  fixtures/demo-training, converted to Mistral form by the project's converter
  with the tools catalog, so every prompt carries the tools block a validation
  prompt carries (demo_agent_sources);
- held out: any conversation holding a validation query's text, a tool result
  text or a distinctive answer fact of data/queries.toml is dropped
  (demo_agent_sources.held_out_strings); the manifest records how many;
- weights: the random demo's architecture with weights set by construction
  (demo_agent_weights): a bag-of-words classifier fitted on the conversations'
  first replies decides between a call and text, and bigram chains taken from the
  conversations by fixed rules (demo_agent_chains) write them; shipped at 5 bits,
  the gates' target, so Gate 1 uses it as is.
"""

from __future__ import annotations

import copy
import json
import platform
import tempfile
import time
from pathlib import Path

from punie_gates.inputs import paths
from punie_gates.inputs.catalog import load_catalog
from punie_gates.inputs.queries import load_queries
from punie_gates.model import artifacts
from punie_gates.model.demo import CONFIG, write_tokenizer_files
from punie_gates.model.demo_agent_sources import Sources, held_out_strings, load_sources
from punie_gates.model.demo_agent_weights import CHAIN_LOGIT, DECISION_LOGIT, SEED, SUITE_PROMPT_SHARE, construct
from punie_gates.model.quantize import _quantize_into
from punie_gates.model.tokenizer import load_tokenizers_backend

# -- the whole recipe ----------------------------------------------------------------


def retrain(dest: Path, phase27_dir: Path | None, log=print) -> dict:
    """Build the demo-agent's shipped files into `dest` (model.safetensors at 5 bits,
    config.json, manifest.json) from the training conversations."""

    from mlx_lm.models import mistral3

    started = time.perf_counter()
    dest = Path(dest)
    catalog = load_catalog()
    query_set = load_queries(catalog=catalog)
    sources = load_sources(phase27_dir, catalog, query_set)
    log(f"{len(sources.records)} conversations ({sources.held_out} left out as held out)")
    suite_prompt = (paths.data_dir() / "system_prompt.txt").read_text(encoding="utf-8").strip()
    config = copy.deepcopy(CONFIG)
    with tempfile.TemporaryDirectory(prefix="punie-gates-demo-agent-") as scratch:
        tokenizer = load_tokenizers_backend(write_tokenizer_files(Path(scratch) / "tokenizer"))
        weights, figures = construct(sources.records, tokenizer, catalog, suite_prompt, config)
        log(f"classifier: {figures['training_accuracy']:.1%} right on the {figures['first_replies']} first replies")
        model = mistral3.Model(mistral3.ModelArgs.from_dict(copy.deepcopy(config)))
        model.load_weights(list(weights.items()))
        ship(model, config, dest, Path(scratch))
    manifest = make_manifest(sources, query_set, figures, time.perf_counter() - started)
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def ship(model, config: dict, dest: Path, scratch: Path) -> None:
    """The model's weights at 5 bits and its config, written into `dest`."""

    full = write_tokenizer_files(Path(scratch) / "float32")
    (full / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    model.save_weights(str(full / "model.safetensors"))
    built = Path(scratch) / "q5"
    built.mkdir()
    _quantize_into(full, built, 5, dequantize_first=False)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "config.json"):
        (dest / name).write_bytes((built / name).read_bytes())


def make_manifest(sources: Sources, query_set, figures: dict, seconds: float) -> dict:
    """What the weights were built from: manifest.json."""

    return {
        "what": "punie-gates demo-agent weights (see punie_gates/model/demo_agent_recipe.py)",
        "sources": [
            {"name": _source_name(path), "records": _count_lines(path), **artifacts.file_fingerprint(path)}
            for path in sources.files
        ],
        "conversations": {"read": sources.read, "rejected": sources.rejected, "trained_on": len(sources.records)},
        "held_out": {
            "conversations_dropped": sources.held_out,
            "strings": {k: len(v) for k, v in held_out_strings(query_set).items()},
            "queries_file": artifacts.file_fingerprint(paths.data_dir() / "queries.toml"),
        },
        "construction": figures,
        "settings": {
            "seed": SEED,
            "suite_prompt_share": SUITE_PROMPT_SHARE,
            "chain_logit": CHAIN_LOGIT,
            "decision_logit": DECISION_LOGIT,
            "architecture": "the random demo's (punie_gates.model.demo)",
        },
        "bits": 5,
        "versions": {**artifacts.library_versions(), "python": platform.python_version()},
        "seconds": round(seconds, 1),
    }


def _source_name(path: Path) -> str:
    path = Path(path)
    if path.parent.name == "demo-training" and path.parent.parent == paths.fixtures_dir():
        return f"fixtures/demo-training/{path.name}"
    return f"Punie Phase 27 {path.name}"


def _count_lines(path: Path) -> int:
    with Path(path).open("rb") as fh:
        return sum(1 for line in fh if line.strip())
