"""The Streamlit leaderboard (``leaderboard/``), driven by ``streamlit.testing.v1.AppTest`` on real runs.

Real runs come from the tiny local checkpoints (``tiny_models``) through the real runner, once per session
(:func:`real_runs`, shared with ``test_leaderboard_browser.py``); every test works on its own copy.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("streamlit", reason="the leaderboard needs the ui extra: pip install 'promedical-bench[ui]'")

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from promedical.bench.cli.leaderboard import app_path  # noqa: E402
from promedical.bench.compare import compare_runs  # noqa: E402
from promedical.bench.results import (  # noqa: E402
    MetricValue,
    TrackResult,
    UltraMedicalSample,
    read_results,
    read_samples,
    write_run,
)
from promedical.leaderboard import store  # noqa: E402

#: Model names of the three real runs (symlinks to the tiny checkpoints, so the ids are short and readable).
JUDGE_LM, JUDGE_RM, POLICY = "models/tiny-qwen3-lm", "models/tiny-qwen3-rm", "models/tiny-qwen3-policy"
#: Text that would run or hide content if it were rendered as HTML or Markdown; every part contains "pwned".
PAYLOAD = ('<script>window.__pwned=1</script><img src="x-pwned.png" onerror="window.__pwned=2"> '
           '**bold-pwned** [link-pwned](javascript:alert(1)) ![img-pwned](http://127.0.0.1:9/pwned.png) <!-- pwned')
N_PROMEDICAL = 9  # models in the ProMedical paper's judge table (its veto-table rows are merged into them)
_RUNS: dict[str, Path] = {}


def real_runs(tmp_path_factory, tiny_models) -> Path:  # noqa: ANN001 - pytest objects
    """A results folder with three real runs (made once per session): the tiny causal LM and the tiny reward
    model as judges, and the causal LM as a policy graded by the reward model; 2 bench items each."""
    if "dir" in _RUNS:
        return _RUNS["dir"]
    from promedical.bench.runner import RunConfig, run

    root = tmp_path_factory.mktemp("leaderboard-runs")
    (root / "models").mkdir()
    for name, kind in ((JUDGE_LM, "causal"), (JUDGE_RM, "reward"), (POLICY, "causal")):
        (root / name).symlink_to(tiny_models[kind], target_is_directory=True)
    here = os.getcwd()
    os.chdir(root)
    try:
        common = {"output_dir": Path("results"), "cache_dir": root / "cache", "limit": 2, "progress": False}
        run(RunConfig(model=JUDGE_LM, **common))
        run(RunConfig(model=JUDGE_RM, **common))
        run(RunConfig(model=POLICY, track="policy", judge=f"rm:{JUDGE_RM}", max_new_tokens=8, **common))
    finally:
        os.chdir(here)
    _RUNS["dir"] = root / "results"
    return _RUNS["dir"]


def copy_runs(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*"))
    return target


def run_dirs(results: Path) -> dict[str, Path]:
    """{model id: run folder} of a results folder."""
    return {read_results(p.parent).model.id: p.parent for p in sorted(results.glob("*/results.json"))}


def clone_run(source: Path, target: Path, **changes) -> Path:  # noqa: ANN003
    """A copy of a real run with some results fields changed (model, bench, tracks, ...)."""
    results = read_results(source).model_copy(update=changes)
    write_run(target, results, read_samples(source))
    return target


@pytest.fixture
def results(tmp_path_factory, tiny_models, tmp_path, monkeypatch) -> Path:
    folder = copy_runs(real_runs(tmp_path_factory, tiny_models), tmp_path / "results")
    monkeypatch.setenv(store.ENV_VAR, str(folder))
    return folder


@pytest.fixture(autouse=True)
def fresh_cache():
    """Every test starts with empty caches (the app caches samples and comparisons in ``st.cache_data`` and
    the validated results files in ``st.cache_resource``)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def start(**query) -> AppTest:  # noqa: ANN003
    at = AppTest.from_file(str(app_path()), default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def measured(at: AppTest):  # noqa: ANN201 - a DataFrame
    """The main table (the one with a rank column)."""
    tables = [d.value for d in at.dataframe if "rank" in d.value.columns]
    assert len(tables) == 1
    return tables[0]


def reported_table(at: AppTest):  # noqa: ANN201
    """The reported rows (one table per track) as one frame, or None when none is shown."""
    tables = [d.value for d in at.dataframe if "source" in d.value.columns and "rank" not in d.value.columns]
    return pd.concat(tables, ignore_index=True) if tables else None


def walk(node):  # noqa: ANN001, ANN201
    yield node
    for child in getattr(node, "children", {}).values():
        yield from walk(child)


# ------------------------------------------------------------------------------------------------- store


def test_store_reads_valid_files_and_lists_invalid_ones(results):
    valid = next(results.glob("*/results.json"))
    document = json.loads(valid.read_text(encoding="utf-8"))
    (results / "broken").mkdir()
    (results / "broken" / "results.json").write_text("{not json", encoding="utf-8")
    (results / "future").mkdir()
    (results / "future" / "results.json").write_text(json.dumps({**document, "schema_version": 3}), encoding="utf-8")
    (results / ".cache" / "x").mkdir(parents=True)
    shutil.copy(valid, results / ".cache" / "x" / "results.json")

    loaded = store.load_runs(store.scan_results(results))
    assert sorted(r.results.model.id for r in loaded.runs) == sorted([JUDGE_LM, JUDGE_RM, POLICY])
    problems = dict(loaded.invalid)
    assert set(problems) == {str((results / name / "results.json").resolve()) for name in ("broken", "future")}
    assert "schema_version" in problems[str((results / "future" / "results.json").resolve())]

    table = store.runs_table(loaded.runs)
    assert len(table) == 3 and table["key"].is_unique
    policy = table[table["model"] == POLICY].iloc[0]
    assert policy["judge"] == f"rm:{JUDGE_RM}" and policy["kind"] == "policy"
    value = read_results(Path(policy["key"])).tracks["policy"].metrics["overall"]
    assert policy["policy · overall"] == pytest.approx(100 * value.value)
    assert policy["policy · overall · CI"] == store.format_ci(100 * value.ci_low, 100 * value.ci_high)


def n_reported() -> int:
    return len(store.load_reported()[0])


def test_reported_rows_are_the_papers_figures():
    frame, sources = store.load_reported()
    assert frame["source"].str.startswith("reported").all() and frame["key"].is_unique
    assert (frame["source"] == "reported — ProMedical paper").sum() == N_PROMEDICAL
    by_model = frame.set_index("model")
    rm, base = by_model.loc["ProMedical-RM-8B (Qwen3)"], by_model.loc["Qwen3-8B (untrained judge)"]
    # the paper's headline: +22.25 pp overall accuracy and +21.75 pp pairwise safety
    assert rm["judge · overall_accuracy"] - base["judge · overall_accuracy"] == pytest.approx(22.25)
    assert rm["judge · pairwise_safety_accuracy"] - base["judge · pairwise_safety_accuracy"] == pytest.approx(21.75)
    assert rm["judge · veto_f1"] == pytest.approx(89.09)
    # UltraMedical's columns use the ultramedical track's metric names, so they line up with measured runs
    ultra = by_model.loc["Llama-3-8B-UltraMedical"]
    assert ultra["ultramedical · avg"] == pytest.approx(75.20) and ultra["ultramedical · medqa.acc"] == 73.3
    assert {s.track for s in sources} == {"judge", "ultramedical"}
    assert all(s.url.startswith("https://") for s in sources)


def test_reported_rows_survive_a_missing_or_malformed_external_table(tmp_path, monkeypatch):
    package = tmp_path / "fake_reported"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "reported.json").write_text(json.dumps({"tables": [{"id": "ultramedical"}]}), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    own, _ = store.load_reported(Path(store.__file__).with_name("reported.json"))
    for external in [("fake_reported", "reported.json", "X"), ("fake_reported", "missing.json", "X"),
                     ("no_such_package", "reported.json", "X")]:
        monkeypatch.setattr(store, "EXTERNAL_REPORTED", (external,))
        frame, _ = store.load_reported()
        assert list(frame["model"]) == list(own["model"])
        assert "Llama-3-8B-UltraMedical" in set(frame["model"])


# --------------------------------------------------------------------------------------------------- app


def test_rows_equal_valid_files_and_reported_rows_only_when_toggled(results):
    (results / "broken").mkdir()
    (results / "broken" / "results.json").write_text('{"schema_version": 1}', encoding="utf-8")
    at = start()
    table = measured(at)
    assert sorted(table["model"]) == sorted([JUDGE_LM, JUDGE_RM, POLICY])
    assert reported_table(at) is None
    assert len(at.warning) == 1 and any("broken" in c.value and "run_id" in c.value for c in at.code)
    ranked = table.dropna(subset=["rank"])
    assert set(ranked["model"]) == {JUDGE_LM, JUDGE_RM}  # ranked by judge overall accuracy; the policy run has none
    assert list(ranked["judge · overall_accuracy"]) == sorted(ranked["judge · overall_accuracy"], reverse=True)

    at.toggle(key="reported").set_value(True)
    rerun(at)
    assert len(measured(at)) == 3, "reported rows never join the measured table or its ranks"
    reported = reported_table(at)
    assert len(reported) == n_reported() and reported["source"].str.startswith("reported").all()
    assert "ProMedical-RM-8B (Qwen3)" in set(reported["model"]) and "rank" not in reported.columns

    at = start(reported="true")  # the toggle is bound to the URL, so a shared link keeps it
    assert len(reported_table(at)) == n_reported()
    assert len(at.get("download_button")) == 1


def test_csv_export_keeps_measured_and_reported_apart(results):
    loaded = store.load_runs(store.scan_results(results))
    table = store.add_rank(store.runs_table(loaded.runs), "judge · overall_accuracy")
    reported, _ = store.load_reported()
    frame = pd.read_csv(io.StringIO(store.export_csv(table, reported).decode("utf-8")))
    assert list(frame.columns[:3]) == ["source", "rank", "key"]
    assert (frame["source"] == "measured").sum() == 3
    assert frame["source"].str.startswith("reported").sum() == n_reported()
    assert frame.loc[frame["source"] != "measured", "rank"].isna().all()


def test_filters_change_the_rows(results):
    runs = run_dirs(results)
    other = clone_run(runs[JUDGE_RM], results / "other-bench",
                      bench=read_results(runs[JUDGE_RM]).bench.model_copy(update={"name": "mybench",
                                                                                    "content_hash": "0123abcd"}),
                      model=read_results(runs[JUDGE_RM]).model.model_copy(update={"id": "other-bench-model"}))
    at = start()
    assert len(measured(at)) == 4

    at.multiselect(key="track").set_value(["policy"])
    assert list(measured(rerun(at))["model"]) == [POLICY]
    assert not any(c.startswith("judge · ") for c in measured(at).columns)
    at.multiselect(key="track").set_value([])
    at.multiselect(key="kind").set_value(["reward"])
    assert sorted(measured(rerun(at))["model"]) == sorted([JUDGE_RM, "other-bench-model"])
    at.multiselect(key="bench").set_value(["mybench · 0123abcd"])
    assert list(measured(rerun(at))["model"]) == ["other-bench-model"]
    at.multiselect(key="bench").set_value([])
    at.multiselect(key="kind").set_value([])

    # a slice: metrics from the runs' by-category breakdown; runs without the category are hidden
    (other / "results.json").unlink()
    results_ = read_results(runs[JUDGE_LM])
    category = sorted(results_.tracks["judge"].by_category)[0]
    policy_categories = set(read_results(runs[POLICY]).tracks["policy"].by_category)
    at.selectbox(key="category").set_value(category)
    table = measured(rerun(at))
    expected = {JUDGE_LM, JUDGE_RM} | ({POLICY} if category in policy_categories else set())
    assert set(table["model"]) == expected
    slice_value = results_.tracks["judge"].by_category[category]["overall_accuracy"].value
    row = table[table["model"] == JUDGE_LM].iloc[0]
    assert row["judge · overall_accuracy"] == pytest.approx(100 * slice_value)
    assert at.selectbox(key="specialty").disabled


def test_model_page_drill_down_shows_plain_text(results):
    at = start(view="Model")
    assert len(at.selectbox(key="model_run").options) == 3
    rm_dir = str(run_dirs(results)[JUDGE_RM])
    at.selectbox(key="model_run").set_value(rm_dir)
    rerun(at)
    samples = read_samples(rm_dir)
    listing = [d.value for d in at.dataframe if {"gold", "criterion_type"} <= set(d.value.columns)]
    assert len(listing) == 1 and len(listing[0]) == len(samples)
    first = samples[0]
    codes = [c.value for c in at.code]
    assert first.prompt in codes and first.criterion in codes and first.responses[0] in codes
    assert json.dumps(first.raw, indent=2, ensure_ascii=False) in codes

    at.toggle(key="drill_wrong_judge").set_value(True)
    wrong = [s for s in samples if s.correct is False]
    listing = [d.value for d in rerun(at).dataframe if {"gold", "criterion_type"} <= set(d.value.columns)]
    assert len(listing[0]) == len(wrong)

    policy_dir = str(run_dirs(results)[POLICY])
    at.selectbox(key="model_run").set_value(policy_dir)
    rerun(at)
    answers = read_samples(policy_dir)
    listing = [d.value for d in at.dataframe if {"item_id", "s1", "s3", "overall"} <= set(d.value.columns)]
    assert len(listing) == 1 and len(listing[0]) == len(answers)
    verdicts = next(d.value for d in at.dataframe if {"criterion_id", "decision", "criterion"} <= set(d.value.columns))
    assert list(verdicts["criterion"]) == [j.criterion for j in answers[0].judgements]
    assert answers[0].prompt in [c.value for c in at.code]


def test_compare_page_reuses_compare_runs(results):
    runs = run_dirs(results)
    at = start(view="Compare")
    at.selectbox(key="compare_a").set_value(str(runs[JUDGE_LM]))
    rerun(at)
    assert at.selectbox(key="compare_b").options == [f"{JUDGE_RM}  ·  {read_results(runs[JUDGE_RM]).run_id}"]
    expected = compare_runs(runs[JUDGE_LM], runs[JUDGE_RM], seed=0)["tracks"]["judge"]
    table = next(d.value for d in at.dataframe if "B − A" in d.value.columns)
    for row in table.itertuples(index=False):
        difference = expected["differences"][row.metric]
        if difference["value"] is None:
            assert row[1] is None or row[1] != row[1]
        else:
            assert row[1] == pytest.approx(100 * difference["value"])
            assert row[2] == pytest.approx(100 * difference["ci_low"])
    test = next(d.value for d in at.dataframe if "p-value" in d.value.columns)
    assert test["p-value"].iloc[0] == pytest.approx(expected["paired_test"]["p_value"])


def test_script_and_markdown_in_results_render_inert(results):
    runs = run_dirs(results)
    source = runs[JUDGE_LM]
    evil = results / "run-**pwned**"
    original = read_results(source)
    samples = [sample.model_copy(update=dict(
        prompt=PAYLOAD, criterion=PAYLOAD, responses=[PAYLOAD for _ in sample.responses], raw={"note": PAYLOAD},
        category=PAYLOAD)) for sample in read_samples(source)]
    write_run(evil, original.model_copy(update={
        "run_id": "run-**pwned**", "model": original.model.model_copy(update={"id": PAYLOAD})}), samples)

    def check(at: AppTest) -> None:
        safe = {"text", "code", "dataframe", "selectbox", "multiselect", "vega_lite_chart"}
        for node in walk(at._tree):
            proto = getattr(node, "proto", None)
            if proto is None:
                continue
            kind = getattr(node, "type", "")
            if kind in {"selectbox", "multiselect"}:  # options are plain text; label and help are Markdown
                assert "pwned" not in proto.label + proto.help, kind
            elif kind not in safe:
                assert "pwned" not in str(proto), f"untrusted text reached a Markdown element: {kind}"

    at = start()
    check(at)
    assert PAYLOAD in set(measured(at)["model"])

    at = start(view="Model")
    at.selectbox(key="model_run").set_value(str(evil))
    check(rerun(at))
    assert PAYLOAD in [c.value for c in at.code]
    assert any(PAYLOAD in option for option in at.selectbox(key="model_run").options)

    at = start(view="Compare")
    at.selectbox(key="compare_a").set_value(str(evil))
    check(rerun(at))
    assert any(PAYLOAD in t.value for t in at.text), ([t.value for t in at.text], [c.value for c in at.code])


def test_ultramedical_track_and_agreement_files_are_shown(results):
    runs = run_dirs(results)
    template = read_results(runs[JUDGE_LM])
    metric = MetricValue(value=0.5, ci_low=0.25, ci_high=0.75, n=72)
    track = TrackResult(metrics={"medqa.acc": metric.model_copy(update={"stderr": 0.05}), "avg": metric},
                        by_category={}, by_specialty={}, counts={"items": 72})
    ultra = results / "ultra"
    write_run(ultra, template.model_copy(update={
        "tracks": {"ultramedical": track}, "config": {**template.config, "protocol": "cot"},
        "model": template.model.model_copy(update={"id": "ultra-model"})}), [
        UltraMedicalSample(**{"track": "ultramedical", "protocol": "cot", "task": "medqa", "doc_id": k,
                              "prompt": f"Question {k}?", "gold": "A",
                              "response": f"Reasoning {k}. So, the answer is {answer}.", "prediction": answer,
                              "acc": float(answer == "A"), "no_answer": 0.0, "doc": {"question": f"Question {k}?"}})
        for k, answer in enumerate("AB")])
    (results / "study").mkdir()
    (results / "study" / "ratings.agreement.json").write_text(json.dumps({
        "level": "nominal", "seed": 0, "n_boot": 2000, "statistics": {"pointwise": {"krippendorff_alpha": {
            "value": 0.8, "ci_low": 0.7, "ci_high": 0.9, "n_units": 40, "n_raters": 4}}}}), encoding="utf-8")
    (results / "study" / "bad.agreement.json").write_text("[1, 2]", encoding="utf-8")

    at = start()
    table = measured(at)
    row = table.set_index("model").loc["ultra-model"]
    assert row["ultramedical · avg"] == pytest.approx(50.0) and row["ultramedical · medqa.acc · CI"] == "25.0–75.0"
    assert row["protocol"] == "cot"

    at = start(view="Model")
    at.selectbox(key="model_run").set_value(str(ultra))
    listing = [d.value for d in rerun(at).dataframe if {"task", "prediction"} <= set(d.value.columns)]
    assert len(listing) == 1 and len(listing[0]) == 2
    assert "Reasoning 0. So, the answer is A." in [c.value for c in at.code]
    at.toggle(key="drill_wrong_ultramedical").set_value(True)
    listing = [d.value for d in rerun(at).dataframe if {"task", "prediction"} <= set(d.value.columns)]
    assert list(listing[0]["prediction"]) == ["B"]

    at = start(view="Agreement")
    table = next(d.value for d in at.dataframe)
    assert table.iloc[0]["statistic"] == "krippendorff_alpha" and table.iloc[0]["value"] == pytest.approx(0.8)
    assert len(at.warning) == 1 and any("bad.agreement.json" in c.value for c in at.code)


def test_loading_is_cached_on_modification_time(results):
    at = start()
    runs = run_dirs(results)
    target = runs[JUDGE_RM] / "results.json"
    document = json.loads(target.read_text(encoding="utf-8"))
    document["model"]["id"] = "renamed-model"
    target.write_text(json.dumps(document), encoding="utf-8")
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert "renamed-model" in set(measured(rerun(at))["model"])
    calls = []
    original = store.read_run_or_problem
    try:
        store.read_run_or_problem = lambda path: calls.append(path) or original(path)
        rerun(at)
    finally:
        store.read_run_or_problem = original
    assert calls == [], "unchanged files are not read again"


def test_empty_folder_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENV_VAR, str(tmp_path))
    at = start()
    assert any("No valid results files" in i.value for i in at.info)
    at.toggle(key="reported").set_value(True)
    assert len(reported_table(rerun(at))) == n_reported()


