"""The safety-veto reward: GRPO group normalisation keeps every safe completion above every unsafe one."""

import random

import numpy as np
import pytest

from promedical.alignment.reward import VetoReward, completion_text
from promedical.bench.datasets import load_bench
from promedical.bench.judges import RewardModelJudge
from promedical.bench.scoring import hierarchical_reward


def grpo_advantages(rewards: np.ndarray) -> np.ndarray:
    """TRL's group normalisation (scale_rewards="group"): (r - mean) / (std + 1e-4) within a group."""
    return (rewards - rewards.mean()) / (rewards.std(ddof=1) + 1e-4)


@pytest.mark.parametrize("alpha, beta, lam", [(0.1, 0.2, 1.5), (0.5, 0.3, 1.31), (0.9, 1.0, 2.5)])
def test_every_safe_completion_beats_every_unsafe_one_after_normalisation(alpha, beta, lam):
    rng = random.Random(0)
    for _ in range(2000):
        size = rng.choice([2, 4, 8, 16])
        group = [(rng.random(), rng.randint(0, 6), rng.choice([0, 0, 0, 1, 2])) for _ in range(size)]
        if len({s3 == 0 for _, _, s3 in group}) < 2:
            continue
        advantages = grpo_advantages(np.array([hierarchical_reward(*g, alpha, beta, lam) for g in group]))
        safe = [a for a, g in zip(advantages, group, strict=True) if g[2] == 0]
        unsafe = [a for a, g in zip(advantages, group, strict=True) if g[2] > 0]
        assert min(safe) > max(unsafe)


def test_veto_would_not_survive_separate_weighted_rewards():
    """Why the veto lives in one callable: summed separate rewards let a brilliant unsafe answer win."""
    safe_weak, unsafe_brilliant = (0.1, 0, 0), (1.0, 6, 1)
    summed = [s1 + 0.1 * s2 - 0.5 * s3 for s1, s2, s3 in (safe_weak, unsafe_brilliant)]
    assert summed[1] > summed[0]
    assert hierarchical_reward(*unsafe_brilliant) < hierarchical_reward(*safe_weak)


@pytest.mark.parametrize("kwargs", [dict(alpha=1.0), dict(beta=0.0), dict(lam=1.1), dict(scenario_weights={"x": 2.0})])
def test_invalid_parameters_are_refused(tiny_models, kwargs):
    with pytest.raises(ValueError):
        VetoReward(RewardModelJudge(str(tiny_models["reward"])), **kwargs)


def test_reward_callable_scores_completions_with_a_real_reward_model(tiny_models):
    judge = RewardModelJudge(str(tiny_models["reward"]))
    items = load_bench("sample")[:3]
    reward = VetoReward(judge, scenario_weights={"emergency": 0.8})
    logged: dict[str, float] = {}
    prompts = [[m.model_dump() for m in item.messages] for item in items for _ in range(2)]
    completions = [[{"role": "assistant", "content": r.text}] for item in items for r in item.responses[:2]]
    rubric = [[c.model_dump() for c in item.rubric] for item in items for _ in range(2)]
    scenario = [item.scenario for item in items for _ in range(2)]
    rewards = reward(prompts, completions, rubric=rubric, scenario=scenario, log_metric=logged.__setitem__,
                     item_id=[item.id for item in items for _ in range(2)], trainer_state=None)
    assert len(rewards) == 6 and all(isinstance(r, float) for r in rewards)
    assert {"veto/s1_mean", "veto/s3_mean", "veto/violation_rate"} <= set(logged)
    # The same decisions through the judge directly give the same reward.
    from promedical.bench.judges import PointwiseQuery
    from promedical.bench.scoring import s_scores

    item, text = items[0], items[0].responses[1].text
    decisions = {c.id: v.decision == "met" for c, v in
                 zip(item.rubric, judge.pointwise([PointwiseQuery(item, c, text) for c in item.rubric]), strict=True)}
    weight = 0.8 if item.scenario == "emergency" else 1.0
    s1, s2, s3 = s_scores(item, decisions)
    assert rewards[1] == pytest.approx(hierarchical_reward(weight * s1, s2, s3))
    assert reward.__name__ == "promedical_veto_reward"  # TRL names the reward by the instance's __name__


def test_world_judge_reward_reads_the_prompt_columns_grpo_gets():
    """The GRPO dataset's columns carry what the exact ``world`` judge needs (the item's source), so with it
    the reward is the hierarchical reward of the true labels; items it cannot grade get None."""
    from promedical.alignment.grpo import prompt_dataset
    from promedical.bench.data.synthetic import synthesize
    from promedical.bench.judges import build_judge
    from promedical.bench.scoring import s_scores

    items = synthesize(12, seed=2) + load_bench("sample")[:1]
    rows = [(item, row, response) for item, row in zip(items, prompt_dataset(items), strict=True)
            for response in item.responses]
    columns = {name: [row[name] for _, row, _ in rows] for name in ("rubric", "scenario", "item_id", "source")}
    rewards = VetoReward(build_judge("world"))([row["prompt"] for _, row, _ in rows],
                                               [response.text for _, _, response in rows], **columns)
    expected = []
    for item, _, response in rows:
        if item.labels is None or item.source is None:
            expected.append(None)
            continue
        met = {label.criterion: label.met for label in item.labels.pointwise if label.response == response.id}
        expected.append(hierarchical_reward(*s_scores(item, met)))
    assert rewards == pytest.approx(expected) and expected[-1] is None and any(r < 0 for r in expected[:-1])


def test_completion_text():
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]) == "ab"
