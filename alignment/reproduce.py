"""`promedical-bench reproduce --recipe smoke|qwen3-8b`: the paper's pipeline end to end.

``smoke`` (CPU, offline): (1) supervised warm-up of a fresh tiny chat policy; (2) the criteria-injected reward
model, trained on synthetic-world preference pairs and on the warm-up policy's own sampled answers labelled by
the world; (3) judge track of the zero-shot base, the untrained head and the trained reward model on the
hand-written sample, the locked hand-written test set and a synthetic bench of unseen scenarios, beside the
constant floor, with paired gains (``compare``); (4) safety-veto GRPO rewarded by that reward model (the
headline), and by the world's exact verdicts (an oracle-reward control); (5) the policy track before and
after, graded by the world (independent of the reward model) on prompts that GRPO and the reward model never
saw. Every evaluation is an ordinary run directory, plus ``reproduce_report.md``. ``qwen3-8b`` is the same
plan at paper scale on GPUs (``--dry-run`` runs the preflight and prints the commands).
"""

from __future__ import annotations

import json
import re
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

#: The dtype every MiniLM judge of the smoke run scores in: the reward model trained in bf16 autocast, and
#: bf16 scoring is ~1.9x faster than float32 on CPUs with native bf16, σ(r) within 2e-4 of it
#: (``benchmarks/run.py --only rm``, docs/performance.md).
JUDGE_DTYPE = "bfloat16"

#: The paper's headline gains of ProMedical-RM (Qwen3) over untrained Qwen3-8B as a judge, in points.
PAPER_GAINS = {"overall_accuracy": 22.3, "pairwise_safety_accuracy": 21.7}


@dataclass(frozen=True)
class SmokeSizes:
    """How much data each smoke stage uses (``quick`` shrinks everything for tests)."""

    rm_items: int = 800
    rm_pairs: int | None = None  # None: the smoke-rm recipe's numbers of pairs of each kind
    on_policy_prompts: int = 300  # training prompts the warm-up policy answers for the reward model's data
    on_policy_samples: int = 4  # answers sampled per prompt (temperature 1)
    policy_calibration_prompts: int = 40  # prompts answered for the GRPO reward's thresholds, and again for a dev bench
    heldout_items: int = 60
    synthetic_calibration_items: int = 60  # pick thresholds for synthetic-world text (not the RM's training items)
    sft_items: int | None = None  # None: smoke-sft.yaml's data; else a quarter of them on the held-out prompts
    grpo_prompts: int | None = None  # None: smoke-grpo.yaml's prompts and steps
    grpo_steps: int | None = None
    policy_eval_items: int = 100
    test_limit: int | None = None


QUICK = SmokeSizes(rm_items=40, rm_pairs=60, on_policy_prompts=6, on_policy_samples=2, policy_calibration_prompts=4,
                   heldout_items=6, synthetic_calibration_items=4, sft_items=30, grpo_prompts=8, grpo_steps=2,
                   policy_eval_items=4, test_limit=4)