def test_cli_refuses_a_missing_results_folder(cli, tmp_path):
    result = cli("leaderboard", "--results-dir", str(tmp_path / "missing"))
    assert result.code == 2 and "is not a folder" in result.stderr
    assert cli("leaderboard", "--help").code == 0


def test_schema_1_results_still_load(results):
    """An UltraMedical results file written before schema 2 kept lm-eval's stderr as a metric of its own:
    it loads, in the leaderboard too, with the stderr folded into the metric it belongs to."""
    document = json.loads((run_dirs(results)[JUDGE_LM] / "results.json").read_text(encoding="utf-8"))
    document["schema_version"] = 1
    document["tracks"] = {"ultramedical": {"metrics": {
        "medqa.acc": {"value": 0.5, "ci_low": 0.25, "ci_high": 0.75, "n": 8},
        "medqa.acc_stderr": {"value": 0.19, "ci_low": None, "ci_high": None, "n": 8},
        "avg": {"value": 0.5, "ci_low": 0.25, "ci_high": 0.75, "n": 8}},
        "by_category": {}, "by_specialty": {}, "counts": {"medqa.items": 8}}}
    old = results / "old" / "run"
    old.mkdir(parents=True)
    (old / "results.json").write_text(json.dumps(document), encoding="utf-8")
    for loaded in (read_results(old), store.read_run(str(old / "results.json")).results):
        assert loaded.schema_version == 2
        assert set(loaded.tracks["ultramedical"].metrics) == {"medqa.acc", "avg"}
        assert loaded.tracks["ultramedical"].metrics["medqa.acc"].stderr == 0.19
        assert loaded.tracks["ultramedical"].metrics["avg"].stderr is None
