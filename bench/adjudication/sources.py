"""What a study rates: candidate responses from runs (their policy answers) or from a bench file."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from promedical.bench.adjudication.errors import AdjudicationError
from promedical.bench.datasets import BenchDataError, load_bench, resolve_source
from promedical.bench.results import (
    RESULTS_FILE,
    SAMPLES_FILE,
    JudgeSample,
    PolicySample,
    RunResults,
    UltraMedicalSample,
    read_results,
    read_samples,
)
from promedical.bench.schema import BenchItem, FieldProblem


@dataclass(frozen=True)
class SourceResponse:
    """A candidate response: ``id`` is unique within its item (for runs: the model id)."""

    id: str
    text: str
    model: str | None
    run_id: str | None = None


@dataclass
class Source:
    """What a study rates: items (rubric and conversation, without responses or labels) and the responses."""

    kind: str
    items: dict[str, BenchItem]
    responses: dict[str, list[SourceResponse]]
    description: dict[str, Any]
    identifiers: set[str] = field(default_factory=set)
    skipped: Counter = field(default_factory=Counter)


def _signature(item: BenchItem) -> tuple:
    return item.prompt, tuple((c.id, c.type, c.text) for c in item.rubric)


def _bare(item: BenchItem) -> BenchItem:
    return item.model_copy(update={"responses": [], "labels": None})


def read_run(run_dir: Path) -> tuple[RunResults, list[JudgeSample | PolicySample | UltraMedicalSample]]:
    if not (run_dir / RESULTS_FILE).is_file():
        raise AdjudicationError([f"{run_dir}: not a run directory (no {RESULTS_FILE})"])
    try:
        results = read_results(run_dir)
    except (ValidationError, ValueError) as error:
        first = str(error).splitlines()[0]
        raise AdjudicationError([f"{run_dir / RESULTS_FILE}: not a valid results file: {first}"]) from None
    try:
        samples = read_samples(run_dir)
    except FileNotFoundError:
        raise AdjudicationError([f"{run_dir}: no {SAMPLES_FILE}"]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdjudicationError([f"{run_dir / SAMPLES_FILE}: not valid JSONL: {error}"]) from None
    except ValidationError as error:
        first = str(error).splitlines()[0]
        raise AdjudicationError([f"{run_dir / SAMPLES_FILE}: not a valid samples file: {first}"]) from None
    return results, samples


def _run_bench_items(results: RunResults) -> dict[str, BenchItem] | None:
    """The run's own bench items when its bench can still be loaded locally with the same content hash."""
    from promedical.bench.results import bench_content_hash

    try:
        resolved = resolve_source(results.bench.name)
        if isinstance(resolved, str):  # a Hugging Face id: not fetched for this
            return None
        items = load_bench(resolved)[: results.bench.items]
    except BenchDataError:
        return None
    if bench_content_hash(items) != results.bench.content_hash:
        return None
    return {item.id: _bare(item) for item in items}


def _rebuild_item(sample: PolicySample) -> BenchItem:
    """A bench item from a policy sample: the prompt as one user message; the criteria (equal proficiency
    weights, as the sample does not carry weights)."""
    return BenchItem.model_validate({
        "id": sample.item_id, "category": sample.category, "specialty": sample.specialty,
        "messages": [{"role": "user", "content": sample.prompt}],
        "rubric": [{"id": j.criterion_id, "type": j.criterion_type, "text": j.criterion}
                   for j in sample.judgements],
    })


def load_runs(run_dirs: Sequence[str | Path]) -> Source:
    """The policy answers of one or more runs of different models on the same bench. Each answer becomes a
    response whose id is its run's model id. Items come from the run's bench when it still loads with the
    same content hash, otherwise they are rebuilt from the samples (see :func:`_rebuild_item`)."""
    if not run_dirs:
        raise AdjudicationError(["give at least one --run RUN_DIR (or --bench PATH)"])
    items: dict[str, BenchItem] = {}
    from_bench: set[str] = set()
    origin: dict[str, str] = {}
    responses: dict[str, list[SourceResponse]] = defaultdict(list)
    models: dict[str, str] = {}
    identifiers: set[str] = set()
    skipped: Counter = Counter()
    runs = []
    for run_dir in map(Path, run_dirs):
        results, samples = read_run(run_dir)
        model = results.model.id
        if model in models:
            raise AdjudicationError([f"{run_dir}: model {model!r} is also the model of {models[model]}; "
                                     "export one run per model"])
        models[model] = str(run_dir)
        policy = [s for s in samples if isinstance(s, PolicySample)]
        if not policy:
            raise AdjudicationError([f"{run_dir}: no policy-track answers (run it with --track policy or all)"])
        bench_items = _run_bench_items(results)
        identifiers |= {model, results.model.identity, results.run_id, run_dir.name, str(run_dir),
                        str(run_dir.resolve())}
        for track in results.tracks.values():
            if track.judge is not None:
                identifiers |= {track.judge.id, track.judge.identity}
        for number, sample in enumerate(policy, start=1):
            item_id = sample.item_id
            try:
                item = bench_items.get(item_id) if bench_items else None
                item = item or _rebuild_item(sample)
            except (KeyError, TypeError, ValidationError, FieldProblem) as error:
                first = str(error).splitlines()[0]
                raise AdjudicationError([f"{run_dir / SAMPLES_FILE}: policy sample {number}: cannot rebuild its "
                                         f"item: {first}"]) from None
            if item_id in items and _signature(items[item_id]) != _signature(item):
                raise AdjudicationError([f"{run_dir}: item {item_id!r} has a different prompt or rubric than in "
                                         f"{origin[item_id]}; export runs made on the same bench"])
            if item_id not in items or (bench_items and item_id not in from_bench):
                items[item_id] = item
                origin[item_id] = str(run_dir)
                if bench_items:
                    from_bench.add(item_id)
            answer = sample.answer
            if answer is None:
                skipped["generation_failures"] += 1
                continue
            responses[item_id].append(SourceResponse(model, answer, model, results.run_id))
        runs.append({"path": str(run_dir), "run_id": results.run_id, "model": model, "bench": results.bench.name,
                     "bench_hash": results.bench.content_hash, "items_from": "bench" if bench_items else "samples"})
    identifiers.discard("")
    return Source("runs", items, dict(responses), {"type": "runs", "runs": runs}, identifiers, skipped)


def load_bench_responses(path: str | Path) -> Source:
    """A bench file's own candidate responses (items without responses are skipped and counted)."""
    loaded = load_bench(path)
    items, responses, identifiers, skipped = {}, {}, set(), Counter()
    for item in loaded:
        if not item.responses:
            skipped["items_without_responses"] += 1
            continue
        items[item.id] = _bare(item)
        responses[item.id] = [SourceResponse(r.id, r.text, r.model) for r in item.responses]
        identifiers |= {r.model for r in item.responses if r.model}
    if not items:
        raise AdjudicationError([f"{path}: no item has candidate responses to rate"])
    from promedical.bench.results import bench_content_hash

    description = {"type": "bench", "path": str(path), "bench_hash": bench_content_hash(loaded)}
    return Source("bench", items, responses, description, identifiers, skipped)
