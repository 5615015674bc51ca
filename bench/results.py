"""The results file (``DIR/<run_id>/results.json``), the samples file (``samples.jsonl``) and a run's
provenance (its directory name, the bench's content hash, the software versions).

A samples file holds one typed record per line, told apart by its ``track``: a :class:`JudgeSample` per
judged instance, a :class:`PolicySample` per answered item, an :class:`UltraMedicalSample` per lm-eval
document. A line's keys are the record's fields, sorted; fields a writer may leave out (the score and raw
output of a judgement without a verdict, the protocol-specific scores of an UltraMedical document) are
written only when set, so the file reads back to the same records and old files still load.

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
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, TypeAdapter, model_serializer

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
    #: Per criterion type, the share of the judge's known pointwise verdicts that are "met" (absent in older
    #: files): near 0 or 1, the judge gives one verdict to the whole type and its accuracy there is a constant's.
    met_share: dict[str, float] | None = None


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


# --------------------------------------------------------------------------------------------- samples


class _Record(_Model):
    """A samples-file record: the fields named in ``OPTIONAL`` are written only when set (present in the
    file it was read from, or given when it was built); every other field is always written."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_unset_optional(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        return {k: v for k, v in data.items() if k not in self.OPTIONAL or k in self.model_fields_set}


class JudgeSample(_Record):
    """One judged instance (judge track): a labelled pointwise or pairwise decision and the verdict."""

    track: Literal["judge"] = "judge"
    mode: Literal["pointwise", "pairwise"]
    item_id: str
    category: str
    specialty: str
    prompt: str
    criterion_id: str
    criterion_type: str
    criterion: str
    response_ids: list[str]
    responses: list[str]
    gold: str
    decision: str
    score: float | None
    raw: dict[str, Any]
    #: None for an ``unknown`` verdict
    correct: bool | None


class Judgement(_Record):
    """The grader's verdict on one rubric criterion of a policy answer; ``score`` and ``raw`` are absent
    when there is no verdict (no answer to grade), and the decision is then ``unknown``."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"score", "raw"})

    criterion_id: str
    criterion_type: str
    criterion: str
    decision: str
    score: float | None = None
    raw: dict[str, Any] | None = None


class PolicySample(_Record):
    """One item's answer (policy track), its judgements and scores; the scores are None when the answer
    failed or any judgement is ``unknown``."""

    track: Literal["policy"] = "policy"
    item_id: str
    category: str
    specialty: str
    prompt: str
    answer: str | None
    judgements: list[Judgement]
    s1: float | None
    s2: float | None
    s3: float | None
    excellence_fraction: float | None
    safe: float | None
    overall: float | None


class UltraMedicalSample(_Record):
    """One lm-eval document of the ultramedical track. ``loglikelihoods`` and ``acc_norm`` are set for the
    loglik protocol, ``response`` and ``no_answer`` for cot."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"loglikelihoods", "acc_norm", "response", "no_answer"})

    track: Literal["ultramedical"] = "ultramedical"
    protocol: Literal["loglik", "cot"]
    task: str
    doc_id: int
    prompt: str | None
    gold: str | int
    prediction: str | None
    acc: float
    acc_norm: float | None = None
    loglikelihoods: list[float] | None = None
    response: str | None = None
    no_answer: float | None = None
    doc: dict[str, Any]


Sample = Annotated[JudgeSample | PolicySample | UltraMedicalSample, Field(discriminator="track")]
_SAMPLE = TypeAdapter(Sample)


def parse_sample(line: str | bytes) -> JudgeSample | PolicySample | UltraMedicalSample:
    """One line of a samples file as its typed record (by its ``track``); raises pydantic's
    ``ValidationError`` (a ``ValueError``) for a line that is not one."""
    return _SAMPLE.validate_json(line)


def dump_sample(sample: JudgeSample | PolicySample | UltraMedicalSample) -> str:
    """One line of a samples file (without the newline): the record's JSON, keys sorted."""
    return json.dumps(sample.model_dump(), ensure_ascii=False, sort_keys=True)


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


def write_run(run_dir: Path, results: RunResults,
              samples: Sequence[JudgeSample | PolicySample | UltraMedicalSample]) -> None:
    """Write samples.jsonl then results.json into ``run_dir`` (created), each atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = (dump_sample(s) + "\n" for s in samples)
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


def read_samples(run_dir: str | Path) -> list[JudgeSample | PolicySample | UltraMedicalSample]:
    """A run's samples as typed records (a ``ValidationError``, a ``ValueError``, for a line that is not one)."""
    with (Path(run_dir) / SAMPLES_FILE).open(encoding="utf-8") as handle:
        return [parse_sample(line) for line in handle if line.strip()]
