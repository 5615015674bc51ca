"""Oracle tests: every reported number of `run` and `compare`, worked out by hand, through the CLI.

The bench is tests/data/oracle/bench.jsonl (six items; every criterion type; gold ties; o4 alone in its
category and specialty; o6 prompt-only). The judges are tables of fixed verdicts beside it
(tests/data/oracle/judge_a.jsonl, judge_b.jsonl), read by the real ``table:`` backend; their ``answer``
rows are the policy's answers. Nothing below is computed by the code under test: each expected value is a
fraction of hand-counted instances, with the counting shown in the comments.
"""

import json

import pytest

from promedical.bench.results import read_results, read_samples
from tests.conftest import DATA

ORACLE = DATA / "oracle"
BENCH = ORACLE / "bench.jsonl"

# ------------------------------------------------------------------------------------------- judge track
# Judge A's decisions against gold (✓ correct, ✗ wrong; "?" no verdict = unknown; ties are never judged).
#
# o1 diagnosis/cardiology  pointwise  r1p1 ✓  r1p2 ✗  r1e1 ✓  r1e2 ✓  r1s1 ✓ (safe, safe)  r2p1 ✓  r2e1 ✗
#                                     r2s1 ✓ (violation, flagged: TP)
#                          pairwise   p1 ✓  e1 ✗  s1 ✓  p2 gold tie → not judged (A says "a")
# o2 diagnosis/neurology   pointwise  r1p1 ✗  r1s1 ✗ (violation, missed: FN)  r2p1 ✓  r2s1 ✗ (safe, flagged: FP)
#                                     r2e1 ?
#                          pairwise   s1 ✓  p1 ✓ (A's row is (r2, r1) → "a", mirrored to b = gold)
#                                     e1 gold tie → not judged
# o3 treatment/cardiology  pointwise  r1p1 ✓  r1s1 ✓ (TP)  r2p1 ✗  r2e1 ✓
#                          pairwise   p1 ✗ (A says tie, gold a)  e1 ✓
# o4 medication/dermatology pointwise r1p1 ✓  r1s1 ✓ (safe, safe)  r2s1 ✓ (TP)  r2e1 ✓
#                          pairwise   s1 ✓
# o5 treatment/neurology   pointwise  r1p1 ✓  r1e1 ✗  r1s1 ✗ (safe, flagged: FP)
#                          pairwise   p1 ✗
# o6 treatment/neurology   no labels
#
# correct/judged per item and type (pw = pointwise, pr = pairwise; P, E, S = proficiency, excellence, safety)
#        pwP  pwE  pwS  prP  prE  prS | all    veto TP / flagged / violations
# o1     2/3  2/3  2/2  1/1  0/1  1/1 | 8/11    1 / 1 / 1
# o2     1/2  0/0  0/2  1/1   -   1/1 | 3/6     0 / 1 / 1
# o3     1/2  1/1  1/1  0/1  1/1   -  | 4/6     1 / 1 / 1
# o4     1/1  1/1  2/2   -    -   1/1 | 5/5     1 / 1 / 1
# o5     1/1  0/1  0/1  0/1   -    -  | 1/4     0 / 1 / 0
# sum    6/9  4/6  5/8  2/4  1/2  3/3 | 21/32   3 / 5 / 4
#
# veto precision = TP / flagged, recall = TP / violations, F1 = 2TP / (2TP + FP + FN); n = judged pointwise
# safety instances.

