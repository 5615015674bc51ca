"""The safety-veto reward for TRL's ``GRPOTrainer``: one callable, so the veto survives group normalisation.

For each completion, every criterion of its own rubric (a dataset column) is judged — by a trained
criteria-injected reward model or by any judge of ``run`` (``rm:``, ``hf:``, ``openai:``, ``world``) — in one batch;
the decisions give S1/S2/S3 through ``bench.scoring.decision_scores`` and the reward is
``hierarchical_reward`` = clip(w·S1 + α·S2, 0, 1+β) − λ·S3, with w = 1 unless a per-scenario weight is set.

Why one callable: TRL turns one callable's rewards into advantages by an increasing affine map within each
group (under either ``multi_objective_aggregation`` and every ``scale_rewards``), so with λ ≥ 1+β no
completion with a violation gets a higher advantage than a safe one in its group. Split into separately
weighted callables, this holds only in a special case: TRL's default ``sum_then_normalize`` sums the
weighted callables first, so clip(...) and −S3 with weight λ give the same advantages as one callable; but
S1, S2 and S3 as three callables lose the clip, and ``normalize_then_sum`` standardises each callable
separately, and either lets a brilliant unsafe completion beat a weak safe one (tests/test_reward.py).

Per-scenario weights (e.g. ``{"emergency": 1.0, "chronic": 0.8}``) scale the proficiency term only; they
lie in (0, 1+β], so the first term still stays within [0, 1+β] and the veto is untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from promedical.bench.judging import Judge, PointwiseQuery
from promedical.bench.schema import BenchItem, Criterion
from promedical.bench.scoring import (
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    DEFAULT_LAMBDA,
    check_reward_params,
    decision_scores,
    hierarchical_reward,
)


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or a conversational list of messages."""
    if isinstance(completion, str):
        return completion
    return "".join(message.get("content", "") for message in completion if message.get("role") == "assistant")


class VetoReward:
    """``reward_funcs=[VetoReward(judge)]`` for GRPOTrainer. Dataset columns used: ``rubric`` (list of
    criterion dicts), and optionally ``scenario``, ``item_id``, ``category``, ``specialty``, ``source`` (which
    lets the ``world`` judge find a synthetic item's scenario)."""

    __name__ = "promedical_veto_reward"

    def __init__(self, judge: Judge, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
                 lam: float = DEFAULT_LAMBDA, scenario_weights: Mapping[str, float] | None = None):
        check_reward_params(alpha, beta, lam)
        for scenario, weight in (scenario_weights or {}).items():
            if not 0.0 < weight <= 1.0 + beta:
                raise ValueError(f"scenario weight for {scenario!r} must be in (0, 1 + beta], got {weight}")
        self.judge, self.alpha, self.beta, self.lam = judge, alpha, beta, lam
        self.scenario_weights = dict(scenario_weights or {})

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], rubric: Sequence[Sequence[dict]],
                 scenario: Sequence[str | None] | None = None, log_metric: Callable[[str, float], None] | None = None,
                 **columns: Any) -> list[float | None]:
        items = [_item(prompt, criteria, index, scenario[index] if scenario else None, columns)
                 for index, (prompt, criteria) in enumerate(zip(prompts, rubric, strict=True))]
        texts = [completion_text(c) for c in completions]
        queries = [PointwiseQuery(item, criterion, text) for item, text in zip(items, texts, strict=True)
                   for criterion in item.rubric]
        verdicts = iter(self.judge.pointwise(queries))
        rewards: list[float | None] = []
        scores: list[tuple[float, float, float]] = []
        for item in items:
            item_scores = decision_scores(item, {criterion.id: next(verdicts).decision for criterion in item.rubric})
            if item_scores is None:  # cannot be graded: TRL treats None as "not applicable"
                rewards.append(None)
                continue
            s1, s2, s3 = item_scores
            weight = self.scenario_weights.get(item.scenario or "", 1.0)
            rewards.append(hierarchical_reward(weight * s1, s2, s3, self.alpha, self.beta, self.lam))
            scores.append((s1, s2, s3))
        if log_metric is not None and scores:
            n = len(scores)
            log_metric("veto/s1_mean", sum(s[0] for s in scores) / n)
            log_metric("veto/s2_mean", sum(s[1] for s in scores) / n)
            log_metric("veto/s3_mean", sum(s[2] for s in scores) / n)
            log_metric("veto/violation_rate", sum(s[2] > 0 for s in scores) / n)
            log_metric("veto/ungraded_rate", (len(items) - n) / len(items))
        return rewards


def _item(prompt: Any, criteria: Sequence[dict], index: int, scenario: str | None,
          columns: dict[str, Any]) -> BenchItem:
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    def column(name: str, default: str) -> str:
        values = columns.get(name)
        return str(values[index]) if values is not None and values[index] is not None else default

    return BenchItem(id=column("item_id", f"completion-{index}"), category=column("category", "unspecified"),
                     specialty=column("specialty", "unspecified"), scenario=scenario, messages=messages,
                     source=column("source", "") or None,
                     rubric=[Criterion.model_validate(c) for c in criteria])
