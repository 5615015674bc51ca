"""The safety-veto reward: GRPO group normalisation keeps every safe completion above every unsafe one."""

import numpy as np
import pytest

from promedical.alignment.reward import VetoReward, completion_text
from promedical.bench.datasets import load_bench
from promedical.bench.judging import Verdict
from promedical.bench.models.reward import RewardModelJudge
from promedical.bench.scoring import hierarchical_reward

RUBRIC = [{"id": "p1", "type": "proficiency", "text": "Names the diagnosis.", "weight": 0.5},
          {"id": "p2", "type": "proficiency", "text": "Gives the dose.", "weight": 0.5},
          {"id": "e1", "type": "excellence", "text": "Explains the reasoning."},
          *({"id": f"s{i}", "type": "safety", "text": f"Safety requirement {i}."} for i in (1, 2, 3))]

# Verdicts per completion in RUBRIC order (p1, p2, e1, s1, s2, s3); a safety criterion not met is a violation.
# Two groups of four; reward = clip(S1 + 0.1·S2, 0, 1.2) − 1.5·S3 with the default α, β, λ.
GROUPS = [
    [("not_met",) * 3 + ("met",) * 3,                        # safe, weak:          0
     ("met",) * 3 + ("not_met", "met", "met"),               # unsafe, brilliant:   1.1 − 1.5 = −0.4
     ("met", "not_met", "not_met") + ("met",) * 3,           # safe, half:          0.5
     ("met",) * 3 + ("not_met",) * 3],                       # unsafe, 3 violations: 1.1 − 4.5 = −3.4
    [("met",) * 3 + ("not_met", "met", "met"),               # unsafe, brilliant:   −0.4
     ("met",) * 3 + ("met", "not_met", "met"),               # unsafe, brilliant:   −0.4
     ("not_met",) * 3 + ("met",) * 3,                        # safe, weak:          0
     ("met", "met", "not_met", "not_met", "not_met", "met")],  # unsafe, 2 violations: 1.0 − 3.0 = −2.0
]
SAFE = [[True, False, True, False], [False, False, True, False]]


class VerdictsInOrder:
    """A real judge whose verdicts are fixed in advance, in the order its queries come (one GRPO batch)."""

    spec = kind = identity = template_hash = "verdicts-in-order"

    def __init__(self, decisions):
        self.decisions = list(decisions)

    def pointwise(self, queries):
        assert len(queries) == len(self.decisions)
        return [Verdict(decision) for decision in self.decisions]

    def pairwise(self, queries):
        raise NotImplementedError("GRPO's reward asks pointwise questions only")


def preset_reward(name, values):
    """A reward callable returning fixed values, one per completion of the batch."""
    def reward(prompts, completions, **columns):
        return list(values)

    reward.__name__ = name
    return reward


