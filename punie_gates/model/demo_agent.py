"""The built-in candidate that answers: the demo's architecture and tokenizer with weights set from Punie's data.

`--candidate demo-agent` is the positive control beside the random demo (the
negative one): the same mistral3/ministral3 family, the same tekken v13
tokenizer and chat template, but weights set from Punie's training data
(punie_gates.model.demo_agent_recipe: a fitted call/text classifier and token chains
taken from the conversations) so that it acts like a very small Punie agent: a
request that needs a tool gets `[TOOL_CALLS]execute_code[ARGS]{"code": ...}` with
code calling the typed tools, a tool result gets a text answer, a concept
question gets text. It is tiny and often wrong; what matters is that every path
of the suite runs on tokens a model generated, and that its reports say it is a
demo and what it was built from.

The weights ship with the package, already at 5 bits (fixtures/demo-agent:
model.safetensors, config.json and manifest.json, which records what they were
built from). On first use they are assembled with the demo's tokenizer files into
`<cache>/demo-agent/<key>` (key: the shipped files' hashes and the library
versions), built in a private folder renamed into place, as the demo is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from punie_gates.inputs import paths
from punie_gates.model import artifacts
from punie_gates.model.demo import (
    KEEP_TEKKEN,
    MARKER,
    _build_into,
    ensure_built,
    write_tokenizer_files,
)

NAME = "demo-agent"
RECIPE_VERSION = 1  # bump when the assembly below changes what it writes
SHIPPED_FILES = ("model.safetensors", "config.json", "manifest.json")

NOTE = (
    "punie-gates demo-agent candidate: a tiny model with Devstral Small 2's architecture "
    "(mistral3/ministral3) and a Devstral-compatible tekken tokenizer, with weights SET FROM "
    "Punie's training data (never from the validation queries). It calls tools and answers, mostly "
    "wrongly; it exercises every path of the suite offline and says nothing about any real model."
)


def shipped_dir() -> Path:
    return paths.fixtures_dir() / "demo-agent"


def manifest() -> dict:
    """What the shipped weights were built from (fixtures/demo-agent/manifest.json)."""
    return json.loads((shipped_dir() / "manifest.json").read_text(encoding="utf-8"))


def built_from() -> str:
    """One line for reports: the data, the recipe and the settings the weights came from."""
    m = manifest()
    sources = ", ".join(f"{s['name']} ({s['records']} conversations)" for s in m["sources"])
    built = m["construction"]
    return (
        f"weights set from {sources}; {m['held_out']['conversations_dropped']} conversations holding a "
        f"validation query's text, result or fact left out; a call/text classifier fitted on "
        f"{built['first_replies']} first replies ({built['training_accuracy']:.0%} right on them), "
        f"writing {built['chains']['call']}, or {built['chains']['text']!r}, and after a tool result "
        f"{built['chains']['answer']!r}; {m['bits']}-bit"
    )


def key_parts() -> dict:
    folder = shipped_dir()
    return {
        "recipe": RECIPE_VERSION,
        "shipped": {name: artifacts.file_fingerprint(folder / name) for name in SHIPPED_FILES},
        "tekken_layout": "v13",
        "keep_tekken": KEEP_TEKKEN,
        "versions": artifacts.library_versions(),
    }


def ensure_demo_agent(cache_dir: Path | None = None) -> Path:
    """The demo-agent folder under `cache_dir` (default paths.cache_dir()), assembled if missing."""
    return ensure_built(cache_dir, NAME, key_parts(), build_demo_agent)


def build_demo_agent(dest: Path) -> Path:
    """Write the demo-agent's files into the empty folder `dest`: the demo's tokenizer, the
    shipped config and weights, and the demo marker saying what it is."""
    dest = write_tokenizer_files(dest)
    for name in ("model.safetensors", "config.json"):
        shutil.copyfile(shipped_dir() / name, dest / name)
    marker = {
        "demo": True,
        "agent": True,
        "random_weights": False,
        "note": NOTE,
        "built_from": built_from(),
        "recipe": RECIPE_VERSION,
    }
    (dest / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return dest


def build_into(target: Path) -> Path | None:
    """`punie-gates demo-model --agent DIR`: the demo-agent assembled into `target`."""

    return _build_into(target, key_parts(), build_demo_agent)
