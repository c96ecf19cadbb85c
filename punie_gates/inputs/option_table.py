"""Every option the suite takes, as data: its flag, ini key, environment variable, type,
default, help, and the gates-file settings it replaces.

docs/options.md is generated from this table (punie_gates.inputs.options_page); how a
run's options are read from it lives in punie_gates.inputs.options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from punie_gates.inputs.endpoint_spec import (
    DEFAULT_API_KEY_ENV,
    DEFAULT_ENDPOINT_TIMEOUT_S,
    MAX_ENDPOINT_TIMEOUT_S,
    MIN_ENDPOINT_TIMEOUT_S,
)

# Verified to exist on the hub; the suite quantizes it to 5 bits itself (from 8
# bits more of the original survives than from a 4-bit re-quantization).
DEFAULT_CANDIDATE = "mlx-community/Devstral-Small-2-24B-Instruct-2512-8bit"
# Queries decoded together by default (the gates' --gen-batch-size, the bench's).
# On the demo here 8 was as fast as 16, 20 or 40 and faster than 1 or 4; on a 24B
# model every row also holds its own copy of the ~0.8k-token prefix in the cache.
DEFAULT_BATCH_SIZE = 8
# How the gates ask their queries: through mlx_lm.server, as Punie's agent does, or
# generated in this process (the reference path, and for machines where no server runs).
ANSWER_VIA = ("server", "inprocess")
# What a run does with a cached artifact whose files no longer match their
# manifest (punie_gates.model.artifacts.verify): rebuild it, saying so, or refuse.
DAMAGED_CACHE = ("rebuild", "refuse")
# Seconds mlx_lm.server may leave /health unanswered before the run stops it and ends
# ERROR (docs/reliability-servers.md); a working server answers in well under a second.
DEFAULT_SERVER_STALL_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Option:
    flag: str
    dest: str
    help: str
    ini: str | None = None
    env: str | None = None
    type: Any = str
    default: Any = None
    action: str | None = None
    choices: tuple[str, ...] | None = None
    sets: tuple[str, ...] = ()  # the gates-file settings it overrides: "gate4.iters"


OPTIONS = (
    Option(
        "--candidate",
        "candidate",
        "the model to judge: 'demo', 'demo-agent', a local MLX model folder, a Hugging Face repo id, or an OpenAI-compatible server http://HOST:PORT/v1 (screened only: the gates that need its files do not run)",
        ini="candidate",
        env="PUNIE_GATES_CANDIDATE",
        default=DEFAULT_CANDIDATE,
    ),
    Option(
        "--baseline",
        "baseline",
        "the model in production (Qwen3 Phase 27), measured beside the candidate where a gate compares: a folder, a repo id, or its running server http://HOST:PORT/v1",
        ini="baseline",
        env="PUNIE_GATES_BASELINE",
    ),
    Option(
        "--candidate-model",
        "candidate_model",
        "with --candidate URL: the `model` field of its requests (default: default_model, the model mlx_lm.server was started with)",
        ini="candidate_model",
        env="PUNIE_GATES_CANDIDATE_MODEL",
    ),
    Option(
        "--baseline-model",
        "baseline_model",
        "with --baseline URL: the `model` field of its requests (default: default_model)",
        ini="baseline_model",
        env="PUNIE_GATES_BASELINE_MODEL",
    ),
    Option(
        "--api-key-env",
        "api_key_env",
        f"the environment variable holding the API key sent to an endpoint (default {DEFAULT_API_KEY_ENV}; the key itself is never an option and never written anywhere)",
        ini="api_key_env",
        default=DEFAULT_API_KEY_ENV,
    ),
    Option(
        "--endpoint-timeout",
        "endpoint_timeout",
        f"seconds an endpoint may take to answer one request, {MIN_ENDPOINT_TIMEOUT_S:g}-{MAX_ENDPOINT_TIMEOUT_S:g} (default {DEFAULT_ENDPOINT_TIMEOUT_S:g}); beyond it the run ends ERROR, not judged",
        ini="endpoint_timeout",
        env="PUNIE_GATES_ENDPOINT_TIMEOUT",
        type=float,
        default=DEFAULT_ENDPOINT_TIMEOUT_S,
    ),
    Option(
        "--report-dir",
        "report_dir",
        "folder for gate-report.json/.md, responses, benchmarks and plots",
        ini="report_dir",
        env="PUNIE_GATES_REPORT_DIR",
        default="reports",
    ),
    Option(
        "--work-dir",
        "work_dir",
        "folder for converted data, adapters and fused models, keyed by their inputs (default: <cache>/work)",
        ini="work_dir",
        env="PUNIE_GATES_WORK_DIR",
    ),
    Option(
        "--run-all-gates",
        "run_all_gates",
        "run every gate even after a hard failure (diagnosis; the verdict is unchanged)",
        action="store_true",
    ),
    Option(
        "--memory-budget-gb",
        "memory_budget_gb",
        "Gate 1 peak-memory budget in GB (default: data/gates.toml [gate1] memory_budget_gb)",
        ini="memory_budget_gb",
        type=float,
        sets=("gate1.memory_budget_gb",),
    ),
    Option(
        "--queries",
        "queries",
        "validation queries TOML (default data/queries.toml)",
        ini="queries",
        env="PUNIE_GATES_QUERIES",
    ),
    Option("--tools", "tools", "tool catalog TOML (default data/tools.toml)", ini="tools"),
    Option("--gates", "gates", "gate thresholds TOML (default data/gates.toml)", ini="gates"),
    Option(
        "--training-data",
        "training_data",
        "folder with train.jsonl and valid.jsonl in Qwen3 form (default: data/phase27_merged, Punie's layout; the demos use fixtures/demo-training)",
        ini="training_data",
        env="PUNIE_GATES_TRAINING_DATA",
    ),
    Option(
        "--system-prompt",
        "system_prompt",
        "file with the system prompt for validation queries (default: the training data's most common one)",
        ini="system_prompt",
    ),
    Option(
        "--gate4-iters",
        "gate4_iters",
        "Gate 4 LoRA iterations (default: data/gates.toml [gate4] iters)",
        type=int,
        sets=("gate4.iters",),
    ),
    Option(
        "--gate5-iters",
        "gate5_iters",
        "Gate 5 LoRA iterations (default: data/gates.toml [gate5] iters)",
        type=int,
        sets=("gate5.iters",),
    ),
    Option(
        "--gate4-examples",
        "gate4_examples",
        "Gate 4 training examples, a stratified sample (default: data/gates.toml [gate4] examples)",
        type=int,
        sets=("gate4.examples",),
    ),
    Option(
        "--fresh",
        "fresh",
        "ignore cached work (converted data, quantized models, adapters, fused models)",
        action="store_true",
    ),
    Option(
        "--damaged-cache",
        "damaged_cache",
        "what to do with a cached artifact whose files changed since it was built: 'rebuild' it (default; the terminal names it) or 'refuse' (the run stops with ERROR)",
        ini="damaged_cache",
        env="PUNIE_GATES_DAMAGED_CACHE",
        default="rebuild",
        choices=DAMAGED_CACHE,
    ),
    Option(
        "--gen-batch-size",
        "gen_batch_size",
        f"how many validation queries to generate at once (default {DEFAULT_BATCH_SIZE}; 1 = the one-at-a-time reference path)",
        ini="gen_batch_size",
        env="PUNIE_GATES_GEN_BATCH_SIZE",
        type=int,
        default=DEFAULT_BATCH_SIZE,
    ),
    Option(
        "--max-tokens", "max_tokens", "generation budget per validation query", ini="max_tokens", type=int, default=512
    ),
    Option(
        "--bench",
        "bench",
        "Gate 2 also times the validation answers the plan's way (one at a time, full prompt) against the suite's (shared prefix, batches) and puts the figures in the report; doubles that generation time",
        ini="bench",
        env="PUNIE_GATES_BENCH",
        action="store_true",
    ),
    Option(
        "--answer-via",
        "answer_via",
        "how Gates 2-5 ask their queries: 'server' (mlx_lm.server with the OpenAI client, as Punie's agent does) or 'inprocess' (generated in this process: the reference path)",
        ini="answer_via",
        env="PUNIE_GATES_ANSWER_VIA",
        default="server",
        choices=ANSWER_VIA,
    ),
    Option(
        "--server-stall-timeout",
        "server_stall_timeout",
        f"seconds mlx_lm.server may leave /health unanswered while it serves before the run stops it and ends ERROR (default {DEFAULT_SERVER_STALL_TIMEOUT_S:g})",
        ini="server_stall_timeout",
        env="PUNIE_GATES_SERVER_STALL_TIMEOUT",
        type=float,
        default=DEFAULT_SERVER_STALL_TIMEOUT_S,
    ),
    Option(
        "--serve-python",
        "serve_python",
        "the Python interpreter that runs mlx_lm.server, e.g. production's .venv/bin/python (default: this one, with mistral-common hidden from the server, as an environment with mlx-lm alone has it)",
        ini="serve_python",
        env="PUNIE_GATES_SERVE_PYTHON",
    ),
    Option(
        "--heldout-limit",
        "heldout_limit",
        "Gates 4 and 5 score the next step at the first N assistant turns of the training data's held-out split (valid.jsonl, conversations also in train.jsonl left out; default: every turn, 148 for Phase 27; 0: not measured)",
        ini="heldout_limit",
        env="PUNIE_GATES_HELDOUT_LIMIT",
        type=int,
    ),
    Option("--seed", "seed", "seed for sampling examples and training", type=int, default=0),
    Option(
        "--fusion",
        "fusion",
        "how Gates 4 and 5 fuse the adapter and quantize: 'streamed' (layer by layer, no float16 copy on disk) or 'recipe' (the seed's fuse --dequantize then convert, the reference); default from data/gates.toml (streamed)",
        ini="fusion",
        env="PUNIE_GATES_FUSION",
        sets=("gate4.fusion", "gate5.fusion"),
    ),
)