JUDGE_A = {
    "overall_accuracy": (21 / 32, 32),
    "pointwise_proficiency_accuracy": (6 / 9, 9),
    "pointwise_excellence_accuracy": (4 / 6, 6),
    "pointwise_safety_accuracy": (5 / 8, 8),
    "pairwise_proficiency_accuracy": (2 / 4, 4),
    "pairwise_excellence_accuracy": (1 / 2, 2),
    "pairwise_safety_accuracy": (3 / 3, 3),
    "veto_precision": (3 / 5, 8),
    "veto_recall": (3 / 4, 8),
    "veto_f1": (6 / (6 + 2 + 1), 8),  # TP 3, FP 5 - 3 = 2, FN 4 - 3 = 1
}
# Groups sum their items' rows (None: no instance of that kind in the group).
JUDGE_A_BY_CATEGORY = {
    "diagnosis": {  # o1 + o2
        "overall_accuracy": (11 / 17, 17), "pointwise_proficiency_accuracy": (3 / 5, 5),
        "pointwise_excellence_accuracy": (2 / 3, 3), "pointwise_safety_accuracy": (2 / 4, 4),
        "pairwise_proficiency_accuracy": (2 / 2, 2), "pairwise_excellence_accuracy": (0 / 1, 1),
        "pairwise_safety_accuracy": (2 / 2, 2),
        "veto_precision": (1 / 2, 4), "veto_recall": (1 / 2, 4), "veto_f1": (2 / (2 + 1 + 1), 4),
    },
    "treatment": {  # o3 + o5 (+ o6, no labels)
        "overall_accuracy": (5 / 10, 10), "pointwise_proficiency_accuracy": (2 / 3, 3),
        "pointwise_excellence_accuracy": (1 / 2, 2), "pointwise_safety_accuracy": (1 / 2, 2),
        "pairwise_proficiency_accuracy": (0 / 2, 2), "pairwise_excellence_accuracy": (1 / 1, 1),
        "pairwise_safety_accuracy": (None, 0),
        "veto_precision": (1 / 2, 2), "veto_recall": (1 / 1, 2), "veto_f1": (2 / (2 + 1 + 0), 2),
    },
    "medication": {  # o4 alone
        "overall_accuracy": (1.0, 5), "pointwise_proficiency_accuracy": (1.0, 1),
        "pointwise_excellence_accuracy": (1.0, 1), "pointwise_safety_accuracy": (1.0, 2),
        "pairwise_proficiency_accuracy": (None, 0), "pairwise_excellence_accuracy": (None, 0),
        "pairwise_safety_accuracy": (1.0, 1),
        "veto_precision": (1.0, 2), "veto_recall": (1.0, 2), "veto_f1": (1.0, 2),
    },
}
JUDGE_A_BY_SPECIALTY = {
    "cardiology": {  # o1 + o3
        "overall_accuracy": (12 / 17, 17), "pointwise_proficiency_accuracy": (3 / 5, 5),
        "pointwise_excellence_accuracy": (3 / 4, 4), "pointwise_safety_accuracy": (3 / 3, 3),
        "pairwise_proficiency_accuracy": (1 / 2, 2), "pairwise_excellence_accuracy": (1 / 2, 2),
        "pairwise_safety_accuracy": (1 / 1, 1),
        "veto_precision": (2 / 2, 3), "veto_recall": (2 / 2, 3), "veto_f1": (4 / 4, 3),
    },
    "neurology": {  # o2 + o5 (+ o6, no labels)
        "overall_accuracy": (4 / 10, 10), "pointwise_proficiency_accuracy": (2 / 3, 3),
        "pointwise_excellence_accuracy": (0 / 1, 1), "pointwise_safety_accuracy": (0 / 3, 3),
        "pairwise_proficiency_accuracy": (1 / 2, 2), "pairwise_excellence_accuracy": (None, 0),
        "pairwise_safety_accuracy": (1 / 1, 1),
        "veto_precision": (0 / 2, 3), "veto_recall": (0 / 1, 3), "veto_f1": (0 / (0 + 2 + 1), 3),
    },
    "dermatology": JUDGE_A_BY_CATEGORY["medication"],  # o4 alone
}
# The constant-predictor floor (bench.metrics.constant_floor) on judge A's 32 judged instances (o2 r2e1, unknown,
# is left out; ties are never judged): each (mode, type) gets its majority gold label, "a" / "met" on a tie.
# pointwise P  met o1r1p1 o2r1p1 o2r2p1 o3r1p1 o4r1p1 (5), not met o1r1p2 o1r2p1 o3r2p1 o5r1p1 (4) → met: 5/9
# pointwise E  met o1r1e1 o3r2e1 o5r1e1 (3), not met o1r1e2 o1r2e1 o4r2e1 (3) → tie, met: 3/6
# pointwise S  met o1r1s1 o2r2s1 o4r1s1 o5r1s1 (4), violated o1r2s1 o2r1s1 o3r1s1 o4r2s1 (4) → tie, met: 4/8, so
#              nothing is vetoed: precision undefined, recall 0/4, F1 0 / (0 + 0 + 4)
# pairwise P   a o1 o3, b o2 o5 → tie, a: 2/4;  E  a o1, b o3 → tie, a: 1/2;  S  a o1 o4, b o2 → a: 2/3
# overall (5 + 3 + 4 + 2 + 1 + 2) / 32
JUDGE_A_FLOOR = {
    "overall_accuracy": 17 / 32, "pointwise_proficiency_accuracy": 5 / 9, "pointwise_excellence_accuracy": 3 / 6,
    "pointwise_safety_accuracy": 4 / 8, "pairwise_proficiency_accuracy": 2 / 4, "pairwise_excellence_accuracy": 1 / 2,
    "pairwise_safety_accuracy": 2 / 3, "veto_precision": None, "veto_recall": 0.0, "veto_f1": 0.0,
}
# instances = 32 judged + 1 unknown (o2 r2e1); pointwise 9 + 6 + 8 + 1 = 24; pairwise 4 + 2 + 3 = 9;
# gold ties o1 p2 and o2 e1.
JUDGE_A_COUNTS = {"instances": 33, "pointwise": 24, "pairwise": 9, "unknown": 1, "pairwise_gold_ties_excluded": 2}

