"""The results file (``DIR/<run_id>/results.json``), the samples file (``samples.jsonl``) and a run's
provenance (its directory name, the bench's content hash, the software versions).

The schema is versioned; the leaderboard reads these files and nothing else. Every metric of every track
is ``{value, ci_low, ci_high, n}`` (plus lm-eval's ``stderr`` where it has one). Schema 1 files, whose
UltraMedical stderr was a separate ``NAME_stderr`` metric, are upgraded on read. Both files are written
atomically (temp file + rename), results last, so a run directory with a results.json is complete.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from collections.abc import Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from promedical.bench.io import dump_item, write_text_atomic
from promedical.bench.schema import BenchItem

SCHEMA_VERSION = 2
RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricValue(_Model):
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    #: the standard error its source reports (lm-eval's ``*_stderr``); absent for our own metrics
    stderr: float | None = None


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
    schema_version: Literal[2] = SCHEMA_VERSION
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


def bench_content_hash(items: Sequence[BenchItem]) -> str:
    """A short hash of the items as written, so results can be matched to the exact bench they scored."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(dump_item(item).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def software_versions(extra_packages: Sequence[str] = ()) -> dict[str, str]:
    """Python's version and those of the installed packages a result depends on."""
    versions = {"python": platform.python_version()}
    for package in ("promedical-bench", "torch", "transformers", "datasets", "numpy", "scipy", *extra_packages):
        try:
            versions[package.replace("_", "-")] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def new_run_dir(output_dir: Path, started: datetime, model: str, label: str) -> Path:
    """Create and return ``OUTPUT_DIR/<time>-<model>-<label>`` (``-2``, ``-3``... when it exists)."""
    name = Path(model.split(":", 1)[-1].rstrip("/")).name or model
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name)[:40].strip("-") or "model"
    run_id = f"{started.strftime('%Y%m%d-%H%M%S')}-{slug}-{label}"
    run_dir, suffix = output_dir / run_id, 1
    while run_dir.exists():
        suffix += 1
        run_dir = output_dir / f"{run_id}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def write_run(run_dir: Path, results: RunResults, samples: list[dict[str, Any]]) -> None:
    """Write samples.jsonl then results.json into ``run_dir`` (created), each atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps(s, ensure_ascii=False, sort_keys=True) + "\n" for s in samples)
    write_text_atomic(run_dir / SAMPLES_FILE, lines)
    write_text_atomic(run_dir / RESULTS_FILE, [results.model_dump_json(indent=2) + "\n"])


def read_results(run_dir: str | Path) -> RunResults:
    """A run's results, validated against the schema (schema 1 files upgraded first)."""
    return parse_results((Path(run_dir) / RESULTS_FILE).read_text(encoding="utf-8"))


def parse_results(text: str) -> RunResults:
    """Results from the text of a results file; a schema 1 document is upgraded to schema 2 first (each
    ``NAME_stderr`` metric becomes ``NAME``'s ``stderr``)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return RunResults.model_validate_json(text)  # raises pydantic's own error for invalid JSON
    if isinstance(document, dict) and document.get("schema_version") == 1:
        tracks = {}
        for name, track in (document.get("tracks") or {}).items():
            metrics = dict(track.get("metrics") or {})
            for key in [k for k in metrics if k.endswith("_stderr") and k.removesuffix("_stderr") in metrics]:
                base = key.removesuffix("_stderr")
                metrics[base] = {**metrics[base], "stderr": metrics.pop(key).get("value")}
            tracks[name] = {**track, "metrics": metrics}
        document = {**document, "schema_version": 2, "tracks": tracks}
    return RunResults.model_validate(document)


def read_samples(run_dir: str | Path) -> list[dict[str, Any]]:
    with (Path(run_dir) / SAMPLES_FILE).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
