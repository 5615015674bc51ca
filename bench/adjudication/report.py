"""A judge's verdicts against adjudicated labels, with each physician beside it."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promedical.bench.adjudication.errors import AdjudicationError
from promedical.bench.adjudication.sources import read_run
from promedical.bench.agreement import (
    PAIRWISE_SCALE,
    POINTWISE_SCALE,
    AgreementEstimate,
    LongRating,
    classification_agreement,
    read_long,
)
from promedical.bench.datasets import load_bench
from promedical.bench.instances import labelled_instances
from promedical.bench.results import JudgeSample, PolicySample
from promedical.bench.schema import BenchItem
from promedical.bench.statistics import N_BOOTSTRAP

CLASSES = {"pointwise": POINTWISE_SCALE[::-1], "pairwise": PAIRWISE_SCALE[::-1]}


def _unit_key(task: str, item_id: str, criterion_id: str, responses: Sequence[str]) -> tuple:
    return (task, item_id, criterion_id, responses[0] if task == "pointwise" else frozenset(responses))


def _orient(value: str, source: Sequence[str], target: Sequence[str]) -> str:
    """A pairwise value given for responses ``source`` (a, b), expressed for the order ``target``."""
    if value in ("a", "b") and tuple(source) != tuple(target):
        return {"a": "b", "b": "a"}[value]
    return value


def _verdicts(run_dir: Path, which: str | None) -> tuple[dict[tuple, tuple], dict[str, Any]]:
    """The run's verdicts by unit key: (decision, response order, texts). Judge-track samples when the run has
    them (the model is the judge), else the policy track's grader (``which`` forces one)."""
    results, samples = read_run(run_dir)
    tracks = {s.track for s in samples}
    which = which or ("judge" if "judge" in tracks else "policy")
    if which not in tracks:
        raise AdjudicationError([f"{run_dir}: no {which}-track samples"])
    verdicts: dict[tuple, tuple] = {}
    if which == "judge":
        judge_id = results.model.id
        for s in samples:
            if isinstance(s, JudgeSample):
                ids = tuple(s.response_ids)
                verdicts[_unit_key(s.mode, s.item_id, s.criterion_id, ids)] = (s.decision, ids, tuple(s.responses))
    else:
        judge = results.tracks["policy"].judge if "policy" in results.tracks else None
        judge_id = judge.id if judge else "policy-track judge"
        for s in samples:
            if isinstance(s, PolicySample) and s.answer is not None:
                for j in s.judgements:
                    verdicts[_unit_key("pointwise", s.item_id, j.criterion_id, (results.model.id,))] = (
                        j.decision, (results.model.id,), (s.answer,))
    return verdicts, {"judge": judge_id, "run": results.run_id, "verdicts": which}


def _gold_from_bench(items: Sequence[BenchItem]) -> dict[tuple, tuple]:
    return {_unit_key(label.mode, label.item.id, label.criterion.id, label.response_ids):
            (label.gold, label.response_ids, label.criterion.type, label.texts)
            for label in labelled_instances(items)}


def _ratings_by_unit(rows: Sequence[LongRating], path: Path) -> dict[tuple, dict[str, Any]]:
    needed = ("task", "item_id", "criterion_id", "response_a")
    if rows and any(c not in rows[0].extra for c in needed):
        raise AdjudicationError([f"{path}: to compare with a judge, the ratings need the columns "
                                 f"{', '.join(needed)} (the output of `adjudicate import` has them)"])
    units: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        e = row.extra
        responses = (e["response_a"],) if e["task"] == "pointwise" else (e["response_a"], e.get("response_b", ""))
        entry = units.setdefault(_unit_key(e["task"], e["item_id"], e["criterion_id"], responses),
                                 {"responses": responses, "criterion_type": e.get("criterion_type", ""), "ratings": {}})
        entry["ratings"][row.rater] = row.value.lower() if e["task"] == "pairwise" else row.value
    return units