# ------------------------------------------------------------------------------------------- policy track
# Answers (the table's answer rows): o1 = r1's text, o2 = r2's, o3 = r1's, o4 = r1's, o5 none (a failed
# generation), o6 a text of its own. α = 0.1, β = 0.2; overall = [S3 = 0]·min(S1 + α·S2, 1.2) / 1.2.
#
#      verdicts of A                          S1                 S2  S3  exc. fraction  safe  overall
# o1   p1 ✓ p2 ✓ e1 ✓ e2 ✗ s1 ✓ s2 ✓         0.7 + 0.3 = 1.0    1   0   1/2            1     1.1/1.2 = 11/12
# o2   e1 unknown                             excluded
# o3   p1 ✓ e1 ✓ s1 ✗ s2 ✗                    1.0                1   2   1/1            0     0
# o4   p1 ✓ p2 ✓ e1 ✓ e2 ✓ e3 ✓ s1 ✓          0.6 + 0.4 = 1.0    3   0   3/3            1     min(1.3, 1.2)/1.2 = 1
# o5   no answer                              excluded
# o6   p1 ✓ p2 ✗ e1 ✓ e2 ✓ s1 ✓ s2 ✓          0.25               2   0   2/2            1     0.45/1.2 = 3/8
#
# means over o1, o3, o4, o6: S1 (1 + 1 + 1 + 0.25)/4; excellence (0.5 + 1 + 1 + 1)/4; safe 3/4;
# overall (22/24 + 0 + 24/24 + 9/24)/4 = 55/96.
POLICY_A = {
    "overall": (55 / 96, 4), "proficiency": (3.25 / 4, 4), "excellence": (3.5 / 4, 4), "safety_compliance": (3 / 4, 4),
}
POLICY_A_BY_CATEGORY = {
    "diagnosis": {"overall": (11 / 12, 1), "proficiency": (1.0, 1), "excellence": (0.5, 1),
                  "safety_compliance": (1.0, 1)},  # o1 (o2 excluded)
    "treatment": {"overall": ((0 + 3 / 8) / 2, 2), "proficiency": ((1 + 0.25) / 2, 2), "excellence": (1.0, 2),
                  "safety_compliance": (1 / 2, 2)},  # o3, o6 (o5 excluded)
    "medication": {"overall": (1.0, 1), "proficiency": (1.0, 1), "excellence": (1.0, 1),
                   "safety_compliance": (1.0, 1)},  # o4
}
POLICY_A_BY_SPECIALTY = {
    "cardiology": {"overall": ((11 / 12 + 0) / 2, 2), "proficiency": (1.0, 2), "excellence": ((0.5 + 1) / 2, 2),
                   "safety_compliance": (1 / 2, 2)},  # o1, o3
    "neurology": {"overall": (3 / 8, 1), "proficiency": (0.25, 1), "excellence": (1.0, 1),
                  "safety_compliance": (1.0, 1)},  # o6 (o2, o5 excluded)
    "dermatology": POLICY_A_BY_CATEGORY["medication"],
}
POLICY_A_SCORES = {  # item: (S1, S2, S3) in samples.jsonl
    "o1": (1.0, 1.0, 0.0), "o3": (1.0, 1.0, 2.0), "o4": (1.0, 3.0, 0.0), "o6": (0.25, 2.0, 0.0),
}
POLICY_A_COUNTS = {"items": 6, "generation_failures": 1, "empty_answers": 0, "unknown_verdicts": 1,
                   "answers_excluded": 2}


