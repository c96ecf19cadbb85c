"""`punie-gates demo-model [DIR] [--agent] [--retrain]`: build an offline demo candidate."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from punie_gates.model.demo import _build_into, ensure_demo_model
from punie_gates.model.demo_agent import build_into, ensure_demo_agent
from punie_gates.model.demo_agent_recipe import retrain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="punie-gates demo-model",
        description="Build an offline demo candidate into a folder: the random demo (default) or, with --agent, "
        "the demo-agent (weights set from Punie's training data: it calls tools and answers).",
    )
    parser.add_argument(
        "dir",
        nargs="?",
        type=Path,
        help="folder to build into (default: the suite's cache, as `--candidate demo` uses)",
    )
    parser.add_argument("--agent", action="store_true", help="build the demo-agent (`--candidate demo-agent`)")
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="with --agent: train the demo-agent's weights again into DIR (model.safetensors, config.json, "
        "manifest.json: the files fixtures/demo-agent ships) from fixtures/demo-training and, when "
        "PUNIE_PHASE27_DIR is set, Punie's Phase 27 train.jsonl; about a minute on 2 CPU cores",
    )
    args = parser.parse_args(argv)
    if args.retrain and not (args.agent and args.dir is not None):
        parser.error("--retrain needs --agent and a DIR to write the weights into")
    started = time.perf_counter()
    if args.retrain:
        phase27 = os.environ.get("PUNIE_PHASE27_DIR")
        manifest = retrain(args.dir, Path(phase27) if phase27 else None, log=lambda m: print(m, flush=True))
        built = manifest["construction"]
        print(
            f"demo-agent weights written in {time.perf_counter() - started:.0f} s to {args.dir}: "
            f"{manifest['conversations']['trained_on']} conversations, call/text classifier "
            f"{built['training_accuracy']:.1%} right on their {built['first_replies']} first replies"
        )
        print("ship them by copying model.safetensors, config.json and manifest.json into fixtures/demo-agent/")
        return 0
    if args.agent:
        path = ensure_demo_agent() if args.dir is None else build_into(args.dir)
        what, spec = "weights set from Punie's training data", "demo-agent"
    else:
        path = ensure_demo_model() if args.dir is None else _build_into(args.dir)
        what, spec = "random weights", "demo"
    if path is None:
        return 2
    size_mb = sum(p.stat().st_size for p in path.iterdir() if p.is_file()) / 1e6
    print(f"{spec} model ready in {time.perf_counter() - started:.1f} s: {path} ({size_mb:.0f} MB, {what})")
    print(f"use it with: pytest --candidate {path}  (or --candidate {spec})")
    return 0