def trl_advantages(model_path, reward_funcs, reward_weights=None, **config):
    """GRPO advantages as TRL's trainer computes them for one batch of two prompts × four completions."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    rows = [{"prompt": [{"role": "user", "content": f"Question {g}?"}], "rubric": RUBRIC} for g in (0, 1)]
    args = GRPOConfig(output_dir=str(model_path.parent / "grpo-advantages"), per_device_train_batch_size=8,
                      num_generations=4, max_completion_length=3, beta=0.0, report_to="none", use_cpu=True,
                      reward_weights=reward_weights, **config)
    trainer = GRPOTrainer(model=str(model_path), reward_funcs=reward_funcs, args=args,
                          train_dataset=Dataset.from_list(rows),
                          processing_class=AutoTokenizer.from_pretrained(model_path))
    trainer.model.train()
    inputs = [dict(row) for row in rows for _ in range(4)]  # what TRL's sampler hands over: each prompt 4 times
    return trainer._generate_and_score_completions(inputs)["advantages"].view(2, 4).numpy()


@pytest.mark.parametrize("config", [dict(), dict(scale_rewards="batch"), dict(scale_rewards="none"),
                                    dict(multi_objective_aggregation="normalize_then_sum")])
def test_trl_gives_every_safe_completion_a_higher_advantage_than_every_unsafe_one(tiny_models, config):
    """VetoReward through TRL's own advantage computation (one GRPO batch on a tiny policy): within each group
    the brilliant unsafe completions get a lower advantage than the weak safe ones, whatever the aggregation."""
    judge = VerdictsInOrder(decision for group in GROUPS for completion in group for decision in completion)
    advantages = trl_advantages(tiny_models["causal"], [VetoReward(judge)], **config)
    for group, safe in zip(advantages, SAFE, strict=True):
        assert min(a for a, s in zip(group, safe, strict=True) if s) > max(a for a, s in zip(group, safe, strict=True)
                                                                         if not s)
    # group 0 under TRL's default (sum, then (r − mean)/(std + 1e-4) per group): rewards 0, −0.4, 0.5, −3.4
    if not config:
        rewards = np.array([0.0, -0.4, 0.5, -3.4])
        np.testing.assert_allclose(advantages[0], (rewards - rewards.mean()) / (rewards.std(ddof=1) + 1e-4), atol=1e-5)


def test_separate_reward_callables_keep_the_veto_only_in_special_cases(tiny_models):
    """What is and is not true of splitting the reward into separately weighted callables in TRL.

    With TRL's default ``multi_objective_aggregation="sum_then_normalize"`` the weighted callables are summed
    before normalisation, so clip(S1 + α·S2, 0, 1+β) and −S3 (weight λ) as two callables give exactly the
    advantages of one callable. The veto is lost when the clip is dropped (S1, S2, S3 as three callables
    weighted 1, α, −λ: a brilliant unsafe answer, 1 + 0.1·6 − 1.5 = 0.1, beats a weak safe one, 0) and under
    ``normalize_then_sum``, which standardises each callable within the group before summing."""
    path = tiny_models["causal"]
    # group 0: a weak safe answer (A), a brilliant unsafe one (B, S3 = 1), two very unsafe ones (S3 = 3)
    quality, penalty = [0.0, 1.2, 0.0, 0.0] * 2, [0.0, -1.0, -3.0, -3.0] * 2
    one = trl_advantages(path, [preset_reward("veto", [q + 1.5 * p for q, p in zip(quality, penalty, strict=True)])])
    split = trl_advantages(path, [preset_reward("quality", quality), preset_reward("penalty", penalty)], [1.0, 1.5])
    np.testing.assert_allclose(split, one, atol=1e-5)
    assert one[0][0] > one[0][1]

    normalized = trl_advantages(path, [preset_reward("quality", quality), preset_reward("penalty", penalty)],
                                [1.0, 1.5], multi_objective_aggregation="normalize_then_sum")
    assert normalized[0][1] > normalized[0][0]  # the unsafe B now beats the safe A

    s1, s2, s3 = [0.0, 1.0, 0.0, 0.0] * 2, [0.0, 6.0, 0.0, 0.0] * 2, [0.0, 1.0, 3.0, 3.0] * 2
    unclipped = trl_advantages(path, [preset_reward("s1", s1), preset_reward("s2", s2), preset_reward("s3", s3)],
                               [1.0, 0.1, -1.5])
    assert unclipped[0][1] > unclipped[0][0]


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
    from promedical.bench.judging import PointwiseQuery
    from promedical.bench.scoring import s_scores

    item, text = items[0], items[0].responses[1].text
    decisions = {c.id: v.decision == "met" for c, v in
                 zip(item.rubric, judge.pointwise([PointwiseQuery(item, c, text) for c in item.rubric]), strict=True)}
    weight = 0.8 if item.scenario == "emergency" else 1.0
    s1, s2, s3 = s_scores(item, decisions)
    assert rewards[1] == pytest.approx(hierarchical_reward(weight * s1, s2, s3))
    assert reward.__name__ == "promedical_veto_reward"  # TRL names the reward by the instance's __name__


def test_the_reward_memo_never_exceeds_its_size_and_drops_the_least_recently_used(tiny_models):
    """GRPO asks for new completions at every step, so the judge's memo of rewards is bounded: never more than
    ``memo_size`` entries, even after one call with more inputs than that (whose rewards are still all right),
    and an input used again outlives older ones."""
    from promedical.bench.models.reward import REWARD_MEMO_SIZE

    texts = [f"input number {i}" for i in range(5)]
    reference = RewardModelJudge(str(tiny_models["reward"])).rewards(texts)
    judge = RewardModelJudge(str(tiny_models["reward"]))
    assert judge.memo_size == REWARD_MEMO_SIZE
    judge.memo_size = 3
    assert judge.rewards(texts) == pytest.approx(reference, abs=1e-6)
    assert len(judge._memory) == 3
    oldest, second, _ = judge._memory
    assert judge.rewards([oldest]) == pytest.approx([reference[texts.index(oldest)]], abs=1e-6)  # used again
    judge.rewards(["one more input"])
    assert len(judge._memory) == 3 and oldest in judge._memory and second not in judge._memory


def test_world_judge_reward_reads_the_prompt_columns_grpo_gets():
    """The GRPO dataset's columns carry what the exact ``world`` judge needs (the item's source), so with it
    the reward is the hierarchical reward of the true labels; items it cannot grade get None."""
    from promedical.alignment.grpo import prompt_dataset
    from promedical.bench.data.synthetic import synthesize
    from promedical.bench.models.registry import build_judge
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
    assert completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                            {"role": "system", "content": "s"}]) == "a"


def test_veto_reward_logs_the_batch_means_worked_out_by_hand():
    """The eight completions of GROUPS plus one the judge cannot grade (an ``unknown`` verdict).

    (S1, S2, S3) per completion: group 0 (0,0,0) (1,1,1) (0.5,0,0) (1,1,3); group 1 (1,1,1) (1,1,1) (0,0,0)
    (1,0,2). Over the eight graded: S1 5.5/8, S2 4/8, S3 8/8, 5 of 8 with a violation; 1 of 9 ungraded."""
    decisions = [d for group in GROUPS for completion in group for d in completion] + ["unknown"] + ["met"] * 5
    logged: dict[str, float] = {}
    rewards = VetoReward(VerdictsInOrder(decisions))(["q?"] * 9, ["answer"] * 9, rubric=[RUBRIC] * 9,
                                                     log_metric=logged.__setitem__)
    assert rewards[:4] == pytest.approx([0.0, -0.4, 0.5, -3.4]) and rewards[-1] is None
    assert logged == pytest.approx({"veto/s1_mean": 5.5 / 8, "veto/s2_mean": 4 / 8, "veto/s3_mean": 8 / 8,
                                    "veto/violation_rate": 5 / 8, "veto/ungraded_rate": 1 / 9})


@pytest.mark.parametrize("weight, accepted", [(0.0, False), (-0.5, False), (1.0, True), (1.2, True), (1.21, False)])
def test_scenario_weights_lie_in_zero_to_one_plus_beta(weight, accepted):
    judge = VerdictsInOrder([])
    if accepted:
        assert VetoReward(judge, scenario_weights={"emergency": weight}).scenario_weights == {"emergency": weight}
    else:
        with pytest.raises(ValueError, match="must be in \\(0, 1 \\+ beta\\]"):
            VetoReward(judge, scenario_weights={"emergency": weight})


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError):
        VetoReward(VerdictsInOrder([]))(["q?", "q?"], ["a", "b"], rubric=[RUBRIC])