def _run(cli, tmp_path, table: str) -> tuple:
    path = ORACLE / table
    result = cli("run", "--model", f"table:{path}", "--judge", f"table:{path}", "--track", "all",
                 "--bench", str(BENCH), "--output-dir", str(tmp_path / "results"), "--no-cache")
    assert result.code == 0, result.stderr
    run_dir = sorted(p for p in (tmp_path / "results").iterdir() if p.is_dir())[-1]
    return run_dir, json.loads((run_dir / "results.json").read_text())


def _check(metrics: dict, expected: dict) -> None:
    assert set(metrics) == set(expected)
    for name, (value, n) in expected.items():
        assert metrics[name]["n"] == n, name
        if value is None:
            assert metrics[name]["value"] is None, name
        else:
            assert metrics[name]["value"] == pytest.approx(value, abs=1e-12), name


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    from tests.conftest import run_cli

    return _run(run_cli, tmp_path_factory.mktemp("oracle"), "judge_a.jsonl")


def test_judge_track_every_metric(run_a):
    _, results = run_a
    track = results["tracks"]["judge"]
    _check(track["metrics"], JUDGE_A)
    assert track["counts"] == JUDGE_A_COUNTS


def test_judge_track_constant_floor(run_a, cli, tmp_path):
    from promedical.bench.metrics import constant_floor

    floor = constant_floor([s for s in read_samples(run_a[0]) if s.track == "judge"])
    assert floor == pytest.approx(JUDGE_A_FLOOR, abs=1e-12)
    result = cli("run", "--model", f"table:{ORACLE / 'judge_a.jsonl'}", "--bench", str(BENCH), "--output-dir",
                 str(tmp_path), "--no-cache")
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.startswith("  ")}
    assert rows["metric"][-1] == "floor" and rows["overall_accuracy"][-1] == f"{100 * 17 / 32:.1f}"
    assert rows["pairwise_safety_accuracy"][-1] == "66.7" and rows["veto_precision"][-1] == "n/a"


@pytest.mark.parametrize("group", sorted(JUDGE_A_BY_CATEGORY))
def test_judge_track_per_category(run_a, group):
    _check(run_a[1]["tracks"]["judge"]["by_category"][group], JUDGE_A_BY_CATEGORY[group])


@pytest.mark.parametrize("group", sorted(JUDGE_A_BY_SPECIALTY))
def test_judge_track_per_specialty(run_a, group):
    _check(run_a[1]["tracks"]["judge"]["by_specialty"][group], JUDGE_A_BY_SPECIALTY[group])


def test_policy_track_every_metric(run_a):
    run_dir, results = run_a
    track = results["tracks"]["policy"]
    _check(track["metrics"], POLICY_A)
    assert track["counts"] == POLICY_A_COUNTS
    for group, expected in POLICY_A_BY_CATEGORY.items():
        _check(track["by_category"][group], expected)
    for group, expected in POLICY_A_BY_SPECIALTY.items():
        _check(track["by_specialty"][group], expected)
    scores = {s.item_id: (s.s1, s.s2, s.s3) for s in read_samples(run_dir) if s.track == "policy"}
    assert {k: v for k, v in scores.items() if v[0] is not None} == POLICY_A_SCORES  # exact in binary
    assert scores["o2"] == scores["o5"] == (None, None, None)


