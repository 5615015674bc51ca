"""Importing a study's filled packets (ratings, agreement, the disagreement queue, final labels) and
merging final labels into a bench file."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from promedical.bench.adjudication.errors import SHOWN_PROBLEMS, AdjudicationError
from promedical.bench.adjudication.keys import QUEUE_KEY_FILE, Study, load_key, row_mac, token
from promedical.bench.adjudication.packets import QUEUE_COLUMNS, packet_csv, publish, stage, write_packet_xlsx
from promedical.bench.adjudication.ratings import LONG_COLUMNS, Rating, long_rows, read_packets, write_long
from promedical.bench.agreement import (
    LongRating,
    long_agreement,
)
from promedical.bench.datasets import load_bench
from promedical.bench.io import write_jsonl_atomic, write_text_atomic
from promedical.bench.schema import BenchItem, FieldProblem, Labels
from promedical.bench.statistics import N_BOOTSTRAP

FINAL_LABELS_FILE = "final-labels.jsonl"


# --------------------------------------------------------------------------------------------- import


@dataclass
class ImportResult:
    kind: str
    counts: Counter
    outputs: dict[str, Path]
    agreement: dict[str, Any] | None = None
    queued: int = 0


def _previous(task: str, swap: bool, ratings: Sequence[Rating]) -> str:
    """The first-round ratings of one unit, anonymous, in this row's orientation."""
    lines = []
    for number, rating in enumerate(ratings, start=1):
        shown = rating.value
        if task == "pairwise" and shown in ("a", "b"):
            shown = {"a": "B", "b": "A"}[shown] if swap else shown.upper()
        lines.append(f"rater {number}: {shown}" + (f" ({rating.comment})" if rating.comment else ""))
    return "\n".join(lines) if lines else "no ratings"


