"""Shared fixtures: paths of the test data corpus and a runner for the real console script."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@dataclass
class Completed:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str | None] | None = None) -> Completed:
    """Run `promedical-bench ARGS` as a real subprocess (the installed console script's entry point), offline
    unless ``env`` says otherwise (a value of None removes that variable)."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from promedical.bench.cli import main; sys.exit(main())", *args],
        capture_output=True, text=True, cwd=cwd, timeout=300,
        env={name: value for name, value in environment.items() if value is not None},
    )
    return Completed(result.returncode, result.stdout, result.stderr)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Real tiny checkpoints built locally: a chat causal LM, one without a chat template, a reward model."""
    from promedical.bench.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("models")
    return {
        "causal": build_tiny_model(root / "causal", kind="causal"),
        "nochat": build_tiny_model(root / "nochat", kind="causal", chat_template=False),
        "reward": build_tiny_model(root / "reward", kind="reward"),
    }