def test_a_group_of_one_item_has_a_degenerate_interval(run_a):
    """Resampling items: a group with one item resamples that item every time, so its CI is the value."""
    for track in ("judge", "policy"):
        for name, metric in run_a[1]["tracks"][track]["by_category"]["medication"].items():
            if metric["value"] is not None:
                assert metric["ci_low"] == metric["ci_high"] == pytest.approx(metric["value"]), name


def test_the_bootstrap_resamples_items_not_instances(cli, tmp_path):
    """o1 alone: judge A gets 8 of its 11 instances right (see the table above). Every bootstrap replicate of
    a one-item bench is that item, so the CI is the point 8/11; resampling instances would widen it."""
    table = ORACLE / "judge_a.jsonl"
    result = cli("run", "--model", f"table:{table}", "--judge", f"table:{table}", "--track", "all", "--limit", "1",
                 "--bench", str(BENCH), "--output-dir", str(tmp_path), "--no-cache")
    assert result.code == 0, result.stderr
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    overall = json.loads((run_dir / "results.json").read_text())["tracks"]["judge"]["metrics"]["overall_accuracy"]
    assert overall["value"] == pytest.approx(8 / 11)
    assert overall["ci_low"] == overall["ci_high"] == pytest.approx(8 / 11)


def test_results_record_the_judges(run_a):
    results = read_results(run_a[0])
    assert results.model.kind == "table" and results.tracks["policy"].judge.kind == "table"
    assert results.bench.items == 6


# ---------------------------------------------------------------------------------------------- compare
# Judge B (judge_b.jsonl) is A with five rows changed:
#   o1 r1 p2  met → not_met   gold not_met: ✗ → ✓  (pointwise proficiency +1; policy o1 loses p2, weight 0.3)
#   o2 r1 s1  met → not_met   gold not_met: ✗ → ✓  (pointwise safety +1; veto FN → TP)
#   o2 r2 e1  ?   → met       A has no verdict, so compare drops this instance from both runs
#   o4 r1 p1  met → not_met   gold met:     ✓ → ✗  (pointwise proficiency −1; policy o4 loses p1, weight 0.6)
#   o5 p1 (pair) a → b        gold b:       ✗ → ✓  (pairwise proficiency +1)
# Judge track over the 32 instances both judged (B − A):
#   overall 23/32 − 21/32 = +2/32; pointwise proficiency 6/9 − 6/9 = 0; pointwise excellence 4/6 − 4/6 = 0
#   (o2 r2 e1 dropped); pointwise safety 6/8 − 5/8 = +1/8; pairwise proficiency 3/4 − 2/4 = +1/4;
#   veto: B has TP 4, flagged 6, violations 4 → precision 4/6 − 3/5 = +1/15, recall 4/4 − 3/4 = +1/4,
#   F1 8/(8 + 2 + 0) − 6/9 = 4/5 − 2/3 = +2/15.
#   Paired test: per-item differences in correct decisions o1 +1, o2 +1, o3 0, o4 −1, o5 +1 (Σ = 2); of the
#   2⁵ sign patterns |Σ| ≥ 2 unless exactly two of the four ±1 are +: 32 − 2·6 = 20, so p = 20/32.
COMPARE_JUDGE = {
    "overall_accuracy": (2 / 32, 32), "pointwise_proficiency_accuracy": (0.0, 9),
    "pointwise_excellence_accuracy": (0.0, 6), "pointwise_safety_accuracy": (1 / 8, 8),
    "pairwise_proficiency_accuracy": (1 / 4, 4), "pairwise_excellence_accuracy": (0.0, 2),
    "pairwise_safety_accuracy": (0.0, 3),
    "veto_precision": (1 / 15, 8), "veto_recall": (1 / 4, 8), "veto_f1": (2 / 15, 8),
}
# Policy track: A graded o1, o3, o4, o6; B also o2 (its e1 verdict now exists), neither o5 (no answer). Over
# o1, o3, o4, o6: B's o1 S1 = 0.7, overall (0.7 + 0.1)/1.2 = 2/3 (A: 11/12); o4 S1 = 0.4, overall
# (0.4 + 0.3)/1.2 = 7/12 (A: 1); o3, o6 unchanged.
#   overall ((2/3 − 11/12) + (7/12 − 1))/4 = (−3/12 − 5/12)/4 = −1/6; proficiency (−0.3 − 0.6)/4 = −0.225;
#   excellence and safety 0. Paired test: differences −1/4 and −5/12 on two items, zero on two; |Σ| reaches
#   2/3 only when both signs agree: 2 of 4 patterns, p = 1/2.
COMPARE_POLICY = {"overall": (-1 / 6, 4), "proficiency": (-0.225, 4), "excellence": (0.0, 4),
                  "safety_compliance": (0.0, 4)}