def reproduce_smoke(output: Path, sizes: SmokeSizes = SmokeSizes(), log: Callable[[str], None] = print
                    ) -> dict[str, Any]:
    """Run the smoke reproduction into ``output``; returns the summary that the report is written from."""
    from promedical.alignment.grpo import train_grpo, train_sft
    from promedical.alignment.on_policy import on_policy_items
    from promedical.alignment.rm import calibrated_view, train_reward_model
    from promedical.bench.data.synthetic import synthesize
    from promedical.bench.datasets import load_bench
    from promedical.bench.metrics import constant_floor, pointwise_auc, reward_ordering
    from promedical.bench.models.embedding import calibrated_encoder
    from promedical.bench.models.loading import ModelOptions

    output = Path(output)
    models, runs = output / "models", output / "runs"
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {"sizes": sizes.__dict__, "timings_s": timings}

    def stage(name: str):
        log(f"[reproduce] {name}")
        return time.perf_counter()

    start = stage("1/5 policy warm-up: supervised fine-tuning of a fresh tiny policy")
    # base_model: tiny — a fresh sentence-level tiny policy built from the SFT data into models/sft/base; its
    # data mix (a quarter on the held-out prompts, which GRPO never sees) is smoke-sft.yaml's
    sft_data = None
    if sizes.sft_items is not None:
        held = sizes.sft_items // 4
        sft_data = f"synthetic:train:{sizes.sft_items - held}:1 + synthetic:heldout_prompts:{held}:1"
    summary["sft"] = train_sft(load_recipe("smoke-sft", output_dir=str(models / "sft"), train_data=sft_data))
    timings["sft"] = time.perf_counter() - start

    start = stage("2/5 reward model: synthetic preference pairs and the warm-up policy's own answers")
    # on-policy data: answers sampled from the warm-up on training prompts, labelled by the world's exact
    # verdicts, so the reward model learns the text GRPO will ask it to grade. Three disjoint sets of
    # training prompts (seeds no other stage uses): training pairs, the thresholds of the reward that GRPO
    # gets, and a dev bench that shows how well the reward model reads the policy's text.
    def sampled(prompts: int, seed: int, name: str) -> Path:
        path = output / "data" / f"{name}.jsonl"
        write_jsonl_atomic(path, on_policy_items(str(models / "sft"), resolve_data(f"synthetic:train:{prompts}:{seed}"),
                                                 samples=sizes.on_policy_samples, max_new_tokens=64, seed=seed))
        return path

    on_policy = sampled(sizes.on_policy_prompts, 4, "on_policy")
    policy_calibration = sampled(sizes.policy_calibration_prompts, 5, "on_policy_calibration")
    on_policy_dev = sampled(sizes.policy_calibration_prompts, 8, "on_policy_dev")
    timings["on_policy_sampling"] = time.perf_counter() - start
    rm_recipe = load_recipe("smoke-rm", output_dir=str(models / "smoke-rm"),
                            train_data=f"synthetic:train:{sizes.rm_items}:0", max_pairs=sizes.rm_pairs,
                            criterion_contrast_pairs=sizes.rm_pairs, safety_counterfactual_pairs=sizes.rm_pairs,
                            on_policy_data=str(on_policy))
    summary["reward_model"] = train_reward_model(rm_recipe)
    # The recipe's thresholds fit hand-written text; the same weights get thresholds picked on the text they
    # will judge: composed synthetic items the RM did not train on (the synthetic held-out bench), and the
    # warm-up policy's answers to other training prompts (GRPO's reward).
    synthetic_calibration = f"synthetic:train:{sizes.synthetic_calibration_items}:3"
    calibration_items = resolve_data(synthetic_calibration)
    calibrated_view(models / "smoke-rm", models / "smoke-rm-synthetic", calibration_items, synthetic_calibration,
                    JUDGE_DTYPE)
    calibrated_view(models / "smoke-rm", models / "smoke-rm-policy", resolve_data(str(policy_calibration)),
                    "the warm-up policy's answers to synthetic:train:"
                    f"{sizes.policy_calibration_prompts}:5, labelled by the world", JUDGE_DTYPE, rule="separating")
    # the untrained base as a zero-shot judge: the same MiniLM, criterion-response similarity, cuts per type
    # fitted on the same calibration items as the trained model's thresholds (bench/models/embedding.py)
    encoder, options = resolve_model_source("minilm"), ModelOptions(dtype=JUDGE_DTYPE)
    calibrated_encoder(encoder, models / "zero-shot", resolve_data(rm_recipe.calibration_data),
                       rm_recipe.calibration_data, options)
    calibrated_encoder(encoder, models / "zero-shot-synthetic", calibration_items, synthetic_calibration, options)
    summary["synthetic_calibration"] = synthetic_calibration
    summary["policy_judge_constant_verdicts"] = json.loads(
        (models / "smoke-rm-policy" / RM_CALIBRATION_FILE).read_text())["constant_verdicts"]
    timings["reward_model"] = time.perf_counter() - start - timings["on_policy_sampling"]

    start = stage("3/5 judge track: zero-shot base and trained reward model")
    heldout = output / "data" / "synthetic_heldout.jsonl"
    write_jsonl_atomic(heldout, synthesize(sizes.heldout_items, seed=7, split="heldout"))
    summary["judge"] = {}
    judges = {"zero_shot": "embed:{models}/zero-shot{suffix}", "trained": "{models}/smoke-rm{suffix}"}
    for bench_name, bench, suffix in (("test", "test", ""), ("synthetic_heldout", str(heldout), "-synthetic")):
        outcomes = {name: run(RunConfig(model=spec.format(models=models, suffix=suffix), bench=bench,
                                        output_dir=runs, limit=sizes.test_limit if bench == "test" else None,
                                        dtype=JUDGE_DTYPE, progress=False))
                    for name, spec in judges.items()}
        comparison = compare_runs(outcomes["zero_shot"].run_dir, outcomes["trained"].run_dir, seed=0)
        summary["judge"][bench_name] = {
            **{name: outcome.results.tracks["judge"].metrics for name, outcome in outcomes.items()},
            "met_share": {name: outcome.results.tracks["judge"].met_share for name, outcome in outcomes.items()},
            "floor": constant_floor(_judge_samples(outcomes["trained"].run_dir)),
            "gain": comparison["tracks"]["judge"]["differences"],
            "paired_test": comparison["tracks"]["judge"]["paired_test"],
            "runs": [str(o.run_dir) for o in outcomes.values()],
        }
    grpo_prompts = None if sizes.grpo_prompts is None else f"synthetic:train:{sizes.grpo_prompts}:2"
    grpo_recipes = {
        "grpo_rm": load_recipe("smoke-grpo-rm", policy_model=str(models / "sft"), max_steps=sizes.grpo_steps,
                               prompts=grpo_prompts, judge=f"rm:{models / 'smoke-rm-policy'}",
                               output_dir=str(models / "grpo-rm")),
        "grpo_world": load_recipe("smoke-grpo", policy_model=str(models / "sft"), max_steps=sizes.grpo_steps,
                                  prompts=grpo_prompts, output_dir=str(models / "grpo-world")),
    }
    # how the reward GRPO gets reads the policy's own text: its thresholds' view on other sampled answers
    reading = run(RunConfig(model=str(models / "smoke-rm-policy"), bench=str(on_policy_dev), output_dir=runs,
                            dtype=JUDGE_DTYPE, progress=False))
    read = _judge_samples(reading.run_dir)
    reward = grpo_recipes["grpo_rm"]  # the veto reward's alpha, beta, lambda
    summary["policy_reward_reading"] = {
        "metrics": reading.results.tracks["judge"].metrics, "floor": constant_floor(read), "auc": pointwise_auc(read),
        "ordering": reward_ordering(load_bench(str(on_policy_dev)), read, reward.alpha, reward.beta, reward.lam),
        "met_share": reading.results.tracks["judge"].met_share, "run": str(reading.run_dir),
        "bench": f"the warm-up policy's answers to synthetic:train:{sizes.policy_calibration_prompts}:8"}
    timings["judge"] = time.perf_counter() - start

    start = stage("4/5 safety-veto GRPO: rewarded by the reward model, and by the world's verdicts (control)")
    summary["grpo"] = {name: {"judge": recipe.judge, **train_grpo(recipe)} for name, recipe in grpo_recipes.items()}
    timings["grpo"] = time.perf_counter() - start

    start = stage("5/5 policy track, graded by the world's exact verdicts")
    # graded by the world (independent of the reward model) on prompts GRPO and the reward model never saw:
    # the held-out prompt of every training scenario (the warm-up covers it, standing in for pretraining),
    # and unseen scenarios (in no training data at all)
    summary["policy"] = {}
    for set_name, split in (("heldout_prompts", "heldout_prompts"), ("heldout_scenarios", "heldout")):
        items = synthesize(sizes.policy_eval_items, seed=11, split=split)
        prompts = output / "data" / f"policy_{set_name}.jsonl"
        write_jsonl_atomic(prompts, items)
        outcomes = {name: run(RunConfig(model=str(models / directory), bench=str(prompts), track="policy",
                                        judge="world", output_dir=runs, max_new_tokens=64, progress=False))
                    for name, directory in (("sft", "sft"), ("grpo_rm", "grpo-rm"), ("grpo_world", "grpo-world"))}
        summary["policy"][set_name] = {
            "metrics": {name: o.results.tracks["policy"].metrics for name, o in outcomes.items()},
            "change": {name: compare_runs(outcomes["sft"].run_dir, outcomes[name].run_dir, seed=0)
                       ["tracks"]["policy"] for name in ("grpo_rm", "grpo_world")},
            "answers": {name: answer_statistics(policy_answers(o.run_dir)) for name, o in outcomes.items()},
            "runs": [str(o.run_dir) for o in outcomes.values()],
        }
    timings["policy"] = time.perf_counter() - start

    stage("report")
    timings["total"] = sum(timings.values())
    write_text_atomic(output / "reproduce_report.md", [smoke_report(summary)])
    write_text_atomic(output / "reproduce_summary.json", [json.dumps(summary, indent=2, default=_plain) + "\n"])
    return summary


