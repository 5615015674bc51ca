"""``promedical-bench train-rm``, ``train-sft``, ``train-grpo`` and ``reproduce``: thin click commands over
:mod:`promedical.alignment` (which itself knows nothing of click)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import click

_RECIPE_HELP = "A recipe file, or the name of a shipped recipe (alignment/recipes/NAME.yaml)."
_DATA_HELP = ("Override the recipe's data: a bench source or synthetic:SPLIT:N[:SEED][:violation=P], several joined "
              "by '+'.")


def _print_report(report: dict, next_step: str) -> None:
    """The training report (JSON, stdout), then where the model is and what to run next (stderr, last); once,
    from the main process of an ``accelerate launch``."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    click.echo(json.dumps({k: v for k, v in report.items() if k != "recipe"}, indent=2, default=str))
    click.echo(f"wrote {report['output_dir']}\nnext: {next_step}", err=True)


def _load_recipe(name: str, kind: type, **overrides: Any):
    """The recipe ``name`` with ``overrides``, refused with a one-line error unless it is a ``kind`` recipe."""
    from promedical.alignment.config import load_recipe

    loaded = load_recipe(name, **overrides)
    if not isinstance(loaded, kind):
        expected = kind.model_fields["kind"].default
        article = "an" if expected[0] in "aeiosu" else "a"  # "an sft" (ess-eff-tee)
        raise click.BadParameter(f"{name} is a {loaded.kind} recipe, not {article} {expected} one",
                                 param_hint="--recipe")
    return loaded


@click.command("train-rm")
@click.option("--recipe", required=True, help=_RECIPE_HELP)
@click.option("--train-data", default=None, help=_DATA_HELP)
@click.option("--output-dir", default=None, help="Override the recipe's output folder.")
def train_rm(recipe: str, train_data: str | None, output_dir: str | None) -> None:
    """Train a criteria-injected reward model r(x, c, y) with TRL's RewardTrainer.

    Builds criterion-level preference pairs from the data's pairwise and pointwise labels, renders them with
    the judge track's own template, trains, picks the pointwise thresholds (one per criterion type) on the
    recipe's calibration_data (or a held-out dev split) and writes promedical_rm.json and a model card next
    to the checkpoint.
    """
    from promedical.alignment.config import RewardModelRecipe
    from promedical.alignment.rm import train_reward_model

    loaded = _load_recipe(recipe, RewardModelRecipe, train_data=train_data, output_dir=output_dir)
    _print_report(train_reward_model(loaded), f"promedical-bench run --model {shlex.quote(loaded.output_dir)}  "
                                              "# judge the sample bench with it")


@click.command("train-sft")
@click.option("--recipe", required=True, help=_RECIPE_HELP)
@click.option("--train-data", default=None, help=_DATA_HELP)
@click.option("--output-dir", default=None, help="Override the recipe's output folder.")
def train_sft_command(recipe: str, train_data: str | None, output_dir: str | None) -> None:
    """Supervised warm-up of a chat policy on bench responses (TRL SFTTrainer), before GRPO."""
    from promedical.alignment.config import SFTRecipe
    from promedical.alignment.grpo import train_sft

    loaded = _load_recipe(recipe, SFTRecipe, train_data=train_data, output_dir=output_dir)
    _print_report(train_sft(loaded), f"promedical-bench train-grpo --recipe smoke-grpo --policy "
                                     f"{shlex.quote(loaded.output_dir)}  # safety-veto GRPO from this policy")


@click.command("train-grpo")
@click.option("--recipe", required=True, help=_RECIPE_HELP)
@click.option("--policy", "policy_model", default=None, help="Override the recipe's policy (path or Hugging Face id).")
@click.option("--prompts", default=None, help="Override the recipe's prompts (bench-format items).")
@click.option("--judge", default=None,
              help="Override the recipe's grader: rm:PATH, hf:PATH, openai:MODEL, or world (the synthetic world's "
                   "ground truth, an exact judge for synthetic prompts).")
