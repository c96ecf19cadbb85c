"""Naming a candidate model and finding it on disk.

A candidate is named three ways: "demo" or "demo-agent" (tiny models the suite
builds itself, for offline runs: random weights, or trained ones that answer), a local MLX model folder, or a Hugging Face
repo id. Resolving one yields a local folder; nothing here loads weights.
A fourth name, an OpenAI-compatible server's URL (`is_endpoint`), has no folder:
it is asked through answering.endpoint, and the gates that read files do not run.

Gate 0 needs only tokenizer and config files, so a hub candidate is first
fetched without its weights (`need_weights=False`); the weights come later,
when Gate 1 really loads the model. Remote code is never trusted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from punie_gates.errors import CandidateError
from punie_gates.inputs.endpoint_spec import endpoint_url
from punie_gates.inputs.option_table import DEFAULT_CANDIDATE
from punie_gates.model.demo import ensure_demo_model, is_demo_model
from punie_gates.model.demo_agent import ensure_demo_agent
from punie_gates.model.folder import TOKENIZER_MARKERS, config_family, read_config, weight_files

DEMO = "demo"
DEMO_AGENT = "demo-agent"
BUILT_IN = (DEMO, DEMO_AGENT)  # candidates the suite builds itself, offline

# What a tokenizer-level look-up fetches: config and tokenizer files, no weights.
TOKENIZER_FILES = (
    "config.json",
    "generation_config.json",
    "tekken.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model",
    "*.tiktoken",
)
# Files that say how to read a model rather than what it computes: quantizing or
# fusing copies them byte for byte from the source, because mlx-lm's save
# re-serialises the tokenizer (under MistralCommonBackend it writes tekken.json
# only, dropping tokenizer.json and with it the fast detokenizer).
CARRIED_FILES = tuple(f for f in TOKENIZER_FILES if f not in ("config.json", "*.tiktoken")) + ("punie_gates_demo.json",)
# mlx-lm loads only `model*.safetensors`; Mistral's own repos also carry a
# `consolidated.safetensors` copy of the same weights, which must not be fetched.
WEIGHT_FILES = ("model*.safetensors", "model.safetensors.index.json")

# org/name as the hub spells repo ids: letters, digits, '-', '_', '.'.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Candidate:
    spec: str  # as the user gave it (--candidate)
    name: str  # for reports: the repo id, the folder name or "demo"
    path: Path  # the local folder holding it
    is_demo: bool
    family: str  # "mistral" | "qwen3" | "unknown"
    source: str  # "demo" | "local" | "hub"


ENDPOINT_HAS_NO_FILES = "an endpoint has no files"
# The gates that read a model's files (tokenizer, weights, training): not run on an endpoint.
GATES_NEEDING_FILES = ("gate0", "gate1", "gate4", "gate5")


def is_endpoint(spec: str | None) -> bool:
    """Whether `spec` names a running OpenAI-compatible server (http://HOST:PORT/v1) rather than files."""
    return endpoint_url(spec) is not None


def is_hub_id(spec: str) -> bool:
    """Whether `spec` is spelled like a Hugging Face repo id (org/name)."""
    return bool(_REPO_ID.match(spec))


def resolve_candidate(
    spec: str,
    *,
    cache_dir: Path,
    offline: bool,
    need_weights: bool = False,
    hf_cache_dir: Path | None = None,
) -> Candidate:
    """The local folder behind `spec`, checked for what the caller needs.

    `cache_dir` is the suite's cache (the demo is built there); `hf_cache_dir`
    the Hugging Face hub cache (default: HF_HUB_CACHE, else HF_HOME/hub, read
    now so a changed environment counts). `offline` restricts the hub to that
    cache. Raises CandidateError naming the candidate, what is missing and how
    to fix it.
    """
    spec = (spec or "").strip()
    if not spec:
        raise CandidateError(
            "no candidate given: pass --candidate demo, a local MLX model folder or a Hugging Face repo id"
        )
    if is_endpoint(spec):
        raise CandidateError(
            f"{spec}: {ENDPOINT_HAS_NO_FILES}; the gates that read a model's files (0, 1, 4, 5) "
            "need a folder or a Hugging Face repo id"
        )
    if spec == DEMO:
        path = ensure_demo_model(Path(cache_dir))
        return Candidate(spec, DEMO, path, True, config_family(path), "demo")
    if spec == DEMO_AGENT:
        path = ensure_demo_agent(Path(cache_dir))
        return Candidate(spec, DEMO_AGENT, path, True, config_family(path), "demo")

    local = Path(spec).expanduser()
    # An existing folder wins over a repo id of the same spelling, as in mlx-lm.
    if local.exists() or not _REPO_ID.match(spec):
        path = _check_local(spec, local, need_weights)
        # A demo built into a folder of its own (`punie-gates demo-model DIR`) is still a demo.
        return Candidate(spec, path.name, path, is_demo_model(path), config_family(path), "local")

    path = _from_hub(spec, offline=offline, need_weights=need_weights, hf_cache_dir=hf_cache_dir)
    return Candidate(spec, spec, path, False, config_family(path), "hub")


def validate_model_folder(label: str, path: Path, *, need_weights: bool, fix: str) -> None:
    """Raise CandidateError unless `path` has a readable config, a tokenizer and (if asked) weights."""
    read_config(path, required=True, label=label, fix=fix)
    if not any((path / name).is_file() for name in TOKENIZER_MARKERS):
        raise CandidateError(
            f"candidate {label!r}: no tokenizer in {path} (expected tekken.json, tokenizer.json or "
            f"tokenizer.model); {fix}"
        )
    if need_weights and not weight_files(path):
        native = (path / "consolidated.safetensors").is_file() or (path / "params.json").is_file()
        hint = (
            "it is in Mistral's native layout (consolidated.safetensors/params.json), which mlx-lm does not "
            "load: use an MLX conversion such as " + DEFAULT_CANDIDATE
            if native
            else fix
        )
        raise CandidateError(f"candidate {label!r}: no model*.safetensors weights in {path}; {hint}")


# -- local folders -------------------------------------------------------------


def _check_local(spec: str, path: Path, need_weights: bool) -> Path:
    if not path.exists():
        raise CandidateError(
            f"candidate {spec!r}: no such folder ({path.resolve()}), and it is not a Hugging Face repo id "
            "(org/name); pass an existing MLX model folder, a repo id or 'demo'"
        )
    if not path.is_dir():
        raise CandidateError(f"candidate {spec!r}: {path} is a file; pass the model's folder")
    path = path.resolve()
    validate_model_folder(
        spec, path, need_weights=need_weights, fix="pass a folder made by mlx_lm.convert (or a hub repo id)"
    )
    return path


# -- the hub -----------------------------------------------------------------


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps repos, read from the environment now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _from_hub(repo: str, *, offline: bool, need_weights: bool, hf_cache_dir: Path | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    cache = Path(hf_cache_dir) if hf_cache_dir is not None else hub_cache_dir()
    patterns = list(TOKENIZER_FILES) + (list(WEIGHT_FILES) if need_weights else [])
    what = "the model (weights included)" if need_weights else "its tokenizer and config files"
    download = f"run once online: `hf download {repo}` (or `huggingface-cli download {repo}`), or pass a local folder"
    try:
        path = Path(snapshot_download(repo, allow_patterns=patterns, cache_dir=str(cache), local_files_only=offline))
    except GatedRepoError:
        raise CandidateError(
            f"candidate {repo!r}: the repo is gated; accept its terms on huggingface.co and log in (`hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise CandidateError(
            f"candidate {repo!r}: no such repo on the Hugging Face hub (or it is private: `hf auth login`); "
            "check the spelling or pass a local folder"
        ) from None
    except LocalEntryNotFoundError as exc:
        if offline:
            raise CandidateError(
                f"candidate {repo!r}: not in the offline Hugging Face cache {cache} (HF_HUB_OFFLINE is set, "
                f"so {what} cannot be downloaded); {download}"
            ) from None
        raise CandidateError(
            f"candidate {repo!r}: network unreachable and not in the Hugging Face cache {cache} "
            f"({_first_line(exc)}); {download}"
        ) from None
    except HfHubHTTPError as exc:
        raise CandidateError(
            f"candidate {repo!r}: the hub refused the download ({_first_line(exc)}); {download}"
        ) from None
    except OSError as exc:  # a full disk or an unwritable cache
        raise CandidateError(f"candidate {repo!r}: cannot write to the Hugging Face cache {cache}: {exc}") from None

    fix = download if offline else "the repo does not look like an MLX model; pass another repo or a local folder"
    if need_weights and not weight_files(path) and offline:
        fix = f"only its tokenizer files are cached (weights never downloaded); {download}"
    validate_model_folder(repo, path, need_weights=need_weights, fix=fix)
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
