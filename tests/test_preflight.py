"""The qwen3-8b preflight: real data loading, a real `accelerate launch` under the shipped ZeRO-3 config, the
GPUs this machine really has."""

import importlib.util
import subprocess
import sys

import pytest
import yaml

from promedical.alignment.preflight import (
    check_data,
    check_extras,
    check_gpus,
    check_model_spec,
    check_recipes_under_zero3,
)


def test_data_problems_name_the_option_and_the_path(tmp_path):
    from promedical.alignment.preflight import _judge_instances, _preference_pairs, _prompts

    assert check_data("--bench", "sample", _judge_instances) == []
    assert check_data("--preference-data", "synthetic:train:5", _preference_pairs) == []
    [missing] = check_data("--prompts", str(tmp_path / "none.jsonl"), _prompts)
    assert missing.startswith(f"--prompts: {tmp_path / 'none.jsonl'}") and "no such file" in missing
    unlabelled = tmp_path / "prompts.jsonl"
    unlabelled.write_text('{"id": "p1", "category": "c", "specialty": "s", "messages": [{"role": "user", "content": '
                          '"Chest pain?"}], "rubric": [{"id": "c1", "type": "proficiency", '
                          '"text": "Asks about onset."}]}\n')
    assert check_data("--prompts", str(unlabelled), _prompts) == []
    [no_pairs] = check_data("--preference-data", str(unlabelled), _preference_pairs)
    assert "no criterion-level preference pairs" in no_pairs
    [no_labels] = check_data("--bench", str(unlabelled), _judge_instances)
    assert "no labelled instances" in no_labels


def test_model_specs_are_local_folders_or_hub_ids(tmp_path, tiny_models):
    assert check_model_spec("base_model", "Qwen/Qwen3-8B") == []
    assert check_model_spec("base_model", str(tiny_models["reward"])) == []
    (tmp_path / "empty").mkdir()
    assert check_model_spec("base_model", str(tmp_path / "empty")) == [
        f"base_model: {tmp_path / 'empty'}: folder has no config.json"]
    for bad in ("./models/nope", "Qwen3-8B", "Qwen//Qwen3", "org/name/extra", "org/..", "~/nope"):
        assert check_model_spec("base_model", bad) == [
            f"base_model: {bad}: no such folder, and not a Hugging Face id (org/name)"], bad


def test_extras_and_gpus_are_reported_as_they_are_here():
    problems = check_extras()
    for module in ("deepspeed", "vllm"):
        missing = importlib.util.find_spec(module) is None
        assert any(line.startswith(f"{module} does not import") for line in problems) == missing, module
    import torch

    gpus = check_gpus()
    if not torch.cuda.is_available():
        assert gpus.problems == [] and gpus.notes[0].startswith("no GPU visible on this machine")
    else:
        assert check_gpus({"huge": (1, 10**6)}).problems[0].startswith("huge: needs 1 GPU(s) with at least")


@pytest.mark.slow
def test_recipes_build_their_trainer_configs_with_zero3_active():
    pytest.importorskip("deepspeed")
    assert check_recipes_under_zero3() == []
    # the same check outside `accelerate launch` finds ZeRO-3 inactive: it does look
    done = subprocess.run([sys.executable, "-m", "promedical.alignment.preflight", "qwen3-8b-rm"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "problem: qwen3-8b-rm: ZeRO-3 is not active under accelerate-zero3" in done.stdout


@pytest.mark.slow
def test_dry_run_exits_2_naming_each_bad_path_and_passes_the_data_it_can_use(cli, tmp_path):
    pytest.importorskip("deepspeed")
    bad = cli("reproduce", "--recipe", "qwen3-8b", "--dry-run", "--preference-data", str(tmp_path / "pref.jsonl"),
              "--prompts", "./no-such-prompts", "--bench", str(tmp_path / "bench"))
    assert bad.code == 2
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error: ")]
    assert errors[:3] == [f"error: --preference-data: {tmp_path / 'pref.jsonl'}: no such file or folder",
                          "error: --prompts: ./no-such-prompts: no such file or folder",
                          f"error: --bench: {tmp_path / 'bench'}: no such file or folder"]
    good = cli("reproduce", "--recipe", "qwen3-8b", "--dry-run", "--preference-data", "synthetic:train:20",
               "--prompts", "synthetic:train:20", "--bench", "sample")
    errors = [line for line in good.stderr.splitlines() if line.startswith("error: ")]
    expected = [] if importlib.util.find_spec("vllm") else ["vllm does not import"]
    assert [e.removeprefix("error: ")[:len("vllm does not import")] for e in errors] == expected
    assert good.code == (0 if not expected else 2)
    assert "train-grpo --recipe qwen3-8b-grpo" in good.stdout


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_training_refuses_a_missing_policy_folder_and_a_missing_vllm_in_one_line(cli, tmp_path):
    done = cli("train-grpo", "--recipe", "smoke-grpo", "--policy", str(tmp_path / "never-loaded"),
               "--output-dir", str(tmp_path / "out"))
    assert done.code == 2 and done.stderr.strip() == f"error: {tmp_path / 'never-loaded'}: no such folder"
    recipe = tmp_path / "vllm.yaml"
    recipe.write_text(yaml.safe_dump({"kind": "grpo", "policy_model": str(tmp_path / "never-loaded"),
                                      "judge": "world", "prompts": "synthetic:train:2", "use_vllm": True,
                                      "output_dir": str(tmp_path / "out")}))
    done = cli("train-grpo", "--recipe", str(recipe))
    assert done.code == 1 and done.stderr.strip().splitlines()[-1].startswith("error: vllm does not import")
