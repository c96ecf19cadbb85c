"""Shared fixtures for the suite's own self-tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[2]

# CI must be deterministic and bounded; locally hypothesis explores more.
settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=150, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def phase27_dir() -> Path:
    """Punie's real Phase 27 data, read in place (never copied into the project)."""
    path = Path(os.environ.get("PUNIE_PHASE27_DIR") or REPO.parent / "shared" / "punie-phase27")
    if not (path / "train.jsonl").is_file():
        message = f"Punie phase27 data not found at {path} (set PUNIE_PHASE27_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def catalog():
    """The suite's own tool catalog (data/tools.toml)."""
    from punie_gates.inputs.catalog import load_catalog

    return load_catalog()


@pytest.fixture(scope="session")
def queries(catalog):
    """The suite's own validation queries (data/queries.toml), checked against the catalog."""
    from punie_gates.inputs.queries import load_queries

    return load_queries(catalog=catalog)