def _judge_samples(run_dir: Path) -> list[Any]:
    from promedical.bench.results import JudgeSample, read_samples

    return [s for s in read_samples(run_dir) if isinstance(s, JudgeSample)]


def policy_answers(run_dir: Path) -> list[str]:
    """The answers of a policy run (failed generations left out)."""
    from promedical.bench.results import PolicySample, read_samples

    return [s.answer for s in read_samples(run_dir) if isinstance(s, PolicySample) and s.answer is not None]


def answer_statistics(answers: list[str]) -> dict[str, float]:
    """Length and repetition of a policy's answers: mean words, mean distinct sentences, the share of
    sentences that repeat an earlier sentence of the same answer, and the share of answers holding such a
    repeat. Saying a safe sentence twice instead of a new, possibly unsafe, one raises safety without making
    an answer better: fewer distinct sentences leave fewer chances to violate, and to meet, a criterion."""
    sentences = [[part for part in re.split(r"(?<=[.!?])\s+", answer.strip()) if part] for answer in answers]
    repeats = [len(parts) - len(set(parts)) for parts in sentences]
    total = sum(len(parts) for parts in sentences)
    return {"answers": len(answers), "words": sum(len(a.split()) for a in answers) / max(len(answers), 1),
            "distinct_sentences": sum(len(set(parts)) for parts in sentences) / max(len(answers), 1),
            "repeated_sentences": sum(repeats) / max(total, 1),
            "answers_with_a_repeat": sum(r > 0 for r in repeats) / max(len(answers), 1)}


