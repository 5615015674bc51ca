"""The paper-scale path under DeepSpeed ZeRO-3, on CPU: `accelerate launch --num_processes 1` with the shipped
ZeRO-3 accelerate config (bf16 and GPUs switched off), tiny models. ZeRO-3 makes every `from_pretrained` after
the trainer config partition the weights; the reward model that grades GRPO completions and the one that is
calibrated after `train-rm` must still be loaded whole."""

import json
import re
import subprocess
import sys

import pytest
import yaml

from promedical.alignment.config import recipe_path

pytest.importorskip("deepspeed")
pytestmark = pytest.mark.slow


@pytest.fixture
def zero3_config(tmp_path):
    """The shipped ZeRO-3 accelerate config for one CPU process."""
    config = yaml.safe_load(recipe_path("accelerate-zero3").read_text())
    assert config["distributed_type"] == "DEEPSPEED" and config["deepspeed_config"]["zero_stage"] == 3
    config.update(num_processes=1, mixed_precision="no", use_cpu=True)
    path = tmp_path / "zero3.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _launch(config, tmp_path, command: str, recipe: dict) -> subprocess.CompletedProcess:
    recipe_file = tmp_path / f"{command}.yaml"
    recipe_file.write_text(yaml.safe_dump({**recipe, "use_cpu": True, "logging_steps": 1}))
    return subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
                           "-m", "promedical.bench.cli", command, "--recipe", str(recipe_file)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)


def _assert_progress_then_where_and_what_next(stderr: str, output, next_command: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-2] == f"wrote {output}" and lines[-1].startswith(f"next: {next_command}"), lines[-3:]
    assert re.search(r"\d+/\d+ \[[0-9:]+<[0-9:]+", stderr), "a training progress bar with its ETA"


def test_grpo_step_graded_by_a_reward_model_under_zero3(zero3_config, tmp_path, tiny_models):
    output = tmp_path / "grpo"
    done = _launch(zero3_config, tmp_path, "train-grpo", {
        "kind": "grpo", "policy_model": str(tiny_models["causal"]), "judge": f"rm:{tiny_models['reward']}",
        "prompts": "synthetic:train:2:2", "max_steps": 1, "num_generations": 2, "batch_size": 2,
        "max_completion_length": 8, "output_dir": str(output)})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index('{\n  "'):])  # the report follows TRL's log lines
    assert report["steps"] == 1 and report["reward_first"] is not None, "the reward model graded the completions"
    assert (output / "model.safetensors").exists()
    _assert_progress_then_where_and_what_next(done.stderr, output, "promedical-bench run --model")


def test_train_rm_under_zero3_ends_with_calibrated_thresholds(zero3_config, tmp_path, tiny_models):
    from promedical.bench.models.reward import RM_CALIBRATION_FILE, RewardModelJudge

    output = tmp_path / "rm"
    done = _launch(zero3_config, tmp_path, "train-rm", {
        "kind": "reward_model", "base_model": str(tiny_models["reward"]), "train_data": "synthetic:train:6:0",
        "dev_fraction": 0.0, "calibration_data": "calibration", "max_pairs": 16, "epochs": 1, "batch_size": 4,
        "max_length": 128, "output_dir": str(output)})
    assert done.returncode == 0, done.stderr[-3000:]
    calibration = json.loads((output / RM_CALIBRATION_FILE).read_text())
    assert set(calibration["thresholds"]) == {"proficiency", "excellence", "safety"}
    assert calibration["calibration_instances"] > 0 and (output / "README.md").exists()
    _assert_progress_then_where_and_what_next(done.stderr, output, f"promedical-bench run --model {output}")
    judge = RewardModelJudge(str(output))  # the saved checkpoint is whole: it loads and judges outside ZeRO-3
    assert judge.model.score.weight.dim() == 2