def judge_agreement(run_dir: str | Path, labels: str | Path, ratings: str | Path | None = None, *,
                    verdicts: str | None = None, seed: int = 0, n_boot: int = N_BOOTSTRAP) -> dict[str, Any]:
    """A judge's verdicts (a run) against adjudicated labels, with each physician beside it.

    ``labels``: final labels (bench JSONL) or long-format ratings (then the gold label of a unit is its strict
    majority; units without one are left out). ``ratings``: the physicians' long-format ratings (defaults to
    ``labels`` when that is long format). Per task and criterion type:

    - ``judge_vs_labels``: accuracy, Cohen's κ and macro-F1 of the judge against the gold labels;
    - ``judge_vs_physicians``: the same in HealthBench's pairwise form — one instance per (unit, physician
      rating), so the judge is scored against every physician's rating;
    - ``physicians``: each physician leave-one-out — their rating against every *other* physician's rating of
      the same unit (pairwise form) — beside the judge scored against those same other physicians' ratings on
      the same units.

    CIs resample units (all instances of a unit move together)."""
    run_dir, labels = Path(run_dir), Path(labels)
    found, meta = _verdicts(run_dir, verdicts)
    long_rows = None
    if labels.suffix == ".csv" or _is_long_jsonl(labels):
        long_rows, _ = read_long(labels)
        ratings = ratings or labels
    gold: dict[tuple, tuple] = {}
    if long_rows is None:
        gold = _gold_from_bench(load_bench(labels))
    physicians = _ratings_by_unit(read_long(ratings)[0], Path(ratings)) if ratings else {}
    if long_rows is not None:
        for key, entry in physicians.items():
            top = Counter(entry["ratings"].values()).most_common(2)
            if len(top) == 1 or top[0][1] > top[1][1]:
                gold[key] = (top[0][0], entry["responses"], entry["criterion_type"], ())
    problems = []
    counts: Counter = Counter()
    matched: dict[tuple, tuple[str, str, str, Sequence[str]]] = {}  # key -> (verdict, gold, type, responses)
    for key, (value, responses, criterion_type, texts) in gold.items():
        verdict = found.get(key)
        if verdict is None:
            counts["labels_without_verdict"] += 1
            continue
        decision, order, verdict_texts = verdict
        if texts and verdict_texts and tuple(_orient_texts(verdict_texts, order, responses)) != tuple(texts):
            problems.append(f"{run_dir}: item {key[1]!r}: the judged response text differs from the labelled one "
                            f"({labels}); compare a run made on the labelled responses")
            if len(problems) > 5:
                break
            continue
        if decision == "unknown":
            counts["unknown_verdicts"] += 1
            continue
        matched[key] = (_orient(decision, order, responses), value, criterion_type, responses)
    if problems:
        raise AdjudicationError(problems)
    if not matched:
        raise AdjudicationError([f"{run_dir}: none of its verdicts is on a labelled unit of {labels} (same items, "
                                 "criteria and response ids are needed)"])
    counts["matched"] = len(matched)
    groups: dict[str, list[tuple]] = defaultdict(list)
    for key, entry in matched.items():
        groups[key[0]].append(key)
        groups[f"{key[0]}/{entry[2]}"].append(key)
    report: dict[str, Any] = {}
    for name in sorted(groups, key=lambda g: (g.split("/")[0], "/" in g, g)):
        keys = groups[name]
        classes = CLASSES[name.split("/")[0]]
        section: dict[str, Any] = {"judge_vs_labels": _as_dicts(classification_agreement(
            [matched[k][0] for k in keys], [matched[k][1] for k in keys], keys, classes, seed=seed, n_boot=n_boot))}
        if physicians:
            section.update(_physician_section(keys, matched, physicians, classes, seed, n_boot))
        report[name] = section
    return {**meta, "counts": dict(counts), "groups": report}


def _orient_texts(texts: Sequence[str], order: Sequence[str], target: Sequence[str]) -> Sequence[str]:
    return texts[::-1] if len(order) == 2 and tuple(order) != tuple(target) else texts


def _is_long_jsonl(path: Path) -> bool:
    if path.suffix != ".jsonl" or not path.is_file():
        return False
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    first = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(first, dict) and "rater" in first and "unit" in first
    return False


def _as_dicts(estimates: dict[str, AgreementEstimate]) -> dict[str, dict[str, Any]]:
    return {name: value.as_dict() for name, value in estimates.items()}


def _physician_section(keys: Sequence[tuple], matched: dict, physicians: dict, classes: Sequence[str], seed: int,
                       n_boot: int) -> dict[str, Any]:
    judge_pred, judge_ref, judge_units = [], [], []
    per_rater: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for key in keys:
        entry = physicians.get(key)
        if entry is None:
            continue
        verdict = matched[key][0]
        given = {r: _orient(v, entry["responses"], matched[key][3]) for r, v in entry["ratings"].items()}
        for rater, value in given.items():
            judge_pred.append(verdict)
            judge_ref.append(value)
            judge_units.append(key)
            for other, other_value in given.items():
                if other == rater:
                    continue
                bucket = per_rater[rater]
                bucket["pred"].append(value)
                bucket["ref"].append(other_value)
                bucket["judge"].append(verdict)
                bucket["units"].append(key)
    section: dict[str, Any] = {"judge_vs_physicians": _as_dicts(classification_agreement(
        judge_pred, judge_ref, judge_units, classes, seed=seed, n_boot=n_boot,
        n_raters=len({r for e in physicians.values() for r in e["ratings"]})))}
    section["physicians"] = {
        rater: {"physician": _as_dicts(classification_agreement(b["pred"], b["ref"], b["units"], classes, seed=seed,
                                                                n_boot=n_boot)),
                "judge": _as_dicts(classification_agreement(b["judge"], b["ref"], b["units"], classes, seed=seed,
                                                            n_boot=n_boot))}
        for rater, b in sorted(per_rater.items())}
    return section


def format_judge_report(report: dict[str, Any]) -> str:
    """A plain-text table of :func:`judge_agreement`'s result."""

    def cell(entry: dict[str, Any]) -> str:
        if entry["value"] is None:
            return f"{'n/a':>6} {'':<16}"
        ci = f"[{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]" if entry["ci_low"] is not None else ""
        return f"{entry['value']:>6.3f} {ci:<16}"

    counts = ", ".join(f"{k}={v}" for k, v in report["counts"].items())
    lines = [f"judge {report['judge']} (run {report['run']}, {report['verdicts']} verdicts)  {counts}"]
    for name, section in report["groups"].items():
        lines.append(f"\n{name}")
        lines.append(f"  {'':<34}{'accuracy':<23}{'cohen_kappa':<23}{'macro_f1':<23}units")
        rows = [("judge vs adjudicated labels", section["judge_vs_labels"])]
        if "judge_vs_physicians" in section:
            rows.append(("judge vs each physician", section["judge_vs_physicians"]))
        for rater, entry in section.get("physicians", {}).items():
            rows.append((f"{rater} vs other physicians", entry["physician"]))
            rows.append(("  judge, same units and references", entry["judge"]))
        for label, metrics in rows:
            lines.append(f"  {label:<34}" + "".join(cell(metrics[m]) for m in ("accuracy", "cohen_kappa", "macro_f1"))
                         + f"{metrics['accuracy']['n_units']}")
    return "\n".join(lines)