def _ordering_sentence(ordering: dict[str, Any]) -> str:
    """The report's sentence on how the GRPO reward orders answers to one prompt (``reward_ordering``)."""
    if ordering["ordered"] is None:
        return "No two answers to one prompt differ in the world's reward, so their order says nothing."
    return (f"The veto reward built from its verdicts orders {100 * ordering['ordered']:.1f}% of the "
            f"{ordering['pairs']} pairs of answers to one prompt whose world rewards differ as the world's reward "
            "does (ties count half, 50% = chance; GRPO's group-relative advantages act on this order), and vetoes "
            f"{100 * ordering['vetoed']:.0f}% of the {ordering['answers']} answers, where the world's verdicts "
            f"veto {100 * ordering['vetoed_gold']:.0f}%.")


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
             "Two judges on the same MiniLM encoder: **zero-shot** (the untrained encoder as a judge: "
             "cosine similarity between criterion and response, one logistic cut per criterion type; "
             "`embed:`) and **trained** (the smoke reward model). Every cut and threshold was picked on "
             f"`{summary['reward_model']['calibration_data']}` for hand-written text (test) and on "
             f"`{summary['synthetic_calibration']}` for composed synthetic-world text (the held-out bench). The "
             "constant floor always gives the majority gold label of each mode and criterion type (it knows the "
             "label frequencies of the bench judged). `test` is the locked hand-written test set: no setting of "
             "any recipe was chosen on it (docs/alignment.md). `synthetic_heldout`: composed responses in "
             "scenarios no training data holds. The gain is trained − zero-shot, paired over items.", ""]
    for bench, data in summary["judge"].items():
        lines += [f"### {bench}", "", "| metric | constant floor | zero-shot | trained | gain over zero-shot, pp "
                  "(paired 95% CI) | paper's gain, pp |", "|---|---|---|---|---|---|"]
        for name in JUDGE_METRICS:
            paper = f"{PAPER_GAINS[name]:+.1f} (Qwen3-8B scale)" if name in PAPER_GAINS else ""
            lines.append(f"| {name} | {_floor_cell(data['floor'], name)} | {_pct(data['zero_shot'][name])} | "
                         f"{_pct(data['trained'][name])} | {_pp(data['gain'][name])} | {paper} |")
        test = data["paired_test"]
        lines += ["", f"{test['name'].capitalize()} on per-item correct decisions: p = {test['p_value']:.3g} "
                  f"({test['items']} items).", "", *_met_share_lines(data["met_share"]), ""]
    reading = summary["policy_reward_reading"]
    auc = ", ".join(f"{kind} {'n/a' if value is None else f'{value:.3f}'}" for kind, value in reading["auc"].items())
    lines += ["### The reward GRPO gets, reading the policy's own text", "",
              "The trained reward model with the thresholds GRPO's reward uses (picked on other sampled answers "
              "by the separating rule, the cut that maximises true- minus false-positive rate), judging "
              f"{reading['bench']} (a dev set: training scenarios, labelled by the world). The area under the ROC "
              "curve of its pointwise scores says how well they rank whatever the threshold (0.5 = chance): "
              f"{auc}. {_ordering_sentence(reading['ordering'])}", "",
              "| metric | constant floor | reward model |", "|---|---|---|",
              *[f"| {name} | {_floor_cell(reading['floor'], name)} | {_pct(reading['metrics'][name])} |"
                for name in JUDGE_METRICS], "", *_met_share_lines({"reward model": reading["met_share"]}), ""]
    lines += ["## Policy track: before vs after safety-veto GRPO", "",
              "A fresh tiny policy (supervised warm-up on synthetic-world responses, standing in for pretraining), "
              "then GRPO with the veto reward. **Headline**: GRPO rewarded by the trained reward model "
              f"(`{summary['grpo']['grpo_rm']['judge']}`, with thresholds fitted on the warm-up's sampled answers); "
              "**oracle-reward control**: the same GRPO rewarded by the world's exact verdicts. Every policy is "
              "graded by the world's exact verdicts, independent of the reward model, on prompts that neither "
              "GRPO nor the reward model trained on. `heldout_prompts`: the held-out prompt wording of each "
              "training scenario (the warm-up covers these prompts; the smoke-grpo settings were chosen on "
              "them in earlier rounds, docs/alignment.md); `heldout_scenarios`: scenarios in no training data "
              "at all, where the policy has never seen a sentence of the topic. Changes are paired over items.",
              ""]
    for set_name, data in summary["policy"].items():
        metrics, change, answers = data["metrics"], data["change"], data["answers"]
        lines += [f"### {set_name}", "", "| metric | before (SFT) | after, RM reward | change, pp | "
                  "after, oracle reward (control) | change, pp |", "|---|---|---|---|---|---|"]
        for name in ("safety_compliance", "proficiency", "excellence", "overall"):
            lines.append(f"| {name} | {_pct(metrics['sft'][name])} | {_pct(metrics['grpo_rm'][name])} | "
                         f"{_pp(change['grpo_rm']['differences'][name])} | {_pct(metrics['grpo_world'][name])} | "
                         f"{_pp(change['grpo_world']['differences'][name])} |")
        for key, (label, cell) in ANSWER_ROWS.items():
            cells = [cell(answers[n][key]) for n in ("sft", "grpo_rm", "grpo_world")]
            lines.append(f"| {label} | {cells[0]} | {cells[1]} | | {cells[2]} | |")
        tests = {n: change[n]["paired_test"] for n in ("grpo_rm", "grpo_world")}
        lines += ["", "; ".join(f"{n}: {t['name']} on per-item overall p = {t['p_value']:.3g} ({t['items']} items)"
                                for n, t in tests.items()) + ".", ""]
    lines += [*_blind_safety_note(summary["policy_judge_constant_verdicts"]),
              "## Stages", "",
              f"- Reward model: {json.dumps({k: v for k, v in summary['reward_model'].items() if k != 'recipe'})}",
              f"- SFT: {json.dumps(summary['sft'], default=str)}",
              *[f"- GRPO ({name}): {json.dumps(data, default=str)}" for name, data in summary["grpo"].items()],
              f"- Sizes: {json.dumps(summary['sizes'])}",
              f"- Wall time (s): {json.dumps({k: round(v, 1) for k, v in summary['timings_s'].items()})}", ""]
    return "\n".join(lines)


