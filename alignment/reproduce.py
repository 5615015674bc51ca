"""`promedical-bench reproduce --recipe smoke|qwen3-8b`: the paper's pipeline end to end.

``smoke`` (CPU, offline): (1) train the criteria-injected reward model on synthetic-world preference data;
(2) judge track for the untrained base and the trained reward model on the hand-written sample bench and a
synthetic held-out bench of unseen scenarios, with paired gains (``compare``); (3) policy: supervised
warm-up of a tiny local chat model, then safety-veto GRPO graded by the synthetic world's exact verdicts
(smoke-grpo.yaml says why), policy track before/after on held-out prompts, graded by the trained reward model
and by the world; (4) every evaluation is an ordinary run directory, plus
``reproduce_report.md``. ``qwen3-8b`` is the same plan at paper scale on GPUs (``--dry-run`` validates and
prints the commands).
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promedical.alignment.config import load_recipe, recipe_path, resolve_data, resolve_model_source
from promedical.bench.compare import compare_runs
from promedical.bench.io import write_jsonl_atomic, write_text_atomic
from promedical.bench.models.reward import RM_CALIBRATION_FILE
from promedical.bench.runner import RunConfig, run

#: The paper's headline gains of ProMedical-RM (Qwen3) over untrained Qwen3-8B as a judge, in points.
PAPER_GAINS = {"overall_accuracy": 22.3, "pairwise_safety_accuracy": 21.7}


@dataclass(frozen=True)
class SmokeSizes:
    """How much data each smoke stage uses (``quick`` shrinks everything for tests)."""

    rm_items: int = 800
    rm_pairs: int | None = None  # None: the smoke-rm recipe's numbers of pairs of each kind
    heldout_items: int = 60
    synthetic_calibration_items: int = 60  # pick thresholds for synthetic-world text (not the RM's training items)
    sft_items: int | None = None  # None: smoke-sft.yaml's data; else a quarter of them on the held-out prompts
    grpo_prompts: int | None = None  # None: smoke-grpo.yaml's prompts and steps
    grpo_steps: int | None = None
    policy_eval_items: int = 40
    sample_limit: int | None = None


QUICK = SmokeSizes(rm_items=40, rm_pairs=60, heldout_items=6, synthetic_calibration_items=4, sft_items=30,
                   grpo_prompts=8, grpo_steps=2, policy_eval_items=4, sample_limit=4)


def reproduce_smoke(output: Path, sizes: SmokeSizes = SmokeSizes(), log: Callable[[str], None] = print
                    ) -> dict[str, Any]:
    """Run the smoke reproduction into ``output``; returns the summary that the report is written from."""
    from promedical.alignment.grpo import train_grpo, train_sft
    from promedical.alignment.rm import calibrated_view, save_base_reward_model, train_reward_model
    from promedical.bench.data.synthetic import synthesize
    from promedical.bench.metrics import constant_floor
    from promedical.bench.models.embedding import calibrated_encoder
    from promedical.bench.results import JudgeSample, read_samples

    output = Path(output)
    models, runs = output / "models", output / "runs"
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {"sizes": sizes.__dict__, "timings_s": timings}

    def stage(name: str):
        log(f"[reproduce] {name}")
        return time.perf_counter()

    start = stage("1/4 reward model: train on synthetic preference pairs (train scenarios)")
    rm_recipe = load_recipe("smoke-rm", output_dir=str(models / "smoke-rm"),
                            train_data=f"synthetic:train:{sizes.rm_items}:0", max_pairs=sizes.rm_pairs,
                            criterion_contrast_pairs=sizes.rm_pairs, safety_counterfactual_pairs=sizes.rm_pairs)
    summary["reward_model"] = train_reward_model(rm_recipe)
    save_base_reward_model("minilm", models / "base-rm", seed=rm_recipe.seed,
                           calibration_data=rm_recipe.calibration_data)  # the base gets the same threshold rule
    # The recipe's threshold fits hand-written text; synthetic-world text (the held-out bench, the policy's
    # answers) gets the same weights with a threshold picked on synthetic items the RM did not train on.
    synthetic_calibration = f"synthetic:train:{sizes.synthetic_calibration_items}:3"
    calibration_items = resolve_data(synthetic_calibration)
    for name in ("base-rm", "smoke-rm"):
        calibrated_view(models / name, models / f"{name}-synthetic", calibration_items, synthetic_calibration)
    # the untrained base as a zero-shot judge: the same MiniLM, criterion-response similarity, cuts per type
    # fitted on the same calibration items as the trained model's thresholds (bench/models/embedding.py)
    encoder = resolve_model_source("minilm")
    calibrated_encoder(encoder, models / "zero-shot", resolve_data(rm_recipe.calibration_data),
                       rm_recipe.calibration_data)
    calibrated_encoder(encoder, models / "zero-shot-synthetic", calibration_items, synthetic_calibration)
    summary["synthetic_calibration"] = synthetic_calibration
    summary["policy_judge_constant_verdicts"] = json.loads(
        (models / "smoke-rm-synthetic" / RM_CALIBRATION_FILE).read_text())["constant_verdicts"]
    timings["reward_model"] = time.perf_counter() - start

    start = stage("2/4 judge track: zero-shot base, untrained head and trained reward model")
    heldout = output / "data" / "synthetic_heldout.jsonl"
    heldout.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(heldout, synthesize(sizes.heldout_items, seed=7, split="heldout"))
    summary["judge"] = {}
    judges = {"zero_shot": "embed:{models}/zero-shot{suffix}", "base": "{models}/base-rm{suffix}",
              "trained": "{models}/smoke-rm{suffix}"}
    for bench_name, bench, suffix in (("sample", "sample", ""), ("test", "test", ""),
                                      ("synthetic_heldout", str(heldout), "-synthetic")):
        outcomes = {name: run(RunConfig(model=spec.format(models=models, suffix=suffix), bench=bench,
                                        output_dir=runs, limit=sizes.sample_limit if bench != str(heldout) else None,
                                        progress=False))
                    for name, spec in judges.items()}
        comparison = compare_runs(outcomes["zero_shot"].run_dir, outcomes["trained"].run_dir, seed=0)
        summary["judge"][bench_name] = {
            **{name: outcome.results.tracks["judge"].metrics for name, outcome in outcomes.items()},
            "met_share": {name: outcome.results.tracks["judge"].met_share for name, outcome in outcomes.items()},
            "floor": constant_floor([s for s in read_samples(outcomes["trained"].run_dir)
                                     if isinstance(s, JudgeSample)]),
            "gain": comparison["tracks"]["judge"]["differences"],
            "paired_test": comparison["tracks"]["judge"]["paired_test"],
            "runs": [str(o.run_dir) for o in outcomes.values()],
        }
    timings["judge"] = time.perf_counter() - start

    start = stage("3/4 policy: supervised warm-up, then safety-veto GRPO graded by the synthetic world")
    # base_model: tiny — a fresh sentence-level tiny policy built from the SFT data into models/sft/base; its
    # data mix (a quarter on the held-out prompts, which GRPO never sees) is smoke-sft.yaml's
    sft_data = None
    if sizes.sft_items is not None:
        held = sizes.sft_items // 4
        sft_data = f"synthetic:train:{sizes.sft_items - held}:1 + synthetic:heldout_prompts:{held}:1"
    summary["sft"] = train_sft(load_recipe("smoke-sft", output_dir=str(models / "sft"), train_data=sft_data))
    grpo = load_recipe("smoke-grpo", policy_model=str(models / "sft"), max_steps=sizes.grpo_steps,
                       prompts=None if sizes.grpo_prompts is None else f"synthetic:train:{sizes.grpo_prompts}:2",
                       output_dir=str(models / "grpo"))
    summary["grpo_judge"] = grpo.judge
    summary["grpo"] = train_grpo(grpo)
    prompts = output / "data" / "heldout_prompts.jsonl"
    # prompts GRPO never trained on, about its scenarios (unseen scenarios are the judge track's test above)
    eval_items = synthesize(sizes.policy_eval_items, seed=11, split="heldout_prompts")
    write_jsonl_atomic(prompts, eval_items)
    policy = {name: run(RunConfig(model=str(models / name), bench=str(prompts), track="policy",
                                  judge=f"rm:{models / 'smoke-rm-synthetic'}", output_dir=runs, max_new_tokens=64,
                                  progress=False))
              for name in ("sft", "grpo")}
    comparison = compare_runs(policy["sft"].run_dir, policy["grpo"].run_dir, seed=0)
    summary["policy"] = {
        "before": policy["sft"].results.tracks["policy"].metrics,
        "after": policy["grpo"].results.tracks["policy"].metrics,
        "change": comparison["tracks"]["policy"]["differences"],
        "paired_test": comparison["tracks"]["policy"]["paired_test"],
        "ground_truth": {name: world_truth(outcome.run_dir, eval_items) for name, outcome in policy.items()},
        "runs": [str(o.run_dir) for o in policy.values()],
    }
    timings["policy"] = time.perf_counter() - start

    stage("4/4 report")
    timings["total"] = sum(timings.values())
    write_text_atomic(output / "reproduce_report.md", [smoke_report(summary)])
    write_text_atomic(output / "reproduce_summary.json", [json.dumps(summary, indent=2, default=_plain) + "\n"])
    return summary


def world_truth(run_dir: Path, items: list) -> dict[str, float]:
    """What a policy run's answers really contain, by construction of the synthetic world (not as judged):
    the share of answers without any violating sentence, the mean S1 over world-recognised satisfying
    sentences, and the mean answer length in words — a check on reward hacking by the judged metrics."""
    from promedical.bench.data.synthetic import world_verdicts
    from promedical.bench.results import PolicySample, read_samples
    from promedical.bench.scoring import s_scores

    by_id = {item.id: item for item in items}
    answers = [(by_id[sample.item_id], sample.answer) for sample in read_samples(run_dir)
               if isinstance(sample, PolicySample) and sample.answer is not None]
    scores = [s_scores(item, world_verdicts(item, answer)) for item, answer in answers]
    return {"answers": len(answers), "safety_compliance": sum(s3 == 0 for _, _, s3 in scores) / len(scores),
            "proficiency": sum(s1 for s1, _, _ in scores) / len(scores),
            "words": sum(len(answer.split()) for _, answer in answers) / len(answers)}


def _plain(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else str(value)


def _pct(metric: Any) -> str:
    data = _plain(metric) if not isinstance(metric, dict) else metric
    if data.get("value") is None:
        return "n/a"
    return f"{100 * data['value']:.1f} [{100 * data['ci_low']:.1f}, {100 * data['ci_high']:.1f}]"


def _pp(diff: dict[str, Any]) -> str:
    if diff.get("value") is None:
        return "n/a"
    return f"{100 * diff['value']:+.1f} [{100 * diff['ci_low']:+.1f}, {100 * diff['ci_high']:+.1f}]"


def smoke_report(summary: dict[str, Any]) -> str:
    lines = ["# Smoke reproduction report", "",
             "CPU-scale reproduction of the ProMedical pipeline: a MiniLM criteria-injected reward model trained "
             "on synthetic clinical-world data, judged like the paper's judge table, and a tiny policy aligned "
             "with safety-veto GRPO. **These numbers are on a different scale from the paper's** (different "
             "model sizes, data and bench); the paper's gains are shown only for orientation.", "",
             "## Judge track: trained reward model vs its untrained base", "",
             "Three judges on the same MiniLM encoder: **zero-shot** (the untrained encoder as a judge: "
             "cosine similarity between criterion and response, one logistic cut per criterion type; "
             "`embed:`), **untrained head** (the reward-model code path with a fresh random scalar head, "
             "calibrated the same way) and **trained** (the smoke reward model). Every cut and threshold was "
             f"picked on `{summary['reward_model']['calibration_data']}` for hand-written text (sample, test) "
             f"and on `{summary['synthetic_calibration']}` for synthetic-world text (the held-out bench and the "
             "policy's answers). The constant floor always gives the majority gold label of each mode and criterion "
             "type (it knows the label frequencies of the bench judged). `test` is the locked hand-written test "
             "set: no setting of any recipe was chosen "
             "on it; `sample` is the demo and regression set that earlier settings were chosen on "
             "(docs/alignment.md). The gain is trained − zero-shot, paired over items.", ""]
    for bench, data in summary["judge"].items():
        lines += [f"### {bench}", "", "| metric | constant floor | zero-shot | untrained head | trained | gain over "
                  "zero-shot, pp (paired 95% CI) | paper's gain, pp |", "|---|---|---|---|---|---|---|"]
        for name in ("overall_accuracy", "pairwise_safety_accuracy", "pointwise_proficiency_accuracy",
                     "pointwise_excellence_accuracy", "pointwise_safety_accuracy", "pairwise_proficiency_accuracy",
                     "veto_recall", "veto_f1"):
            paper = f"{PAPER_GAINS[name]:+.1f} (Qwen3-8B scale)" if name in PAPER_GAINS else ""
            floor = data["floor"].get(name)
            lines.append(f"| {name} | {'n/a' if floor is None else f'{100 * floor:.1f}'} | "
                         f"{_pct(data['zero_shot'][name])} | {_pct(data['base'][name])} | "
                         f"{_pct(data['trained'][name])} | {_pp(data['gain'][name])} | {paper} |")
        test = data["paired_test"]
        lines += ["", f"{test['name'].capitalize()} on per-item correct decisions: p = {test['p_value']:.3g} "
                  f"({test['items']} items).", "", *_met_share_lines(data["met_share"]), ""]
    policy = summary["policy"]
    lines += ["## Policy track: before vs after safety-veto GRPO", "",
              f"GRPO's reward graded each completion with the judge `{summary['grpo_judge']}`. The table is graded "
              "by the trained reward model (the offline policy judge); the ground truth follows it. Held-out "
              "prompts: the prompt of every training scenario that GRPO never trains on "
              "(`synthetic:heldout_prompts`); the supervised warm-up, which stands in for pretraining, covers "
              "them too.", "",
              "| metric | before (SFT) | after (GRPO) | change, pp |", "|---|---|---|---|"]
    for name in ("safety_compliance", "proficiency", "excellence", "overall"):
        lines.append(f"| {name} | {_pct(policy['before'][name])} | {_pct(policy['after'][name])} | "
                     f"{_pp(policy['change'][name])} |")
    truth = policy["ground_truth"]
    test = policy["paired_test"]
    lines += ["", f"{test['name'].capitalize()} on per-item overall: p = {test['p_value']:.3g} "
              f"({test['items']} items).", "",
              "Ground truth by construction (the same answers, checked for the synthetic world's own satisfying "
              "and violating sentences; blind to anything said in other words):", "",
              "| | before (SFT) | after (GRPO) |", "|---|---|---|",
              f"| safety_compliance | {100 * truth['sft']['safety_compliance']:.1f} | "
              f"{100 * truth['grpo']['safety_compliance']:.1f} |",
              f"| proficiency (S1) | {100 * truth['sft']['proficiency']:.1f} | "
              f"{100 * truth['grpo']['proficiency']:.1f} |",
              f"| answer length, words | {truth['sft']['words']:.0f} | {truth['grpo']['words']:.0f} |", "",
              *_blind_safety_note(summary["policy_judge_constant_verdicts"]),
              "## Stages", "",
              f"- Reward model: {json.dumps({k: v for k, v in summary['reward_model'].items() if k != 'recipe'})}",
              f"- SFT: {json.dumps(summary['sft'], default=str)}",
              f"- GRPO: {json.dumps(summary['grpo'], default=str)}",
              f"- Sizes: {json.dumps(summary['sizes'])}",
              f"- Wall time (s): {json.dumps({k: round(v, 1) for k, v in summary['timings_s'].items()})}", ""]
    return "\n".join(lines)


def _met_share_lines(shares: dict[str, dict[str, float] | None]) -> list[str]:
    """Each judge's share of "met" verdicts per criterion type, flagging a type given one verdict."""
    from promedical.bench.metrics import ONE_VERDICT_SHARE, one_verdict_types

    lines = [f"Share of \"met\" verdicts per criterion type (**bold**: one verdict to ≥ {100 * ONE_VERDICT_SHARE:.0f}% "
             "of the type's instances — a constant predictor there):", ""]
    for judge, share in shares.items():
        flagged = one_verdict_types(share or {})
        cells = [f"**{kind} {100 * value:.0f}%**" if kind in flagged else f"{kind} {100 * value:.0f}%"
                 for kind, value in (share or {}).items()]
        lines.append(f"- {judge}: {', '.join(cells)}")
    return lines


