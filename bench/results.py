"""The results file (``DIR/<run_id>/results.json``) and samples file (``samples.jsonl``).

The schema is versioned; the leaderboard reads these files and nothing else. Both files are written
atomically (temp file + rename), results last, so a run directory with a results.json is complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from promedical.bench.io import write_text_atomic

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricValue(_Model):
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


class ModelInfo(_Model):
    id: str
    identity: str
    kind: str


class BenchInfo(_Model):
    name: str
    content_hash: str
    items: int


class TrackResult(_Model):
    metrics: dict[str, MetricValue]
    by_category: dict[str, dict[str, MetricValue]]
    by_specialty: dict[str, dict[str, MetricValue]]
    counts: dict[str, int]
    judge: ModelInfo | None = None
    #: Hash of every prompt string and option that reached this track's judge (absent in older files).
    template_hash: str | None = None


class RunResults(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    model: ModelInfo
    bench: BenchInfo
    tracks: dict[str, TrackResult]
    config: dict[str, Any]
    template_version: str
    template_hash: str
    software: dict[str, str]
    started_at: str
    finished_at: str


def write_run(run_dir: Path, results: RunResults, samples: list[dict[str, Any]]) -> None:
    """Write samples.jsonl then results.json into ``run_dir`` (created), each atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps(s, ensure_ascii=False, sort_keys=True) + "\n" for s in samples)
    write_text_atomic(run_dir / SAMPLES_FILE, lines)
    write_text_atomic(run_dir / RESULTS_FILE, [results.model_dump_json(indent=2) + "\n"])


def read_results(run_dir: str | Path) -> RunResults:
    """A run's results, validated against the schema."""
    return RunResults.model_validate_json((Path(run_dir) / RESULTS_FILE).read_text(encoding="utf-8"))


def read_samples(run_dir: str | Path) -> list[dict[str, Any]]:
    with (Path(run_dir) / SAMPLES_FILE).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
