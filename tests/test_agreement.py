"""Agreement statistics against published reference values, the bootstrap, the long format and the CLI."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from promedical.bench import agreement as A
from promedical.bench.cli import main
from tests.conftest import DATA

NAN = np.nan
AGREEMENT = DATA / "agreement"

# Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability (Annenberg School for Communication,
# Departmental Papers 43), the example with 4 coders and 12 units with missing values, printed there as
# coders × units. The same data is Gwet (2014), Handbook of Inter-Rater Reliability, 4th ed., p. 120
# (`cac.raw4raters` in the irrCAC package).
KRIPPENDORFF_2011 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]).T  # our API takes (units, raters)

# Fleiss' kappa example of Wikipedia ("Fleiss' kappa", worked example): 10 subjects, 14 raters, 5 categories,
# given as how many raters chose each category; kappa = 0.210.
FLEISS_WIKIPEDIA_COUNTS = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])

# Shrout, P. E. & Fleiss, J. L. (1979). Intraclass correlations: uses in assessing rater reliability.
# Psychological Bulletin 86(2), 420-428. Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
                         dtype=float)

# irrCAC vignette "Calculating Chance-corrected Agreement Coefficients" (Gwet, 2019), dataset
# `cont3x3abstractors`: two abstractors classify 100 pregnancies (Ectopic, AIU, NIU). Printed there:
# Cohen's kappa 0.7964094, Scott's pi 0.7962397, Gwet's AC1 0.8493305, Krippendorff's alpha 0.7972585,
# percent agreement 0.89.
CONT3X3_ABSTRACTORS = np.array([[13, 0, 0], [0, 20, 7], [0, 4, 56]])


def _from_contingency(table: np.ndarray) -> np.ndarray:
    pairs = [(i, j) for i in range(table.shape[0]) for j in range(table.shape[1]) for _ in range(table[i, j])]
    return np.array(pairs, dtype=float)


def _from_counts(counts: np.ndarray) -> np.ndarray:
    return np.array([np.repeat(np.arange(counts.shape[1]), row) for row in counts], dtype=float)


@pytest.mark.parametrize(("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849),
                                                 ("ratio", 0.797)])
def test_krippendorff_2011_reference_values(level, expected):
    assert round(A.krippendorff_alpha(KRIPPENDORFF_2011, level), 3) == expected


def test_gwet_ac1_reproduces_published_examples():
    # cont3x3abstractors (irrCAC vignette, above): AC1 0.8493305.
    two = _from_contingency(CONT3X3_ABSTRACTORS)
    assert round(A.gwet_ac1(two), 3) == 0.849
    # The same vignette prints the other coefficients of that table.
    assert round(A.cohen_kappa(two), 3) == 0.796
    assert round(A.fleiss_kappa(two), 3) == 0.796  # Fleiss' kappa of two raters is Scott's pi, 0.7962397
    assert round(A.krippendorff_alpha(two, "nominal"), 3) == 0.797
    assert round(A.percent_agreement(two), 3) == 0.890
    # Gwet (2014) Handbook, p. 120 data (cac.raw4raters, = Krippendorff 2011 above): irrCAC's gwet.ac1.raw gives
    # AC1 = 0.77544 with percent agreement 0.8181818 and chance agreement 0.1903212.
    assert round(A.gwet_ac1(KRIPPENDORFF_2011), 3) == 0.775
    assert round(A.percent_agreement(KRIPPENDORFF_2011), 4) == 0.8182


def test_fleiss_kappa_wikipedia_example():
    ratings = _from_counts(FLEISS_WIKIPEDIA_COUNTS)
    assert ratings.shape == (10, 14)
    assert round(A.fleiss_kappa(ratings), 3) == 0.210


def test_shrout_fleiss_1979_icc_table():
    table = {form: A.icc(SHROUT_FLEISS, form) for form in A.ICC_FORMS}
    # Table 4 prints two decimals: .17 .29 .71 .44 .62 .91; the three-decimal values follow from Table 3's exact
    # mean squares (the psych package's ICC(sf) prints the same).
    published = {"ICC(1,1)": 0.17, "ICC(2,1)": 0.29, "ICC(3,1)": 0.71, "ICC(1,k)": 0.44, "ICC(2,k)": 0.62,
                 "ICC(3,k)": 0.91}
    three = {"ICC(1,1)": 0.166, "ICC(2,1)": 0.290, "ICC(3,1)": 0.715, "ICC(1,k)": 0.443, "ICC(2,k)": 0.620,
             "ICC(3,k)": 0.909}
    for form in A.ICC_FORMS:
        assert round(table[form], 2) == published[form], form
        assert round(table[form], 3) == three[form], form
        assert A.icc(SHROUT_FLEISS, form) == pytest.approx(table[form])
    # Units some judge did not rate are left out: the table with an extra incomplete row gives the same ICCs.
    padded = np.vstack([SHROUT_FLEISS, [3, NAN, 4, 5]])
    assert A.icc(padded, "ICC(2,1)") == pytest.approx(table["ICC(2,1)"])


def test_weighted_cohen_kappa_follows_scikit_learn():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(3)
    first = rng.integers(0, 4, 80)
    second = np.clip(first + rng.integers(-1, 2, 80), 0, 3)
    ratings = np.column_stack([first, second]).astype(float)
    for weights in (None, "linear", "quadratic"):
        assert A.cohen_kappa(ratings, weights) == pytest.approx(cohen_kappa_score(first, second, weights=weights))
    assert A.cohen_kappa(ratings, "quadratic") > A.cohen_kappa(ratings, None)
    # Light's kappa is the mean of scikit-learn's kappa over rater pairs.
    many = _random_ratings(2, raters=4, missing=0.2)
    for weights in (None, "linear", "quadratic"):
        pairs = []
        for j in range(4):
            for k in range(j + 1, 4):
                both = ~np.isnan(many[:, j]) & ~np.isnan(many[:, k])
                pairs.append(cohen_kappa_score(many[both, j].astype(int), many[both, k].astype(int),
                                               labels=[1, 2, 3, 4], weights=weights))
        assert A.light_kappa(many, weights) == pytest.approx(np.mean(pairs))
    with pytest.raises(A.AgreementError, match="exactly two raters"):
        A.cohen_kappa(KRIPPENDORFF_2011)


def _random_ratings(seed: int, units: int = 70, raters: int = 4, values: int = 4, missing: float = 0.3):
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, values + 1, units)
    ratings = np.where(rng.random((units, raters)) < 0.6, truth[:, None], rng.integers(1, values + 1, (units, raters)))
    ratings = ratings.astype(float)
    ratings[rng.random(ratings.shape) < missing] = NAN
    return ratings


@pytest.mark.parametrize("seed", [0, 1])
def test_bootstrap_replicates_use_the_same_formula_as_the_libraries(seed):
    """The vectorised replicate of every statistic, at unit weights (the sample itself), equals the point value
    computed by the library (krippendorff, scikit-learn, statsmodels) or by our implementation."""
    ratings = _random_ratings(seed)
    cats = np.unique(ratings[~np.isnan(ratings)])
    names = ["percent_agreement", "fleiss_kappa", "gwet_ac1", "light_kappa", "light_kappa_linear",
             "light_kappa_quadratic", *A.ICC_KEYS]
    checks = [(name, ratings, "nominal") for name in names]
    checks += [("krippendorff_alpha", ratings, level) for level in A.LEVELS]
    checks += [(name, ratings[:, :2], "nominal") for name in ("cohen_kappa", "cohen_kappa_linear",
                                                              "cohen_kappa_quadratic")]
    checks += [(name, np.nan_to_num(ratings, nan=2.0), "interval") for name in A.ICC_KEYS]
    for name, data, level in checks:
        prepared = A._prepare(name, data, cats, level)
        if prepared.value is None:
            continue
        replicate = prepared.replicates(np.ones((1, prepared.n_units)))[0]
        assert replicate == pytest.approx(prepared.value, abs=1e-10), (name, level)


def test_estimates_are_seeded_and_bracket_the_value():
    ratings = _random_ratings(5, units=120)
    first = A.agreement_report(ratings, level="ordinal", seed=7, n_boot=400)
    again = A.agreement_report(ratings, level="ordinal", seed=7, n_boot=400)
    other = A.agreement_report(ratings, level="ordinal", seed=8, n_boot=400)
    assert first == again
    assert first["krippendorff_alpha"].ci_low != other["krippendorff_alpha"].ci_low
    assert list(first) == ["percent_agreement", "krippendorff_alpha", "light_kappa", "light_kappa_linear",
                           "light_kappa_quadratic", "fleiss_kappa", "gwet_ac1"]
    for name, est in first.items():
        assert est.ci_low <= est.value <= est.ci_high, name
        assert est.n_raters == 4 and est.n_units > 0
    assert first["krippendorff_alpha"].value == pytest.approx(A.krippendorff_alpha(ratings, "ordinal"))
    single = A.estimate("krippendorff_alpha", ratings, level="ordinal", seed=7, n_boot=400)
    assert single == first["krippendorff_alpha"]
    interval = A.agreement_report(SHROUT_FLEISS, level="interval", seed=0, n_boot=200)
    assert set(A.ICC_KEYS) <= set(interval) and interval["icc_2_1"].n_units == 6


def test_undefined_and_refused_inputs():
    same = np.array([[1, 1], [1, 1], [1, NAN]], dtype=float)
    assert A.krippendorff_alpha(same) is None
    assert A.cohen_kappa(same) is None
    assert A.fleiss_kappa(same) is None
    assert A.percent_agreement(same) == 1.0
    est = A.estimate("krippendorff_alpha", same)
    assert est.value is None and est.ci_low is None and est.n_units == 2
    # With the scale's other category declared, AC1 is defined (q = 2) and perfect.
    assert A.gwet_ac1(same, categories=[0, 1]) == 1.0
    with pytest.raises(A.AgreementError, match=r"\(units, raters\)"):
        A.as_ratings([1, 2, 3])
    with pytest.raises(A.AgreementError, match="numbers"):
        A.as_ratings([["met", "not_met"]])
    with pytest.raises(A.AgreementError, match="outside the given categories"):
        A.gwet_ac1(same, categories=[0])
    with pytest.raises(A.AgreementError, match="unknown level"):
        A.krippendorff_alpha(same, "cardinal")


def test_every_public_function_documents_the_array_shape():
    for name in ("as_ratings", "percent_agreement", "krippendorff_alpha", "cohen_kappa", "light_kappa",
                 "fleiss_kappa", "gwet_ac1", "icc", "estimate", "agreement_report"):
        doc = inspect.getdoc(getattr(A, name))
        assert "(units, raters)" in doc and "NaN" in doc, name
    assert "raters × units" in A.__doc__


def test_long_format_csv_and_jsonl_give_the_same_grouped_report(tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for unit in range(40):
        task = "pointwise" if unit % 3 else "pairwise"
        kind = ("proficiency", "safety")[unit % 2]
        truth = rng.integers(0, 2 if task == "pointwise" else 3)
        for rater in ("p1", "p2", "p3"):
            label = truth if rng.random() < 0.8 else rng.integers(0, 2 if task == "pointwise" else 3)
            value = ("not_met", "met")[label] if task == "pointwise" else ("b", "tie", "a")[label]
            records.append({"unit": f"u{unit}", "rater": rater, "value": value, "task": task, "criterion_type": kind})
    records[0]["value"] = ""  # an unrated row
    csv_path, jsonl_path = tmp_path / "r.csv", tmp_path / "r.jsonl"
    csv_path.write_text("unit,rater,value,task,criterion_type\n" + "".join(
        f"{r['unit']},{r['rater']},{r['value']},{r['task']},{r['criterion_type']}\n" for r in records))
    jsonl_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    rows_csv, columns = A.read_long(csv_path)
    rows_jsonl, _ = A.read_long(jsonl_path)
    assert len(rows_csv) == len(records) - 1
    by_csv = A.long_agreement(rows_csv, seed=3, n_boot=200, columns=columns)
    assert by_csv == A.long_agreement(rows_jsonl, seed=3, n_boot=200)
    # Two scales (pointwise and pairwise): no pooled "all"; each task, and each task × criterion type.
    assert list(by_csv) == ["pairwise", "pointwise", "pairwise/proficiency", "pairwise/safety",
                            "pointwise/proficiency", "pointwise/safety"]
    # A group equals the direct computation on its own (units, raters) matrix.
    pointwise = [r for r in rows_csv if r.extra["task"] == "pointwise"]
    codes, cats = A.code_labels([r.value for r in pointwise])
    assert codes == {"met": 1.0, "not_met": 0.0} and cats == [0.0, 1.0]
    matrix, _, raters = A.ratings_matrix(pointwise, codes)
    assert raters == ["p1", "p2", "p3"] and matrix.shape == (len({r.unit for r in pointwise}), 3)
    direct = A.agreement_report(matrix, categories=cats, seed=3, n_boot=200)
    assert by_csv["pointwise"] == {k: v.as_dict() for k, v in direct.items()}


def _cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849),
                                                 ("ratio", 0.797)])
def test_cli_reproduces_krippendorff_2011_from_a_long_file(capsys, level, expected):
    code, out, err = _cli(capsys, "agreement", str(AGREEMENT / "krippendorff_2011.csv"), "--level", level, "--json",
                          "--n-boot", "300")
    assert code == 0, err
    report = json.loads(out)
    alpha = report["krippendorff_alpha"]
    assert set(alpha) == {"value", "ci_low", "ci_high", "n_units", "n_raters"}
    assert round(alpha["value"], 3) == expected
    assert alpha["n_units"] == 11 and alpha["n_raters"] == 4  # unit 12 has a single rating: not pairable
    assert alpha["ci_low"] <= alpha["value"] <= alpha["ci_high"]
    if level == "nominal":
        assert round(report["gwet_ac1"]["value"], 3) == 0.775
    if level == "interval":
        assert "icc_2_1" in report


def test_cli_text_output_and_seed(capsys):
    path = str(AGREEMENT / "krippendorff_2011.csv")
    code, out, _ = _cli(capsys, "agreement", path, "--n-boot", "200")
    assert code == 0 and "krippendorff_alpha" in out and "95% CI" in out
    first = _cli(capsys, "agreement", path, "--json", "--seed", "1", "--n-boot", "200")[1]
    second = _cli(capsys, "agreement", path, "--json", "--seed", "1", "--n-boot", "200")[1]
    other = _cli(capsys, "agreement", path, "--json", "--seed", "2", "--n-boot", "200")[1]
    assert first == second != other


@pytest.mark.parametrize(("name", "args", "message"), [
    ("duplicate_rating.csv", [], "duplicate_rating.csv:5: rater: unit 'u1' rated twice by rater 'A' (first at line 2)"),
    ("missing_value_column.csv", [], "missing_value_column.csv:1: header: missing column value"),
    ("unordered_labels.csv", ["--level", "ordinal"], "labels without a known order"),
    ("absent.csv", [], "absent.csv: no such file"),
])
def test_cli_refuses_bad_long_files_with_exit_2(capsys, name, args, message):
    code, out, err = _cli(capsys, "agreement", str(AGREEMENT / name), *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


def test_cli_order_option_makes_labels_ordinal(capsys):
    path = str(AGREEMENT / "unordered_labels.csv")
    code, out, err = _cli(capsys, "agreement", path, "--level", "ordinal", "--order", "low,mid,high", "--json",
                          "--n-boot", "0")
    assert code == 0, err
    assert json.loads(out)["percent_agreement"]["value"] == 0.5


def test_grouping_pools_all_only_where_it_adds_something(tmp_path):
    path = tmp_path / "pointwise_only.csv"
    lines = ["unit,rater,value,task,criterion_type"]
    for unit in range(8):
        kind = ("proficiency", "safety")[unit % 2]
        second = ("met", "not_met")[unit % 3 == 0]
        lines += [f"u{unit},p1,met,pointwise,{kind}", f"u{unit},p2,{second},pointwise,{kind}"]
    path.write_text("\n".join(lines) + "\n")
    rows, columns = A.read_long(path)
    assert list(A.long_agreement(rows, n_boot=0, columns=columns)) == [
        "pointwise", "pointwise/proficiency", "pointwise/safety"]
    assert list(A.long_agreement(rows, n_boot=0, group_by=["criterion_type"], columns=columns)) == [
        "all", "proficiency", "safety"]
    pooled = A.long_agreement(rows, n_boot=0, group_by=[], columns=columns)
    assert "cohen_kappa" in pooled and pooled["cohen_kappa"]["n_units"] == 8
    with pytest.raises(A.AgreementError, match="no column 'specialty'"):
        A.long_agreement(rows, group_by=["specialty"], columns=columns)


# Both tasks in one file (raters p1, p2, p3; "" = not rated), several criterion types within each task.
MIXED_TASKS = {
    ("u1", "pointwise", "proficiency"): ("met", "met", "met"),
    ("u2", "pointwise", "proficiency"): ("met", "not_met", "met"),
    ("u3", "pointwise", "safety"): ("not_met", "not_met", ""),
    ("u4", "pointwise", "safety"): ("met", "met", "not_met"),
    ("u5", "pointwise", "excellence"): ("not_met", "not_met", "not_met"),
    ("u6", "pointwise", "excellence"): ("met", "", "met"),
    ("v1", "pairwise", "proficiency"): ("a", "a", "tie"),
    ("v2", "pairwise", "proficiency"): ("b", "b", "b"),
    ("v3", "pairwise", "safety"): ("tie", "a", ""),
    ("v4", "pairwise", "safety"): ("a", "a", "a"),
}


def _mixed_tasks_csv(path, with_task=True):
    header = "unit,rater,value,task,criterion_type" if with_task else "unit,rater,value,criterion_type"
    lines = [header]
    for (unit, task, kind), values in MIXED_TASKS.items():
        for rater, value in zip(("p1", "p2", "p3"), values, strict=True):
            lines.append(f"{unit},{rater},{value},{task},{kind}" if with_task else f"{unit},{rater},{value},{kind}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _task_alpha(task, scale):
    """Nominal α straight from the krippendorff package on one task's raters × units matrix."""
    import krippendorff

    data = [[scale.index(values[r]) if values[r] else NAN for (_, t, _), values in MIXED_TASKS.items() if t == task]
            for r in range(3)]
    return krippendorff.alpha(reliability_data=np.array(data, dtype=float), level_of_measurement="nominal")