@pytest.fixture(scope="module")
def comparison(run_a, tmp_path_factory):
    from tests.conftest import run_cli

    run_b, _ = _run(run_cli, tmp_path_factory.mktemp("oracle_b"), "judge_b.jsonl")
    result = run_cli("compare", str(run_a[0]), str(run_b), "--json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)["tracks"]


def test_compare_judge_track(comparison):
    judge = comparison["judge"]
    _check(judge["differences"], COMPARE_JUDGE)
    assert judge["paired_test"]["items"] == 5
    assert judge["paired_test"]["p_value"] == pytest.approx(20 / 32)
    assert judge["instances"] == {"compared": 32, "undecided_in_a": 1, "undecided_in_b": 0,
                                  "only_in_a": 0, "only_in_b": 0}


def test_compare_policy_track(comparison):
    policy = comparison["policy"]
    _check(policy["differences"], COMPARE_POLICY)
    assert policy["paired_test"]["items"] == 4
    assert policy["paired_test"]["p_value"] == pytest.approx(1 / 2)
    assert policy["instances"] == {"compared": 4, "undecided_in_a": 2, "undecided_in_b": 1,
                                   "only_in_a": 0, "only_in_b": 0}


def test_no_items_gives_no_estimate_on_zero_instances():
    """A track with nothing decided reports n/a on n = 0 for every metric, not a number."""
    from promedical.bench.metrics import JUDGE_CONTRIBUTIONS, POLICY_CONTRIBUTIONS, estimate_all

    for contributions in (JUDGE_CONTRIBUTIONS, POLICY_CONTRIBUTIONS):
        assert estimate_all([], contributions, [], seed=0) == {
            name: {"value": None, "ci_low": None, "ci_high": None, "n": 0} for name in contributions}


def test_compare_refuses_runs_on_different_items_in_either_order(run_a, tmp_path):
    from tests.conftest import run_cli

    table = ORACLE / "judge_a.jsonl"
    result = run_cli("run", "--model", f"table:{table}", "--bench", str(BENCH), "--limit", "2",
                     "--output-dir", str(tmp_path), "--no-cache")
    assert result.code == 0, result.stderr
    fewer = next(p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith("."))
    for first, second in ((run_a[0], fewer), (fewer, run_a[0])):
        result = run_cli("compare", str(first), str(second))
        assert result.code == 2 and "runs must use the same bench items" in result.stderr


def test_prompt_only_items_anywhere_are_skipped_not_the_end_of_the_labels():
    import dataclasses

    from promedical.bench.datasets import load_bench
    from promedical.bench.instances import labelled_instances

    items = load_bench(str(BENCH))
    prompt_only = [item for item in items if item.labels is None]
    labelled = [item for item in items if item.labels is not None]
    assert prompt_only and labelled
    first = list(labelled_instances(prompt_only + labelled))
    assert [(i.item.id, i.criterion.id, i.response_ids) for i in first] == \
        [(i.item.id, i.criterion.id, i.response_ids) for i in labelled_instances(labelled)]
    # every pointwise and pairwise label of the labelled items (counted from the file, not by the code)
    assert len(first) == sum(len(item.labels.pointwise) + len(item.labels.pairwise) for item in labelled)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first[0].gold = "met"  # type: ignore[misc]
