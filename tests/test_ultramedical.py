"""UltraMedical suite on lm-eval (issue 7): loglik equals plain lm-eval, cot answers go through lm-eval's real
filter pipeline, the bundled items and reported rows are sound, bad input is one line and exit 2.

Real components only: tiny local checkpoints, lm-eval's own `hf` model and evaluator, the task YAMLs as
shipped; a scripted lm-eval LM (canned completions) stands in for a model only where the point is what the
filter pipeline does with given outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from promedical.bench.cli import main
from promedical.bench.results import read_results
from promedical.bench.ultramedical import BUNDLED_DIR, COLUMNS, TASK_NAMES, extract_answer, reported_rows
from promedical.bench.ultramedical.prompts import NO_ANSWER, question_and_options
from promedical.bench.ultramedical.suite import (
    UltraMedicalConfig,
    load_tasks,
    resolve_data,
    run_ultramedical,
    summarise,
    task_id,
    task_manager,
    validate_file,
)

LONG_RATIONALE = ("Option A would be reasonable if the pain were pleuritic, but it is not. Option C treats a "
                  "complication that has not occurred, and option D delays definitive care. " * 12)


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    """lm-eval records the cwd's git commit; run each test in its own empty folder."""
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------------------------- extraction

@pytest.mark.parametrize(("text", "expected"), [
    ("The answer is (C).", "C"),
    ("C) because the right coronary artery supplies the inferior wall.", "C"),
    ("Answer: c", "C"),
    (LONG_RATIONALE + "So, the answer is B.", "B"),
    ("The answer is A or C.", None),  # two different letters in the final statement: ambiguous
    ("The answer is B, or possibly D.", None),
    ("The answer is B. On reflection, the answer is D.", "D"),  # the final statement decides
    ("The answer is C, not B.", "C"),
    ("I am not sure which option is right.", None),
    ("", None),
    ("the answer is a combination of factors", None),
    ("The correct answer is option B: hypokalemia.", "B"),
    ("**Final answer:** (D)", "D"),
    (r"Final answer: \boxed{B}", "B"),
    ("<think>maybe the answer is A</think>The answer is C.", "C"),
    ("A 45-year-old man should have an ECG.", None),  # an article, not an option
    ("Reasoning first.\n\n(C)", "C"),
    ("b", "B"),
])
def test_extract_answer_on_tricky_outputs(text, expected):
    assert extract_answer(text) == expected


def test_extract_answer_only_accepts_the_task_s_letters():
    assert extract_answer("So, the answer is D.", n_choices=3) is None  # PubMedQA has A-C
    assert extract_answer("So, the answer is C.", n_choices=3) == "C"


class ScriptedLM:
    """An lm-eval LM whose completions are fixed per (task, document): lm-eval's evaluator, filters and
    metrics then run for real on known outputs."""

    def __new__(cls, script):
        from lm_eval.api.model import LM

        class _Scripted(LM):
            def generate_until(self, requests, disable_tqdm=False):
                return [script[(r.task_name, r.doc_id)] for r in requests]

            def loglikelihood(self, requests, disable_tqdm=False):
                raise NotImplementedError

            def loglikelihood_rolling(self, requests, disable_tqdm=False):
                raise NotImplementedError

        return _Scripted()