def _blind_safety_note(constant: dict[str, str]) -> list[str]:
    """A paragraph when the grading reward model's safety threshold called every synthetic calibration
    instance "met", i.e. its policy-track safety verdicts are blind."""
    if constant.get("safety") != "met":
        return []
    return ["**The reward model cannot see violations here.** On its synthetic calibration items its safety "
            "threshold judged every instance \"met\": its safety scores did not separate violations there, so "
            "its safety compliance above is 100% whatever the answers say; read the ground truth.", ""]


def qwen3_8b_plan(output: Path, preference_data: str, prompts: str, bench: str) -> list[list[str]]:
    """The paper-scale plan as commands: train the RM, GRPO the policy, evaluate base and trained."""
    launch = ["accelerate", "launch", "--config_file", str(recipe_path("accelerate-zero3")), "-m",
              "promedical.bench.cli"]
    rm_dir, policy_dir, runs = output / "qwen3-8b-rm", output / "qwen3-8b-grpo", output / "runs"
    return [
        [*launch, "train-rm", "--recipe", "qwen3-8b-rm", "--train-data", preference_data, "--output-dir", str(rm_dir)],
        ["promedical-bench", "run", "--model", "Qwen/Qwen3-8B", "--bench", bench, "--output-dir", str(runs)],
        ["promedical-bench", "run", "--model", str(rm_dir), "--bench", bench, "--output-dir", str(runs)],
        [*launch, "train-grpo", "--recipe", "qwen3-8b-grpo", "--prompts", prompts, "--judge", f"rm:{rm_dir}",
         "--output-dir", str(policy_dir)],
        ["promedical-bench", "run", "--model", "Qwen/Qwen3-8B", "--track", "policy", "--judge", f"rm:{rm_dir}",
         "--bench", bench, "--backend", "vllm", "--output-dir", str(runs)],
        ["promedical-bench", "run", "--model", str(policy_dir), "--track", "policy", "--judge", f"rm:{rm_dir}",
         "--bench", bench, "--backend", "vllm", "--output-dir", str(runs)],
    ]


def format_plan(commands: list[list[str]]) -> str:
    return "\n".join(shlex.join(command) for command in commands)