def test_no_groups_pools_within_each_task_never_across_tasks(tmp_path, capsys):
    rows, columns = A.read_long(_mixed_tasks_csv(tmp_path / "mixed.csv"))
    pooled = A.long_agreement(rows, group_by=[], seed=1, n_boot=200, columns=columns)
    # (a) one pooled result per task (over all its criterion types), shaped like the grouped output.
    assert list(pooled) == ["pairwise", "pointwise"]
    assert pooled["pointwise"]["krippendorff_alpha"]["n_units"] == 6
    assert pooled["pairwise"]["krippendorff_alpha"]["n_units"] == 4
    grouped = A.long_agreement(rows, seed=1, n_boot=200, columns=columns)
    assert pooled["pointwise"] == grouped["pointwise"] and pooled["pairwise"] == grouped["pairwise"]
    # (b) the pointwise α is that of the pointwise ratings alone. By hand: met 9, not_met 7 pairable values
    # (n = 16); u2 and u4 each add 2·1/(3−1) = 1 to both off-diagonal coincidences, so
    # α = 1 − (n − 1)·Σ o_ck / Σ n_c·n_k = 1 − 15·4 / (2·9·7) = 11/21.
    alpha = {task: pooled[task]["krippendorff_alpha"]["value"] for task in pooled}
    assert alpha["pointwise"] == pytest.approx(11 / 21)
    assert alpha["pointwise"] == pytest.approx(_task_alpha("pointwise", ("not_met", "met")))
    assert alpha["pairwise"] == pytest.approx(_task_alpha("pairwise", ("b", "tie", "a")))
    # The same split without a task column (from the scale of each unit's values), and from the CLI.
    rows_untasked, columns_untasked = A.read_long(_mixed_tasks_csv(tmp_path / "untasked.csv", with_task=False))
    assert A.long_agreement(rows_untasked, group_by=[], seed=1, n_boot=200, columns=columns_untasked) == pooled
    code, out, err = _cli(capsys, "agreement", str(tmp_path / "mixed.csv"), "--no-groups", "--json", "--seed", "1",
                          "--n-boot", "200")
    assert code == 0, err
    assert json.loads(out) == json.loads(json.dumps(pooled))
    code, out, _ = _cli(capsys, "agreement", str(tmp_path / "mixed.csv"), "--no-groups", "--n-boot", "0")
    assert code == 0 and "\npairwise\n" in out and "\npointwise\n" in out


def test_no_groups_refuses_a_unit_rated_on_both_scales(tmp_path):
    path = tmp_path / "mixed_unit.csv"
    path.write_text("unit,rater,value\nu1,p1,met\nu1,p2,a\nu2,p1,met\nu2,p2,not_met\n")
    rows, columns = A.read_long(path)
    with pytest.raises(A.AgreementError, match="unit 'u1' has both pointwise"):
        A.long_agreement(rows, group_by=[], columns=columns)


def test_grouping_without_task_splits_by_task_first(tmp_path):
    """--group-by criterion_type on a file with both tasks: each type's α is per task, never pooled."""
    rows, columns = A.read_long(_mixed_tasks_csv(tmp_path / "mixed.csv"))
    by_type = A.long_agreement(rows, group_by=["criterion_type"], seed=1, n_boot=200, columns=columns)
    by_task_and_type = A.long_agreement(rows, group_by=["task", "criterion_type"], seed=1, n_boot=200,
                                        columns=columns)
    assert by_type == by_task_and_type
    assert "proficiency" not in by_type and "all" not in by_type
    assert by_type["pointwise/proficiency"]["krippendorff_alpha"]["n_units"] == 2