def test_cot_outputs_go_through_lm_eval_s_filter_pipeline():
    """The shipped cot tasks, lm-eval's evaluator and filter pipeline: extraction, accuracy, no_answer rate."""
    import lm_eval

    columns = [c for c in COLUMNS if c.name in ("medqa", "pubmedqa")]
    manager = task_manager()
    tasks = load_tasks(manager, columns, "cot", resolve_data("bundled", columns))
    medqa, pubmedqa = task_id("medqa", "cot"), task_id("pubmedqa", "cot")
    # bundled MedQA gold letters: C A D B D B A C; PubMedQA: yes no maybe -> A B C
    script = {
        (medqa, 0): "The answer is (C).",
        (medqa, 1): "A) because TSH-receptor antibodies drive both the goitre and the eye signs.",
        (medqa, 2): "Answer: d",
        (medqa, 3): LONG_RATIONALE + "So, the answer is B.",
        (medqa, 4): "The answer is B or D.",  # two letters: no answer
        (medqa, 5): "It depends on further tests.",  # none: no answer
        (medqa, 6): "So, the answer is C.",  # extracted, wrong
        (medqa, 7): "The answer is A. On reflection, the answer is C.",
        (pubmedqa, 0): "The trial found a clear benefit. So, the answer is A.",
        (pubmedqa, 1): "So, the answer is D.",  # not an option of a 3-option task: no answer
        (pubmedqa, 2): "So, the answer is A.",  # wrong
    }
    output = lm_eval.simple_evaluate(model=ScriptedLM(script), tasks=[tasks["medqa"]], task_manager=manager,
                                     log_samples=True)
    extracted = {s["doc_id"]: s["filtered_resps"][0] for s in output["samples"][medqa]}
    assert extracted == {0: "C", 1: "A", 2: "D", 3: "B", 4: NO_ANSWER, 5: NO_ANSWER, 6: "C", 7: "C"}
    assert output["results"][medqa]["acc,final-letter"] == pytest.approx(5 / 8)
    assert output["results"][medqa]["no_answer,final-letter"] == pytest.approx(2 / 8)
    track, samples, _, items = summarise(output, tasks, columns[:1], "cot", seed=0)
    assert items == 8 and track.metrics["medqa.no_answer"].value == pytest.approx(0.25)
    assert track.counts["medqa.no_answer"] == 2 and track.metrics["no_answer"].value == pytest.approx(0.25)
    assert [s.prediction for s in samples] == ["C", "A", "D", "B", None, None, "C", "C"]

    output = lm_eval.simple_evaluate(model=ScriptedLM(script), tasks=[tasks["pubmedqa"]], task_manager=manager,
                                     limit=3, log_samples=True)
    assert [s["filtered_resps"][0] for s in sorted(output["samples"][pubmedqa], key=lambda s: s["doc_id"])] == [
        "A", NO_ANSWER, "A"]
    assert output["results"][pubmedqa]["acc,final-letter"] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------------------------- loglik = lm-eval

