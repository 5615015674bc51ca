"""The preflight of ``reproduce --recipe qwen3-8b``: everything the paper-scale plan needs, checked before any
GPU time is spent (``--dry-run`` stops after it).

- every data path exists and validates: the preference data gives criterion-level pairs, the GRPO prompts
  are bench items, the bench has labelled instances for the judge track;
- every model path or Hugging Face id of the recipes is well formed (a local folder, or ``org/name``);
- the ``deepspeed`` and ``vllm`` extras import;
- each recipe builds its TRL trainer config under the shipped ZeRO-3 accelerate config (in a process started
  by ``accelerate launch``, as the plan runs it), with ZeRO-3 active there;
- the visible GPUs have the count and memory of each step's plan (docs/alignment.md, "Memory plan"). A
  machine without any GPU (a login node, this CI) gets a note instead, so the rest can be checked there.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from promedical.alignment.extras import EXTRAS, missing_extra
from promedical.bench.errors import PromedicalError

#: The recipes of the plan, and the accelerate config they are launched with.
PLAN_RECIPES = ("qwen3-8b-rm", "qwen3-8b-grpo")
ACCELERATE_CONFIG = "accelerate-zero3"
#: GPUs and memory per GPU (GiB) each step of the plan needs, from the memory plan in docs/alignment.md.
GPU_NEEDS: dict[str, tuple[int, int]] = {
    "train-rm (ZeRO-3)": (8, 80),
    "run (judge track, 8B on one GPU)": (1, 40),
    "train-grpo (ZeRO-3 + colocated vLLM + whole reward model)": (8, 80),
    "run (policy track, vLLM then the reward model)": (1, 40),
}
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


class PreflightError(PromedicalError):
    """The plan cannot start: one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))

    def report(self) -> list[str]:
        return list(self.problems)


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_data(label: str, spec: str, check: Callable[[list], str | None]) -> list[str]:
    """Load ``spec`` as the plan will (bench source or synthetic spec) and apply ``check`` to its items."""
    from promedical.alignment.config import resolve_data

    try:
        items = resolve_data(spec)
    except PromedicalError as error:
        return [f"{label}: {error.message()}"]
    except OSError as error:  # e.g. a Hugging Face id that cannot be fetched
        return [f"{label}: {spec}: {str(error).strip().splitlines()[0] if str(error).strip() else error}"]
    problem = check(items)
    return [f"{label}: {spec}: {problem}"] if problem else []


def _preference_pairs(items: list) -> str | None:
    from promedical.alignment.rm import criterion_pairs

    return None if criterion_pairs(items) else "no criterion-level preference pairs (the items carry no labels)"


def _prompts(items: list) -> str | None:
    return None if items else "no items"


def _judge_instances(items: list) -> str | None:
    from promedical.bench.instances import labelled_instances

    return None if next(labelled_instances(items), None) else "no labelled instances for the judge track"


def check_model_spec(label: str, spec: str) -> list[str]:
    """A model is a local folder with a config.json, or a Hugging Face id ``org/name`` (not fetched here)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return [] if (path / "config.json").exists() else [f"{label}: {spec}: folder has no config.json"]
    if spec.startswith(("/", "./", "../", "~")) or not _HUB_ID.fullmatch(spec) or ".." in spec or "--" in spec:
        return [f"{label}: {spec}: no such folder, and not a Hugging Face id (org/name)"]
    return []


def check_extras() -> list[str]:
    return [problem for module in EXTRAS if (problem := missing_extra(module)) is not None]


def check_gpus(needs: dict[str, tuple[int, int]] = GPU_NEEDS) -> Preflight:
    """Problems for steps the visible GPUs cannot hold; a note when there is no GPU at all."""
    import torch

    found = Preflight()
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        found.notes.append("no GPU visible on this machine: the GPU count and memory were not checked (the plan "
                           "needs 8 GPUs with at least 80 GiB each)")
        return found
    memory = min(torch.cuda.get_device_properties(i).total_memory for i in range(count)) / 2**30
    for step, (gpus, gib) in needs.items():
        if count < gpus or memory < gib:
            found.problems.append(f"{step}: needs {gpus} GPU(s) with at least {gib} GiB each; this machine has "
                                  f"{count} with {memory:.0f} GiB (the smallest)")
    found.notes.append(f"{count} GPU(s) visible, the smallest with {memory:.0f} GiB")
    return found


def check_recipes_under_zero3(recipes: tuple[str, ...] = PLAN_RECIPES) -> list[str]:
    """Build each recipe's trainer config in a process started by ``accelerate launch`` with the shipped ZeRO-3
    config, for one process (on a machine without a GPU: on the CPU with bf16 off), where ZeRO-3 must be
    active."""
    import tempfile

    import torch
    import yaml

    from promedical.alignment.config import recipe_path

    config = yaml.safe_load(recipe_path(ACCELERATE_CONFIG).read_text(encoding="utf-8"))
    config["num_processes"] = 1
    if not torch.cuda.is_available():
        config.update(use_cpu=True, mixed_precision="no")
    with tempfile.TemporaryDirectory() as folder:
        launch_config = Path(folder) / "accelerate.yaml"
        launch_config.write_text(yaml.safe_dump(config), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launch_config),
                               "-m", "promedical.alignment.preflight", *recipes], capture_output=True, text=True,
                              timeout=600)
    problems = [line.removeprefix("problem: ") for line in done.stdout.splitlines() if line.startswith("problem: ")]
    if done.returncode != 0 and not problems:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        problems.append(f"{ACCELERATE_CONFIG}: accelerate launch failed: {last}")
    return problems


def _build_under_launch(recipes: list[str]) -> int:
    """Inside ``accelerate launch``: print ``problem: ...`` for each recipe whose config cannot be built, or
    under which ZeRO-3 is not active."""
    import torch
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    from promedical.alignment.config import load_recipe

    failed = 0
    for name in recipes:
        try:  # kept: transformers holds the active DeepSpeed config only by a weak reference to it
            config = load_recipe(name).trl_config(check_only=not torch.cuda.is_available())
        except Exception as error:  # noqa: BLE001 - each recipe's failure is reported as one line
            print(f"problem: {name}: its trainer config does not build under ZeRO-3: {error}".splitlines()[0])
            failed += 1
            continue
        if not is_deepspeed_zero3_enabled():
            print(f"problem: {name}: ZeRO-3 is not active under {ACCELERATE_CONFIG}")
            failed += 1
        del config
    return 2 if failed else 0


def preflight(preference_data: str, prompts: str, bench: str) -> Preflight:
    """Every check of the module docstring; the plan can start when ``problems`` is empty."""
    from promedical.alignment.config import load_recipe

    found = Preflight()
    found.problems += check_data("--preference-data", preference_data, _preference_pairs)
    found.problems += check_data("--prompts", prompts, _prompts)
    found.problems += check_data("--bench", bench, _judge_instances)
    rm, grpo = (load_recipe(name) for name in PLAN_RECIPES)
    found.problems += check_model_spec(f"{PLAN_RECIPES[0]}: base_model", rm.base_model)  # type: ignore[union-attr]
    found.problems += check_model_spec(f"{PLAN_RECIPES[1]}: policy_model", grpo.policy_model)  # type: ignore
    extras = check_extras()
    found.problems += extras
    if not any(line.startswith("deepspeed ") for line in extras):
        found.problems += check_recipes_under_zero3()
    gpus = check_gpus()
    found.problems += gpus.problems
    found.notes += gpus.notes
    return found


if __name__ == "__main__":
    sys.exit(_build_under_launch(sys.argv[1:]))