def import_study(packets_dir: str | Path, key_path: str | Path, output: str | Path, *,
                 queue_dir: str | Path | None = None, partial: bool = False, min_ratings: int = 2,
                 hide_ratings: bool = False, level: str = "nominal", seed: int = 0, n_boot: int = N_BOOTSTRAP
                 ) -> ImportResult:
    """Import filled packets. With an export's key: write long-format ratings to ``output`` (``.csv`` or
    ``.jsonl``), agreement statistics to ``OUTPUT_STEM.agreement.json``, and into ``queue_dir`` (default
    ``OUTPUT_STEM-adjudication/`` beside ``output``) the adjudicator's packet and its key — or, when nothing
    needs adjudication, the final labels. With an adjudication key: write the final labels (bench JSONL) to
    ``output``. Nothing is written when anything is refused."""
    study = load_key(key_path)
    output = Path(output)
    if study.kind == "adjudication":
        return _import_adjudication(packets_dir, study, output)
    if output.suffix not in (".csv", ".jsonl"):
        raise AdjudicationError([f"{output}: the ratings file must end in .csv or .jsonl"])
    if min_ratings < 1:
        raise AdjudicationError([f"--min-ratings {min_ratings}: must be at least 1"])
    queue_dir = Path(queue_dir) if queue_dir is not None else output.with_name(f"{output.stem}-adjudication")
    if queue_dir.exists() and (not queue_dir.is_dir() or any(queue_dir.iterdir())):
        raise AdjudicationError([f"{queue_dir}: already exists and is not empty; choose another --queue-dir"])
    ratings, counts = read_packets(packets_dir, study, partial=partial)
    rows = long_rows(study, ratings)
    if not rows:
        raise AdjudicationError([f"{packets_dir}: no row is rated"])
    long = [LongRating(r["unit"], r["rater"], r["value"], {k: v for k, v in r.items()
                                                              if k not in ("unit", "rater", "value")}, i + 2)
            for i, r in enumerate(rows)]
    agreement = long_agreement(long, level=level, seed=seed, n_boot=n_boot, columns=LONG_COLUMNS)

    by_unit: dict[str, list[Rating]] = defaultdict(list)
    for rating in ratings:
        if rating.value:
            by_unit[rating.unit].append(rating)
    first_round: dict[str, dict[str, Any]] = {}
    queued: list[str] = []
    for unit_id in study.units:
        given = by_unit.get(unit_id, [])
        values = {r.value for r in given}
        agreed = len(given) >= min_ratings and len(values) == 1
        first_round[unit_id] = {"ratings": [{"rater": r.rater, "value": r.value, "comment": r.comment} for r in given],
                                "status": "agreed" if agreed else "queued",
                                "value": given[0].value if agreed else None}
        if not agreed:
            queued.append(unit_id)
    counts.update(units=len(study.units), agreed=len(study.units) - len(queued), queued=len(queued))

    rng = np.random.default_rng(seed)
    secret = secrets.token_bytes(32)
    packet_id = f"{study.study_id}-ADJ"
    queue = Study("adjudication", study.study_id, secret, study.items, study.responses, study.display, study.units,
                  {}, {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "parent": {"study_id": study.study_id, "key_sha256": hashlib.sha256(
                           Path(key_path).read_bytes()).hexdigest()},
                       "min_ratings": min_ratings, "first_round": first_round})
    rows_out, key_rows = [], {}
    for index in rng.permutation(len(queued)):
        unit = study.units[queued[int(index)]]
        swap = bool(unit.task == "pairwise" and rng.random() < 0.5)
        previous = "hidden" if hide_ratings else _previous(unit.task, swap, by_unit.get(unit.id, []))
        row_id = token(secret, "row", packet_id, unit.id)
        cells = queue.cells(unit, swap, previous)
        key_rows[row_id] = {"unit": unit.id, "swap": swap, "previous": previous,
                            "hmac": row_mac(secret, study.study_id, packet_id, row_id, unit.id, swap, cells)}
        rows_out.append({"packet_id": packet_id, "row_id": row_id, **cells, "rating": "", "comment": ""})
    queue.packets[packet_id] = {"rater": "adjudicator", "file": "adjudicator", "rows": key_rows}

    stats_path = output.with_name(f"{output.stem}.agreement.json")
    outputs = {"ratings": output, "agreement": stats_path, "queue_dir": queue_dir,
               "queue_key": queue_dir / QUEUE_KEY_FILE}
    final_items = _final_items(queue, {}) if not queued else None
    staging = stage(queue_dir)
    try:
        write_text_atomic(staging / QUEUE_KEY_FILE, [json.dumps(queue.to_json(), ensure_ascii=False, indent=1) + "\n"])
        os.chmod(staging / QUEUE_KEY_FILE, 0o600)
        if queued:
            write_packet_xlsx(staging / "adjudicator.xlsx", rows_out, QUEUE_COLUMNS, "adjudication")
            write_text_atomic(staging / "adjudicator.csv", [packet_csv(rows_out, QUEUE_COLUMNS)])
            outputs.update(queue_xlsx=queue_dir / "adjudicator.xlsx", queue_csv=queue_dir / "adjudicator.csv")
        else:
            write_jsonl_atomic(staging / FINAL_LABELS_FILE, final_items)
            outputs["final_labels"] = queue_dir / FINAL_LABELS_FILE
        write_long(output, rows)
        document = {"level": level, "seed": seed, "n_boot": n_boot, "statistics": agreement}
        write_text_atomic(stats_path, [json.dumps(document, indent=2) + "\n"])
        publish(staging, queue_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ImportResult("ratings", counts, outputs, agreement, len(queued))


def _final_items(study: Study, decisions: dict[str, str]) -> list[BenchItem]:
    """Final labels in bench format: agreed first-round values, then the adjudicator's ``decisions``."""
    first_round = study.extra["first_round"]
    labels: dict[str, dict[str, list]] = defaultdict(lambda: {"pointwise": [], "pairwise": []})
    used: dict[str, set[str]] = defaultdict(set)
    for unit_id, unit in study.units.items():
        entry = first_round[unit_id]
        value = entry["value"] if entry["status"] == "agreed" else decisions.get(unit_id, "")
        if not value:
            continue
        if unit.task == "pointwise":
            labels[unit.item_id]["pointwise"].append({"response": unit.responses[0], "criterion": unit.criterion_id,
                                                      "met": value == "met"})
        else:
            labels[unit.item_id]["pairwise"].append({"criterion": unit.criterion_id, "a": unit.responses[0],
                                                     "b": unit.responses[1], "preferred": value})
        used[unit.item_id].update(unit.responses)
    items = []
    for item_id, item in study.items.items():
        if item_id not in labels:
            continue
        responses = [{"id": rid, "text": info["text"], **({"model": info["model"]} if info.get("model") else {})}
                     for rid, info in study.responses[item_id].items() if rid in used[item_id]]
        items.append(BenchItem.model_validate({**item, "responses": responses, "labels": labels[item_id]}))
    return items


def _import_adjudication(packets_dir: str | Path, study: Study, output: Path) -> ImportResult:
    if output.suffix != ".jsonl":
        raise AdjudicationError([f"{output}: final labels are bench JSONL; the output must end in .jsonl"])
    ratings, counts = read_packets(packets_dir, study)
    decisions = {r.unit: r.value for r in ratings if r.value}
    first_round = study.extra["first_round"]
    agreed = sum(e["status"] == "agreed" for e in first_round.values())
    counts.update(units=len(first_round), agreed=agreed, adjudicated=len(decisions),
                  unresolved=len(first_round) - agreed - len(decisions))
    items = _final_items(study, decisions)
    if not items:
        raise AdjudicationError([f"{packets_dir}: no unit is resolved, so there are no final labels to write"])
    counts["items"] = write_jsonl_atomic(output, items)
    return ImportResult("adjudication", counts, {"final_labels": output})


# --------------------------------------------------------------------------------------------- merge


@dataclass
class MergeResult:
    counts: Counter
    output: Path


def merge_labels(bench_path: str | Path, labels_path: str | Path, output: str | Path, *, replace: bool = False
                 ) -> MergeResult:
    """Merge final labels (bench JSONL from the adjudication import) into a bench file, atomically.

    Every labelled item must exist in the bench with the same prompt and criteria (id, type, text). Responses
    the bench lacks are added; a response id the bench has with a different text is refused. A label the
    bench already has with a different value is refused unless ``replace``. Nothing is written on refusal, but
    for more than :data:`SHOWN_PROBLEMS` problems the list of them all, ``OUTPUT.problems.txt``."""
    bench = load_bench(bench_path)
    final = load_bench(labels_path)
    by_id = {item.id: item for item in bench}
    problems: list[str] = []
    counts: Counter = Counter()
    merged: dict[str, BenchItem] = {}
    for item in final:
        target = by_id.get(item.id)
        if target is None:
            problems.append(f"{labels_path}: item {item.id!r} is not in {bench_path}")
            continue
        if target.prompt != item.prompt:
            problems.append(f"{labels_path}: item {item.id!r}: the prompt differs from {bench_path}")
            continue
        labels = item.labels or Labels()
        criteria = {c.id: (c.type, c.text) for c in target.rubric}
        mine = {c.id: (c.type, c.text) for c in item.rubric}
        wrong = sorted({lab.criterion for lab in [*labels.pointwise, *labels.pairwise]
                        if criteria.get(lab.criterion) != mine[lab.criterion]})
        if wrong:
            problems.append(f"{labels_path}: item {item.id!r}: criterion {wrong[0]!r} differs from {bench_path}")
            continue
        responses = [r.model_copy() for r in target.responses]
        known = {r.id: r for r in responses}
        for response in item.responses:
            if response.id in known:
                if known[response.id].text != response.text:
                    problems.append(f"{labels_path}: item {item.id!r}: response {response.id!r} has a different text "
                                    f"in {bench_path}")
                continue
            responses.append(response)
            known[response.id] = response
            counts["responses_added"] += 1
        old = target.labels or Labels()
        pointwise = {(p.response, p.criterion): p for p in old.pointwise}
        pairwise = {(p.criterion, frozenset((p.a, p.b))): p for p in old.pairwise}
        for label in labels.pointwise:
            key = (label.response, label.criterion)
            current = pointwise.get(key)
            if current is None:
                counts["labels_added"] += 1
            elif current.met == label.met:
                counts["labels_unchanged"] += 1
            elif replace:
                counts["labels_replaced"] += 1
            else:
                problems.append(f"{labels_path}: item {item.id!r}: pointwise label of response {label.response!r} on "
                                f"{label.criterion!r} is met={current.met} in {bench_path} and met={label.met} here "
                                "(pass --replace to overwrite)")
            pointwise[key] = label
        for label in labels.pairwise:
            key = (label.criterion, frozenset((label.a, label.b)))
            current = pairwise.get(key)
            if current is not None and (current.a, current.b) != (label.a, label.b):
                flipped = {"a": "b", "b": "a", "tie": "tie"}[label.preferred]
                label = label.model_copy(update={"a": current.a, "b": current.b, "preferred": flipped})
            if current is None:
                counts["labels_added"] += 1
            elif current.preferred == label.preferred:
                counts["labels_unchanged"] += 1
            elif replace:
                counts["labels_replaced"] += 1
            else:
                problems.append(f"{labels_path}: item {item.id!r}: pairwise label {label.a!r}/{label.b!r} on "
                                f"{label.criterion!r} is {current.preferred!r} in {bench_path} and "
                                f"{label.preferred!r} here (pass --replace to overwrite)")
            pairwise[key] = label
        try:
            merged[item.id] = BenchItem.model_validate({
                **target.model_dump(mode="json", exclude_defaults=True), "responses": [
                    r.model_dump(mode="json", exclude_defaults=True) for r in responses],
                "labels": {"pointwise": [p.model_dump() for p in pointwise.values()],
                           "pairwise": [p.model_dump() for p in pairwise.values()]}})
        except (ValidationError, FieldProblem) as error:
            problems.append(f"{labels_path}: item {item.id!r}: the merged item is invalid: "
                            f"{str(error).splitlines()[0]}")
        counts["items"] += 1
    output = Path(output)
    if len(problems) > SHOWN_PROBLEMS:  # too many for the terminal: all of them go to a file beside the output
        listing = output.with_name(f"{output.name}.problems.txt")
        write_text_atomic(listing, (problem + "\n" for problem in problems))
        raise AdjudicationError(problems, listing=listing)
    if problems:
        raise AdjudicationError(problems)
    write_jsonl_atomic(output, (merged.get(item.id, item) for item in bench))
    return MergeResult(counts, output)