def _plain_lm_eval(model: Path, files: dict[str, Path]) -> dict:
    """lm-eval's own built-in tasks (medqa_4options, medmcqa, pubmedqa, mmlu_*) on the same local files."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    builtin = Path(lm_eval.__file__).parent / "tasks"
    manager = TaskManager(include_defaults=False, include_path=[str(builtin / d) for d in
                                                                ("medqa", "medmcqa", "pubmedqa", "mmlu/default")])
    entries = []
    for column in COLUMNS:
        if column.name in files:
            split = "validation" if column.builtin == "medmcqa" else "test"
            entries.append({"task": column.builtin, "dataset_path": "json", "dataset_name": None,
                            "dataset_kwargs": {"data_files": {split: str(files[column.name])}},
                            "training_split": None, "validation_split": None if split == "test" else split,
                            "test_split": split, "fewshot_split": None})
    return lm_eval.simple_evaluate(model="hf", model_args={"pretrained": str(model), "dtype": "float32"},
                                   tasks=[{"group": "plain", "task": entries}], task_manager=manager, batch_size=8,
                                   device="cpu", log_samples=True)


def test_loglik_equals_plain_lm_eval_and_writes_common_results(tiny_models, tmp_path):
    names = ("medqa", "medmcqa", "pubmedqa", "mmlu_anatomy")
    outcome = run_ultramedical(UltraMedicalConfig(model=str(tiny_models["causal"]), protocol="loglik",
                                                  data_dir="bundled", tasks=names, output_dir=tmp_path / "runs"))
    files = {name: BUNDLED_DIR / f"{name}.jsonl" for name in names}
    plain = _plain_lm_eval(tiny_models["causal"], files)

    metrics = outcome.results.tracks["ultramedical"].metrics
    for column in (c for c in COLUMNS if c.name in names):
        ours, theirs = outcome.lm_eval["results"][task_id(column.name, "loglik")], plain["results"][column.builtin]
        assert metrics[f"{column.name}.acc"].value == theirs["acc,none"]
        assert ours["acc,none"] == theirs["acc,none"]
        if "acc_norm,none" in theirs:  # lm-eval's pubmedqa reports acc only
            assert metrics[f"{column.name}.acc_norm"].value == theirs["acc_norm,none"]
        # not just the same accuracy: the same log-likelihood for every option of every question
        ours_ll = [[r[0] for r in s["filtered_resps"]] for s in
                   sorted(outcome.lm_eval["samples"][task_id(column.name, "loglik")], key=lambda s: s["doc_id"])]
        theirs_ll = [[r[0] for r in s["filtered_resps"]] for s in
                     sorted(plain["samples"][column.builtin], key=lambda s: s["doc_id"])]
        assert ours_ll == theirs_ll
        assert metrics[f"{column.name}.acc"].stderr == pytest.approx(theirs["acc_stderr,none"])
        low, high = metrics[f"{column.name}.acc"].ci_low, metrics[f"{column.name}.acc"].ci_high
        assert low <= metrics[f"{column.name}.acc"].value <= high and metrics[f"{column.name}.acc"].n == 8

    per_task = [metrics[f"{n}.acc"].value for n in names]
    assert metrics["avg"].value == pytest.approx(np.mean(per_task))  # unweighted over tasks
    assert metrics["micro_avg"].value == pytest.approx(np.mean(per_task))  # equal sizes here
    assert metrics["micro_avg"].n == 32

    saved = read_results(outcome.run_dir)  # the common schema, validated
    assert saved.bench.name == "ultramedical-bundled" and saved.bench.items == 32
    assert saved.config["bundled_items"] is True and saved.config["protocol"] == "loglik"
    assert saved.config["data"] == "bundled" and saved.tracks["ultramedical"].metrics["avg"] == metrics["avg"]
    lm_eval_output = json.loads((outcome.run_dir / "lm_eval_results.json").read_text())
    assert set(lm_eval_output["results"]) == {task_id(n, "loglik") for n in names}
    first = json.loads((outcome.run_dir / "samples.jsonl").read_text().splitlines()[0])
    assert first["task"] == "medqa" and first["gold"] == "C" and first["prompt"].startswith("Question: ")


@pytest.mark.slow
def test_cli_runs_both_protocols_offline_on_bundled_items(cli, tiny_models, tmp_path):
    for protocol in ("cot", "loglik"):
        done = cli("ultramedical", "--model", str(tiny_models["causal"]), "--protocol", protocol, "--data-dir",
                   "bundled", "--tasks", "pubmedqa,mmlu_college_medicine", "--limit", "2", "--max-new-tokens", "8",
                   "--output-dir", str(tmp_path / protocol), cwd=tmp_path)
        assert done.code == 0, done.stderr[-2000:]
        assert "bundled demo items" in done.stdout
        (run_dir,) = (tmp_path / protocol).iterdir()
        results = read_results(run_dir)
        metrics = results.tracks["ultramedical"].metrics
        assert results.config["protocol"] == protocol and results.config["bundled_items"] is True
        assert {"pubmedqa.acc", "mmlu_college_medicine.acc", "avg", "micro_avg"} <= set(metrics)
        assert metrics["pubmedqa.acc"].n == 2
        if protocol == "cot":
            assert "no_answer" in metrics and results.config["apply_chat_template"] is True
            sample = json.loads((run_dir / "samples.jsonl").read_text().splitlines()[0])
            assert sample["prompt"].startswith("<|im_start|>user\n")  # chat template, no system prompt
            assert "So, the answer is X." in sample["prompt"] and "response" in sample
        else:
            assert "avg_acc_norm" in metrics
        assert (run_dir / "lm_eval_results.json").is_file() and (run_dir / "lm_eval_samples.jsonl").is_file()


# --------------------------------------------------------------------------------------------- bad input

def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(["ultramedical", *args])
    return code, capsys.readouterr().err.strip()


def test_unknown_task_is_one_line_exit_2(capsys, tiny_models):
    code, err = _run(capsys, "--model", str(tiny_models["causal"]), "--data-dir", "bundled", "--tasks", "medqa,usmle")
    assert code == 2 and err.count("\n") == 0 and "unknown task 'usmle'" in err


def test_missing_data_dir_and_missing_task_file_are_one_line_exit_2(capsys, tiny_models, tmp_path):
    code, err = _run(capsys, "--model", str(tiny_models["causal"]), "--data-dir", str(tmp_path / "nowhere"))
    assert code == 2 and err.count("\n") == 0 and "no such folder" in err
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "medqa.jsonl").write_text((BUNDLED_DIR / "medqa.jsonl").read_text())
    code, err = _run(capsys, "--model", str(tiny_models["causal"]), "--data-dir", str(tmp_path / "partial"),
                     "--tasks", "medqa,medmcqa")
    assert code == 2 and err.count("\n") == 0 and "medmcqa.jsonl: missing" in err


def test_malformed_rows_are_one_line_exit_2(capsys, tiny_models, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [json.loads(line) for line in (BUNDLED_DIR / "medqa.jsonl").read_text().splitlines()]
    rows[1]["label"] = 7
    lines = [json.dumps(r) for r in rows]
    lines[4] = "{not json"
    (data / "medqa.jsonl").write_text("\n".join(lines) + "\n")
    code, err = _run(capsys, "--model", str(tiny_models["causal"]), "--data-dir", str(data), "--tasks", "medqa")
    assert code == 2 and err.count("\n") == 0
    assert f"{data / 'medqa.jsonl'}:2: label: option index 7 is outside 0-3 (and 1 more bad record)" in err

    pubmed = [json.loads(line) for line in (BUNDLED_DIR / "pubmedqa.jsonl").read_text().splitlines()]
    del pubmed[2]["CONTEXTS"]
    (data / "pubmedqa.jsonl").write_text("\n".join(json.dumps(r) for r in pubmed) + "\n")
    code, err = _run(capsys, "--model", str(tiny_models["causal"]), "--data-dir", str(data), "--tasks", "pubmedqa")
    assert code == 2 and err.count("\n") == 0 and ":3: CONTEXTS: required field is missing" in err


def test_reward_model_is_refused(capsys, tiny_models):
    code, err = _run(capsys, "--model", str(tiny_models["reward"]), "--data-dir", "bundled")
    assert code == 2 and "needs a causal LM" in err


def test_offline_without_data_dir_says_how_to_get_the_data(cli, tiny_models, tmp_path):
    done = cli("ultramedical", "--model", str(tiny_models["causal"]), "--tasks", "mmlu_anatomy", cwd=tmp_path)
    assert done.code == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "--data-dir bundled" in done.stderr and "--fetch-data" in done.stderr and "cais/mmlu" in done.stderr
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------------------------- data

def test_bundled_items_are_valid_in_each_dataset_layout():
    manager = task_manager()
    for column in COLUMNS:
        path = BUNDLED_DIR / f"{column.name}.jsonl"
        assert validate_file(path, column.layout) >= 8
        golds = [question_and_options(json.loads(line))[2] for line in path.read_text().splitlines()]
        assert len(set(golds)) >= 3, f"{column.name}: answers should not sit on one letter"
        for protocol in ("loglik", "cot"):
            assert task_id(column.name, protocol) in manager.all_subtasks
    assert {"ultramedical_loglik", "ultramedical_cot"} <= set(manager.all_groups)


def test_reported_rows_are_data_with_their_source():
    table = reported_rows()["tables"][0]
    assert table["track"] == "ultramedical" and table["url"].startswith("https://") and table["source"]
    assert table["metrics"] == ["avg", *TASK_NAMES]
    models = {row["model"]: row["values"] for row in table["rows"]}
    assert models["Llama-3-8B-UltraMedical"] == [75.20, 73.3, 61.5, 77.0, 78.9, 78.0, 74.1, 83.8, 78.5, 71.7]
    assert models["Llama-3-8B-Instruct"] == [68.56, 60.9, 50.7, 73.0, 72.1, 76.0, 63.0, 77.2, 79.9, 64.2]
    for values in models.values():  # transcription check: Avg is the mean of the reported columns
        reported = [v for v in values[1:] if v is not None]
        assert abs(values[0] - sum(reported) / len(reported)) < 0.015


def test_outside_a_git_checkout_lm_eval_prints_no_git_error(cli, tiny_models, tmp_path):
    done = cli("ultramedical", "--model", str(tiny_models["causal"]), "--data-dir", "bundled", "--tasks",
               "mmlu_anatomy", "--limit", "2", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert "not a git repository" not in done.stderr and "fatal:" not in done.stderr