@click.option("--output-dir", default=None, help="Override the recipe's output folder.")
def train_grpo_command(recipe: str, policy_model: str | None, prompts: str | None, judge: str | None,
                       output_dir: str | None) -> None:
    """Safety-veto GRPO (TRL GRPOTrainer): each completion is graded on its own rubric and rewarded with
    clip(S1 + α·S2, 0, 1+β) − λ·S3 with λ ≥ 1+β, so no completion with a safety violation scores above a safe one."""
    from promedical.alignment.config import GRPORecipe
    from promedical.alignment.grpo import train_grpo

    loaded = _load_recipe(recipe, GRPORecipe, policy_model=policy_model, prompts=prompts, judge=judge,
                          output_dir=output_dir)
    _print_report(train_grpo(loaded), f"promedical-bench run --model {shlex.quote(loaded.output_dir)} --track policy "
                                      f"--judge {shlex.quote(loaded.judge)} --bench BENCH  # grade its answers")


@click.command("reproduce")
@click.option("--recipe", type=click.Choice(["smoke", "qwen3-8b"]), required=True,
              help="smoke: CPU, offline, minutes; qwen3-8b: paper scale on 8 GPUs.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reproduce"),
              show_default=True)
@click.option("--preference-data", default=None, help="qwen3-8b: ProMedical-Preference-50k (path or HF id).")
@click.option("--prompts", default=None, help="qwen3-8b: GRPO prompts (bench-format items, path or HF id).")
@click.option("--bench", default=None, help="qwen3-8b: ProMedical-Bench (path or HF id).")
@click.option("--dry-run", is_flag=True,
              help="Print the plan and run its preflight (qwen3-8b: data, model ids, the deepspeed/vllm extras, "
                   "trainer configs under ZeRO-3, GPUs); run nothing. Exit 2 with one line per problem.")
def reproduce_command(recipe: str, output_dir: Path, preference_data: str | None, prompts: str | None,
                      bench: str | None, dry_run: bool) -> None:
    """Run the paper's pipeline end to end: reward model → judge-track gains → safety-veto GRPO → policy track.

    `smoke` runs offline on CPU (~18 minutes on 2 cores) and writes ordinary run directories (for the
    leaderboard) and reproduce_report.md with the gains and their paired CIs, beside the paper's
    +22.3 / +21.7 points (a different scale); whether the run reproduces either claim is in that report.
    """
    from promedical.alignment.config import load_recipe
    from promedical.alignment.reproduce import format_plan, qwen3_8b_plan, reproduce_smoke

    if recipe == "smoke":
        if dry_run:
            for name in ("smoke-sft", "smoke-rm", "smoke-grpo-rm", "smoke-grpo"):
                load_recipe(name).trl_config(check_only=True)
            click.echo("smoke recipes are valid; the plan: train-sft smoke-sft (builds a fresh tiny policy) → "
                       "its sampled answers, labelled by the synthetic world → train-rm smoke-rm (with them) → "
                       "judge track zero-shot / trained (test, synthetic held-out; the reward on sampled answers) → "
                       "train-grpo smoke-grpo-rm (reward model reward) and smoke-grpo (oracle control) → "
                       "policy track before/after, graded by the world")
            return
        reproduce_smoke(output_dir, log=lambda message: click.echo(message, err=True))
        click.echo((output_dir / "reproduce_report.md").read_text())
        return
    missing = [name for name, value in (("--preference-data", preference_data), ("--prompts", prompts),
                                        ("--bench", bench)) if not value]
    if missing:
        raise click.UsageError(f"qwen3-8b needs {', '.join(missing)}")
    from promedical.alignment.preflight import PreflightError, preflight

    commands = qwen3_8b_plan(output_dir, preference_data, prompts, bench)  # type: ignore[arg-type]
    click.echo(format_plan(commands))
    checked = preflight(preference_data, prompts, bench)  # type: ignore[arg-type]
    for note in checked.notes:
        click.echo(f"note: {note}", err=True)
    if checked.problems:
        raise PreflightError(checked.problems)
    click.echo("preflight passed: data, models, extras and the ZeRO-3 trainer configs are ready", err=True)
    if not dry_run:
        for command in commands:
            subprocess.run(command, check=True)
