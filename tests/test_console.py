"""Console tables: columns stay aligned whatever the number of digits in a value or a CI bound."""

import pytest

from promedical.bench.cli.run import format_comparison, format_summary
from promedical.bench.cli.ultramedical import format_ultramedical
from promedical.bench.compare import compare_runs
from promedical.bench.results import MetricValue, TrackResult
from promedical.bench.runner import RunConfig, run
from tests.conftest import DATA

#: (value, ci_low, ci_high): bounds of one, two and three digits before the point, in percent.
ESTIMATES = [(0.25, 0.05, 0.5), (0.5, 0.123, 0.99), (1.0, 1.0, 1.0), (0.07, 0.0, 0.2)]


def _assert_aligned(text: str, names: list[str]) -> None:
    """The rows named ``names`` have every bracket, comma and decimal point (after the name column) in the
    same columns, and end in the same column."""
    rows = [next(line for line in text.splitlines() if line.startswith(f"  {name} ")) for name in names]
    cut = 2 + max(map(len, names))
    marks = [{i for i, c in enumerate(row) if i >= cut and c in "[,.]"} for row in rows]
    assert all(m == marks[0] for m in marks) and len({len(row) for row in rows}) == 1, "\n" + "\n".join(rows)
    assert len(marks[0]) >= 5  # the value's point, and the interval's two brackets, comma and points


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A real run (the oracle bench judged by a table), with metrics set to estimates of every width."""
    oracle = DATA / "oracle"
    outcome = run(RunConfig(model=f"table:{oracle / 'judge_a.jsonl'}", bench=str(oracle / "bench.jsonl"),
                            output_dir=tmp_path_factory.mktemp("runs"), progress=False))
    track = outcome.results.tracks["judge"]
    for name, (value, low, high) in zip(track.metrics, ESTIMATES, strict=False):
        track.metrics[name] = MetricValue(value=value, ci_low=low, ci_high=high, n=7)
    return outcome


def test_run_summary_columns_align(results):
    names = list(results.results.tracks["judge"].metrics)[:len(ESTIMATES)]
    _assert_aligned(format_summary(results.results), names)
    floors = dict(zip(names, (0.5, 1.0, 0.0, 0.123), strict=True))  # the floor column: one to three digits
    _assert_aligned(format_summary(results.results, floors), names)


def test_compare_columns_align(results):
    comparison = compare_runs(results.run_dir, results.run_dir, seed=0)
    differences = comparison["tracks"]["judge"]["differences"]
    names = list(differences)[:len(ESTIMATES)]
    for name, (value, low, high) in zip(names, [(-0.25, -1.0, 0.05), (0.05, -0.07, 0.123), *ESTIMATES[2:]],
                                        strict=True):
        differences[name] = {"value": value, "ci_low": low, "ci_high": high, "n": 7}
    _assert_aligned(format_comparison(comparison), names)


def test_ultramedical_columns_align(results):
    tasks = ["medqa", "mmlu_medical_genetics", "mmlu_anatomy"]
    metrics = {}
    for index, name in enumerate([*tasks, "avg", "micro_avg"]):
        value, low, high = ESTIMATES[index % len(ESTIMATES)]
        suffix = "_acc_norm" if name in ("avg", "micro_avg") else ".acc_norm"
        metrics[f"{name}.acc" if name in tasks else name] = MetricValue(value=value, ci_low=low, ci_high=high, n=8)
        metrics[name + suffix] = MetricValue(value=1 - value, ci_low=1 - high, ci_high=1 - low, n=8)
    ultramedical = results.results.model_copy(update={
        "config": {"protocol": "loglik", "data": "bundled", "tasks": tasks, "bundled_items": False},
        "tracks": {"ultramedical": TrackResult(metrics=metrics, by_category={}, by_specialty={}, counts={})}})
    text = format_ultramedical(ultramedical)
    _assert_aligned(text, ["MedQA (medqa)", "MMLU.mg (mmlu_medical_genetics)", "MMLU.an (mmlu_anatomy)",
                           "avg (unweighted over tasks)", "micro_avg (all questions)"])
    assert "percent, 95% CI over questions" in text