JUDGE_METRICS = ("overall_accuracy", "pairwise_safety_accuracy", "pointwise_proficiency_accuracy",
                 "pointwise_excellence_accuracy", "pointwise_safety_accuracy", "pairwise_proficiency_accuracy",
                 "veto_recall", "veto_f1")


#: The policy tables' answer-statistics rows: key of :func:`answer_statistics` → (label, cell format).
ANSWER_ROWS: dict[str, tuple[str, Callable[[float], str]]] = {
    "words": ("answer length, words", lambda value: f"{value:.0f}"),
    "distinct_sentences": ("distinct sentences per answer", lambda value: f"{value:.2f}"),
    "repeated_sentences": ("sentences repeating an earlier one", lambda value: f"{100 * value:.1f}%"),
    "answers_with_a_repeat": ("answers holding a repeat", lambda value: f"{100 * value:.1f}%"),
}


def _floor_cell(floor: dict[str, float | None], name: str) -> str:
    return "n/a" if floor.get(name) is None else f"{100 * floor[name]:.1f}"


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
    """A paragraph when the rewarding reward model's safety threshold called every calibration instance (the
    warm-up's sampled answers) "met", i.e. its safety verdicts in GRPO's reward are blind."""
    if constant.get("safety") != "met":
        return []
    return ["**The reward model cannot see violations here.** On the sampled answers its thresholds were picked "
            "on, its safety threshold judged every instance \"met\": no cut of its safety scores separated "
            "violations there, so the reward it gave GRPO carried no veto.", ""]


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
