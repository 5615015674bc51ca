"""Criteria-injected reward model (ProMedical's Explicit Criteria Injection).

The reward model scores r(x, c, y) for ONE criterion c at a time. A response pair with K labelled criteria
yields K training instances, trained with the Bradley–Terry loss −log σ(r(x,c,y_w) − r(x,c,y_l)) by TRL's
``RewardTrainer``. Inputs are the judge track's own rendering (``bench.prompts.render_pointwise``) encoded
by ``bench.models.reward.reward_input_ids``, so the trained model is judged on exactly what it learned from.
After training, the pointwise thresholds on σ(r), one per criterion type, are calibrated on the recipe's
calibration items (or a held-out dev split of the training items) and saved with the template hash in
``promedical_rm.json``, which ``run`` reads.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from promedical.alignment.config import RewardModelRecipe, resolve_data, resolve_model_source
from promedical.alignment.extras import require_training_extras
from promedical.bench.instances import labelled_instances
from promedical.bench.io import write_text_atomic
from promedical.bench.judging import PointwiseQuery
from promedical.bench.models.loading import ModelOptions, load_tokenizer
from promedical.bench.models.reward import (
    RM_CALIBRATION_FILE,
    RewardModelJudge,
    reward_input_ids,
    reward_max_length,
    warn_constant_verdicts,
)
from promedical.bench.prompts import TEMPLATE_HASH, TEMPLATE_VERSION, render_pointwise
from promedical.bench.schema import CRITERION_TYPES, BenchItem, Criterion

log = logging.getLogger(__name__)


PAIR_SOURCES = ("pairwise", "pointwise", "criterion_contrast", "safety_counterfactual", "on_policy")


@dataclass(frozen=True)
class CriterionPair:
    """One training instance: r(x, criterion, chosen) should exceed r(x, rejected_criterion or criterion,
    rejected)."""

    item: BenchItem
    criterion: Criterion
    chosen: str
    rejected: str
    source: str  # one of PAIR_SOURCES
    rejected_criterion: Criterion | None = None

    def rendered(self) -> tuple[str, str]:
        """The chosen and rejected inputs, rendered as the judge track renders them."""
        return (render_pointwise(self.item, self.criterion, self.chosen),
                render_pointwise(self.item, self.rejected_criterion or self.criterion, self.rejected))


def criterion_pairs(items: Sequence[BenchItem]) -> list[CriterionPair]:
    """Criterion-level preference pairs from bench-format labels.

    - every pairwise label with a preference (ties carry no preference and are skipped);
    - from pointwise labels, every (meets c, does not meet c) pair of responses — for a safety criterion
      the response that does not violate it is the preferred one, which is the same rule because a safety
      criterion is "met" when it is not violated.
    A pair already given by a pairwise label is not repeated from the pointwise labels.
    """
    pairs: list[CriterionPair] = []
    for item in items:
        texts = {r.id: r.text for r in item.responses}
        seen: set[tuple[str, str, str]] = set()
        met: dict[str, dict[str, bool]] = {}
        for label in labelled_instances([item]):
            if label.mode == "pointwise":
                met.setdefault(label.criterion.id, {})[label.response_ids[0]] = label.gold == "met"
            elif label.gold != "tie":
                winner, loser = label.response_ids if label.gold == "a" else label.response_ids[::-1]
                seen.add((label.criterion.id, winner, loser))
                pairs.append(CriterionPair(item, label.criterion, texts[winner], texts[loser], "pairwise"))
        criteria = {c.id: c for c in item.rubric}
        for criterion_id, verdicts in met.items():
            for winner, winner_met in verdicts.items():
                for loser, loser_met in verdicts.items():
                    if winner_met and not loser_met and (criterion_id, winner, loser) not in seen:
                        seen.add((criterion_id, winner, loser))
                        pairs.append(CriterionPair(item, criteria[criterion_id], texts[winner], texts[loser],
                                                   "pointwise"))
    return pairs


def criterion_contrast_pairs(items: Sequence[BenchItem]) -> list[CriterionPair]:
    """Pairs that contrast two criteria on the SAME response: (x, c, y) where y meets c is preferred to
    (x, c', y) where y does not meet c'.

    Response-contrast pairs (:func:`criterion_pairs`) only fix how r ranks responses within one criterion,
    so r may carry a different offset for every criterion and no single pointwise threshold fits them all.
    These pairs put every criterion on one scale — "met" above "not met" — which is what the calibrated
    pointwise threshold assumes; they also force the model to read the criterion, as the response is fixed.
    """
    pairs: list[CriterionPair] = []
    for item in items:
        if item.labels is None:
            continue
        criteria = {c.id: c for c in item.rubric}
        for response in item.responses:
            verdicts = [(criteria[label.criterion], label.met) for label in item.labels.pointwise
                        if label.response == response.id]
            pairs += [CriterionPair(item, met_c, response.text, response.text, "criterion_contrast", unmet_c)
                      for met_c, met in verdicts if met for unmet_c, unmet in verdicts if not unmet]
    return pairs


def safety_counterfactual_pairs(items: Sequence[BenchItem], rng: random.Random) -> list[CriterionPair]:
    """Minimal safety pairs from synthetic-world items (others are skipped): on a safety criterion, the
    response with its violating sentence swapped for a safe or neutral one is preferred to the violating
    response (:func:`promedical.bench.data.synthetic.safety_counterfactuals`).

    In response-contrast pairs the violating response also differs in length and in its other sentences,
    and those differences outweigh the violation: a model trained on them ranks a violating response below
    a safe one for the same safety criterion at chance (docs/alignment.md, "Measured"). These pairs leave the
    violation as the only difference."""
    from promedical.bench.data.synthetic import is_synthetic, safety_counterfactuals

    return [CriterionPair(item, criterion, safe, violating, "safety_counterfactual")
            for item in items if is_synthetic(item)
            for criterion, safe, violating in safety_counterfactuals(item, rng)]


def on_policy_pairs(items: Sequence[BenchItem], rng: random.Random) -> list[CriterionPair]:
    """Pairs from a policy's own labelled answers (``on_policy`` source): every criterion pair they give, and
    the minimal safety pair of every violating answer, so that the model learns to see a violation in the
    policy's text whatever the answer's length and other sentences."""
    return [replace(pair, source="on_policy")
            for pair in criterion_pairs(items) + safety_counterfactual_pairs(items, rng)]


def split_items(items: Sequence[BenchItem], dev_fraction: float, seed: int) -> tuple[list[BenchItem], list[BenchItem]]:
    """Train and dev items (split by item, seeded), the dev part for threshold calibration."""
    order = list(items)
    random.Random(seed).shuffle(order)
    n_dev = max(1, round(len(order) * dev_fraction)) if dev_fraction > 0 else 0
    return order[n_dev:], order[:n_dev]


def pair_dataset(pairs: Sequence[CriterionPair], tokenizer: Any, max_length: int):
    """A ``datasets.Dataset`` of pre-tokenised ``chosen_ids`` / ``rejected_ids`` for TRL's RewardTrainer."""
    from datasets import Dataset

    rendered = [p.rendered() for p in pairs]
    return Dataset.from_dict({
        "chosen_ids": [reward_input_ids(tokenizer, chosen, max_length) for chosen, _ in rendered],
        "rejected_ids": [reward_input_ids(tokenizer, rejected, max_length) for _, rejected in rendered],
    })


def calibrate_threshold(scores: Sequence[float], met: Sequence[bool]) -> tuple[float, float]:
    """The threshold on σ(r) at which a logistic fit of the labels on r crosses 1/2 (Platt scaling), and the
    pointwise accuracy it gives on these labelled decisions.

    The fit uses every score, not just the one cut that happens to sort a small calibration set best, so it
    moves less from one set of items to another (docs/alignment.md, "Measured"). When the scores do not
    rank "met" above "not met" (slope ≤ 0), no cut helps and the threshold gives the majority label.
    """
    from sklearn.linear_model import LogisticRegression

    clipped = np.clip(np.asarray(scores, dtype=float), 1e-12, 1 - 1e-12)
    rewards, labels = np.log(clipped / (1 - clipped))[:, None], np.asarray(met, dtype=bool)
    slope = intercept = 0.0
    if 0 < labels.sum() < len(labels):
        fit = LogisticRegression().fit(rewards, labels)
        slope, intercept = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    threshold = float(1 / (1 + np.exp(intercept / slope))) if slope > 0 else _majority_threshold(labels)
    return threshold, float(np.mean((clipped >= threshold) == labels))  # σ(r*) with r* = −intercept / slope


def _majority_threshold(labels: np.ndarray) -> float:
    """The threshold that gives every instance the majority label (the rules' answer when no cut helps)."""
    return 0.0 if labels.mean() >= 0.5 else 1.0 + 1e-9


def separating_threshold(scores: Sequence[float], met: Sequence[bool]) -> tuple[float, float]:
    """The threshold on σ(r) that maximises the true-positive minus the false-positive rate (Youden's J), and
    the pointwise accuracy it gives; the majority label when no cut does better than none.

    The rule for a reward's thresholds: TPR − FPR is the expected gap in a criterion's reward term between
    a completion that meets it and one that does not, which is what GRPO's group-relative advantages act
    on. Platt's accuracy-maximising cut gives one verdict to every instance where the labels are skewed and
    the scores overlap (e.g. 10% violations), and a reward that never changes teaches nothing."""
    from sklearn.metrics import roc_curve

    scores, labels = np.asarray(scores, dtype=float), np.asarray(met, dtype=bool)
    threshold = _majority_threshold(labels)
    if 0 < labels.sum() < len(labels):
        fpr, tpr, cuts = roc_curve(labels, scores)
        best = int(np.argmax(tpr - fpr))
        if tpr[best] - fpr[best] > 0:
            threshold = float(cuts[best])
    return threshold, float(np.mean((scores >= threshold) == labels))


#: How a threshold is picked from labelled scores: ``platt`` for judging (accuracy), ``separating`` for a
#: reward (the largest gap between met and unmet, :func:`separating_threshold`).
THRESHOLD_RULES = {"platt": calibrate_threshold, "separating": separating_threshold}


def calibrate_thresholds(scores: Sequence[float], met: Sequence[bool], types: Sequence[str], rule: str = "platt"
                         ) -> tuple[dict[str, float], float]:
    """One threshold per criterion type by ``rule`` (:data:`THRESHOLD_RULES`), and the pointwise accuracy they
    give together.

    Types differ in how often they are met (most safety criteria are respected) and the reward model may
    place them at different offsets, so each gets its own cut; a type absent from the calibration items
    gets the cut fitted on all of them."""
    pick = THRESHOLD_RULES[rule]
    scores, met, types = np.asarray(scores, dtype=float), np.asarray(met, dtype=bool), np.asarray(types)
    pooled, _ = pick(scores, met)
    thresholds = {kind: pick(scores[types == kind], met[types == kind])[0]
                  if (types == kind).any() else pooled for kind in CRITERION_TYPES}
    cuts = np.array([thresholds[kind] for kind in types])
    return thresholds, float(np.mean((scores >= cuts) == met))


def pointwise_queries(items: Sequence[BenchItem]) -> tuple[list[PointwiseQuery], list[bool]]:
    """The labelled pointwise decisions of ``items`` (as the judge track builds them) and their gold labels."""
    pointwise = [i for i in labelled_instances(items) if i.mode == "pointwise"]
    return [PointwiseQuery(i.item, i.criterion, *i.texts) for i in pointwise], [i.gold == "met" for i in pointwise]


def load_base_model(source: str, seed: int, layers: int | None = None):
    """A 1-label sequence-classification model (only its first ``layers`` transformer layers when given), its
    tokenizer, and the names of the parameters the checkpoint lacks (the scalar head, freshly initialised and
    seeded, when the checkpoint has none)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    torch.manual_seed(seed)
    tokenizer = load_tokenizer(source, padding_side="right")
    config = AutoConfig.from_pretrained(source, num_labels=1)
    if layers is not None:
        if layers > config.num_hidden_layers:
            raise ValueError(f"base_layers: {source} has {config.num_hidden_layers} layers, not {layers}")
        config.num_hidden_layers = layers
    model, loading = AutoModelForSequenceClassification.from_pretrained(source, config=config,
                                                                       output_loading_info=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, set(loading["missing_keys"])


def save_base_reward_model(source: str, output: str | Path, seed: int = 0) -> Path:
    """Save the untrained starting point (same backbone, fresh head) as a reward-model checkpoint, so the
    base can be judged or timed with exactly the code path of the trained model."""
    model, tokenizer, _ = load_base_model(resolve_model_source(source), seed)
    output = Path(output)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    return output


def calibrated_view(model_dir: str | Path, output: str | Path, items: Sequence[BenchItem], source: str,
                    dtype: str = "auto", rule: str = "platt") -> Path:
    """The reward model of ``model_dir`` under ``output`` (relative symlinks to its files) with its own
    thresholds picked on ``items`` by ``rule``, scored in ``dtype``: one checkpoint that judges two kinds of
    text, or serves as a judge and as a reward, needs thresholds for each (see :func:`write_calibration`)."""
    model_dir, output = Path(model_dir), Path(output)
    output.mkdir(parents=True, exist_ok=True)
    for file in model_dir.iterdir():
        if file.is_file() and file.name not in (RM_CALIBRATION_FILE, "README.md"):
            (output / file.name).symlink_to(os.path.relpath(file.resolve(), output.resolve()))
    write_calibration(output, items, source, dtype, rule)
    return output


def write_calibration(model_dir: Path, items: Sequence[BenchItem], source: str, dtype: str = "auto",
                      rule: str = "platt") -> tuple[dict[str, float], float]:
    """Pick the thresholds on σ(r) on labelled ``items`` (:func:`calibrate_thresholds` by ``rule``, one per
    criterion type), scoring them in ``dtype`` (the one the model will judge in), and save them with the
    template hash in the file ``run`` reads; returns (thresholds, pointwise accuracy there).

    Bradley–Terry pairs compare instances of one item only, so r is defined up to an offset per item, and a
    threshold is only as good as the likeness of these items to the items it will judge."""
    queries, met = pointwise_queries(items)
    judge = RewardModelJudge(str(model_dir), ModelOptions(dtype=dtype), threshold=0.5)  # scores pick the threshold
    scores, types = [v.score for v in judge.pointwise(queries)], [q.criterion.type for q in queries]
    thresholds, accuracy = (calibrate_thresholds(scores, met, types, rule) if queries
                            else (dict.fromkeys(CRITERION_TYPES, 0.5), float("nan")))
    constant = constant_verdicts(scores, types, thresholds)
    warn_constant_verdicts(str(model_dir), constant)
    write_text_atomic(model_dir / RM_CALIBRATION_FILE, [json.dumps({
        "thresholds": thresholds, "threshold_rule": rule, "constant_verdicts": constant, "template_hash": TEMPLATE_HASH,
        "template_version": TEMPLATE_VERSION, "calibration_data": source,
        "calibration_pointwise_accuracy": accuracy, "calibration_instances": len(queries),
    }, indent=2) + "\n"])
    return thresholds, accuracy


def constant_verdicts(scores: Sequence[float], types: Sequence[str], thresholds: dict[str, float]
                      ) -> dict[str, str]:
    """The criterion types whose threshold gives every one of their instances the same verdict, with that
    verdict ("met" or "not_met"): on these items the model's scores for them separate nothing. A safety
    type that is always "met" means the model cannot veto."""
    seen: dict[str, set[bool]] = {}
    for score, kind in zip(scores, types, strict=True):
        seen.setdefault(kind, set()).add(score >= thresholds[kind])
    return {kind: "met" if verdicts == {True} else "not_met" for kind, verdicts in seen.items() if len(verdicts) == 1}


def optimizer(model: Any, fresh: set[str], recipe: RewardModelRecipe):
    """AdamW (Trainer's default betas, eps and zero weight decay) in which the parameters the base checkpoint
    lacks learn at ``head_learning_rate``: a random scalar head needs far larger steps than the pretrained
    body, and a slow head wastes the start of a short CPU run on near-zero margins."""
    import torch

    head = [p for name, p in model.named_parameters() if p.requires_grad and name in fresh]
    body = [p for name, p in model.named_parameters() if p.requires_grad and name not in fresh]
    groups = [{"params": body, "lr": recipe.learning_rate}]
    if head:
        groups.append({"params": head, "lr": recipe.head_learning_rate or recipe.learning_rate})
    return torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def train_reward_model(recipe: RewardModelRecipe) -> dict[str, Any]:
    """Train, calibrate and save a criteria-injected reward model; returns the training report."""
    from transformers import TrainerCallback
    from trl import RewardTrainer

    require_training_extras()
    items = resolve_data(recipe.train_data)
    train_items, dev_items = split_items(items, recipe.dev_fraction, recipe.seed)
    args = recipe.trl_config()  # first: under a ZeRO-3 accelerate config the base model is then loaded partitioned
    model, tokenizer, fresh = load_base_model(resolve_model_source(recipe.base_model), recipe.seed,
                                              recipe.base_layers)
    max_length = min(recipe.max_length, reward_max_length(tokenizer, model.config))
    tokenizer.model_max_length = max_length  # saved with the model: judging truncates where training did
    rng = random.Random(recipe.seed)
    pairs = criterion_pairs(train_items)
    if recipe.max_pairs is not None and len(pairs) > recipe.max_pairs:
        pairs = rng.sample(pairs, recipe.max_pairs)
    if recipe.criterion_contrast_pairs:
        contrast = criterion_contrast_pairs(train_items)
        pairs += rng.sample(contrast, min(recipe.criterion_contrast_pairs, len(contrast)))
    if recipe.safety_counterfactual_pairs:
        counterfactual = safety_counterfactual_pairs(train_items, rng)
        pairs += rng.sample(counterfactual, min(recipe.safety_counterfactual_pairs, len(counterfactual)))
    if recipe.on_policy_data:
        pairs += on_policy_pairs(resolve_data(recipe.on_policy_data), rng)
    rng.shuffle(pairs)
    if not pairs:
        raise ValueError(f"{recipe.train_data}: no criterion-level preference pairs (are there labels?)")
    log.info("training on %d criterion-level pairs from %d items", len(pairs), len(train_items))
    history: list[dict[str, float]] = []

    class _Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001 - transformers' signature
            if logs:
                history.append({k: float(v) for k, v in logs.items() if isinstance(v, int | float)})

    dataset = pair_dataset(pairs, tokenizer, max_length)
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                            callbacks=[_Record()], optimizers=(optimizer(model, fresh, recipe), None))
    trainer.train()
    output = Path(recipe.output_dir)
    trainer.save_model(str(output))  # whole weights and the tokenizer, from the main process (also under ZeRO-3)

    calibration = recipe.calibration_data or f"dev split of {recipe.train_data}"
    main_process = trainer.accelerator.is_main_process
    if main_process:  # once, on the saved whole checkpoint; the other processes read what it wrote
        write_calibration(output, resolve_data(recipe.calibration_data) if recipe.calibration_data else dev_items,
                          calibration, "bfloat16" if recipe.bf16 else "auto")  # scored as it trained
    trainer.accelerator.wait_for_everyone()
    calibrated = json.loads((output / RM_CALIBRATION_FILE).read_text())
    thresholds, calibration_accuracy = calibrated["thresholds"], calibrated["calibration_pointwise_accuracy"]
    report = {
        "base_model": recipe.base_model, "train_data": recipe.train_data, "train_items": len(train_items),
        "dev_items": len(dev_items), "calibration_data": calibration, "pairs": len(pairs),
        "pairs_by_type": {t: sum(p.criterion.type == t for p in pairs) for t in CRITERION_TYPES},
        "pairs_by_source": {s: sum(p.source == s for p in pairs) for s in PAIR_SOURCES},
        "max_length": max_length, "thresholds": thresholds, "calibration_pointwise_accuracy": calibration_accuracy,
        "final_train_loss": next((h["train_loss"] for h in reversed(history) if "train_loss" in h), None),
        "output_dir": recipe.output_dir, "recipe": recipe.model_dump(),
    }
    if main_process:
        write_text_atomic(output / "README.md", [model_card(report)])
    return report


def model_card(report: dict[str, Any]) -> str:
    """A short model card: what the model is, the data, the recipe, and the calibration figures."""
    recipe = json.dumps(report["recipe"], indent=2)
    thresholds = ", ".join(f"{kind} {value:.4f}" for kind, value in report["thresholds"].items())
    held_out = f" ({report['dev_items']} more held out as a dev split)" if report["dev_items"] else ""
    return f"""# Criteria-injected reward model (promedical-bench)

Scores r(x, c, y): how well response y to conversation x meets ONE rubric criterion c (ProMedical's
Explicit Criteria Injection). Trained with TRL's RewardTrainer (Bradley–Terry loss) on criterion-level
preference pairs; inputs are promedical-bench's judge rendering `{TEMPLATE_VERSION}` (hash {TEMPLATE_HASH}).
Use it with `promedical-bench run --model PATH` (judge track) or `--judge rm:PATH` (policy track).

## Data
- Source: `{report['train_data']}` — {report['train_items']} training items{held_out}.
- {report['pairs']} criterion-level pairs: by criterion type {report['pairs_by_type']}; by source
  {report['pairs_by_source']}.

## Calibration
- Pointwise thresholds on sigmoid(r), one per criterion type: {thresholds}, chosen on
  `{report['calibration_data']}` (pointwise accuracy there: {report['calibration_pointwise_accuracy']:.4f});
  stored in `{RM_CALIBRATION_FILE}`. The Bradley–Terry loss fixes r only up to an offset per item, so the
  thresholds fit items like the calibration ones; judge other kinds of text with pairwise decisions or
  recalibrate.
- Final training loss: {report['final_train_loss']}.

## Recipe
```json
{recipe}
```

## Limitations
Trained on the data above only. A model trained on the synthetic clinical world learns that world's
sentence-level conventions; measure it on real, physician-labelled data before trusting it as a judge.
"""
