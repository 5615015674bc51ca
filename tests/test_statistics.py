"""The statistics module against reference values and reference implementations."""

import dataclasses

import numpy as np
import pytest
from scipy import stats

from promedical.bench.statistics import (
    Estimate,
    bootstrap_weights,
    item_sign_flip_test,
    paired_difference,
    percentile_interval,
    ratio_estimate,
)


def test_one_instance_per_item_matches_scipy_percentile_bootstrap():
    rng = np.random.default_rng(1)
    correct = (rng.random(400) < 0.7).astype(float)
    ours = ratio_estimate(correct, np.ones_like(correct), 400, bootstrap_weights(400, seed=3, n_boot=5000))
    reference = stats.bootstrap((correct,), np.mean, n_resamples=5000, method="percentile",
                                random_state=np.random.default_rng(3)).confidence_interval
    assert ours.value == pytest.approx(correct.mean())
    assert ours.ci_low == pytest.approx(reference.low, abs=0.01)
    assert ours.ci_high == pytest.approx(reference.high, abs=0.01)


def test_same_seed_same_interval_and_clustering_widens_it():
    # 50 items with 10 perfectly correlated instances each: the effective sample is 50, not 500.
    item_correct = (np.random.default_rng(0).random(50) < 0.6).astype(float)
    numerator, denominator = item_correct * 10, np.full(50, 10.0)
    clustered = ratio_estimate(numerator, denominator, 500, bootstrap_weights(50, seed=9))
    assert clustered == ratio_estimate(numerator, denominator, 500, bootstrap_weights(50, seed=9))
    flat = np.repeat(item_correct, 10)
    naive = ratio_estimate(flat, np.ones(500), 500, bootstrap_weights(500, seed=9))
    assert (clustered.ci_high - clustered.ci_low) > 2.5 * (naive.ci_high - naive.ci_low)


def test_undefined_metric_has_no_value():
    estimate = ratio_estimate(np.zeros(5), np.zeros(5), 0, bootstrap_weights(5, seed=0))
    assert (estimate.value, estimate.ci_low, estimate.ci_high) == (None, None, None)


def test_paired_difference_of_a_run_with_itself_is_exactly_zero():
    numerator, denominator = np.array([3.0, 1, 4, 1, 5]), np.full(5, 6.0)
    diff = paired_difference(numerator, denominator, numerator, denominator, 30, bootstrap_weights(5, seed=0))
    assert (diff.value, diff.ci_low, diff.ci_high) == (0.0, 0.0, 0.0)


def test_item_sign_flip_test_exact_reference():
    # Six items, every difference positive: of the 2**6 sign patterns only "all +" and "all −" reach |Σd| = 21,
    # so the exact two-sided p = 2 / 64.
    assert item_sign_flip_test(np.array([1.0, 2, 3, 4, 5, 6]), seed=0) == {"p_value": 2 / 64, "items": 6}


def test_item_sign_flip_test_counts_ties_in_the_null_distribution():
    # d = (1, 1, −1, 3), Σd = 4. A sign pattern gives ±3 + x with x = ±1 ±1 ±1 ∈ {−3, −1, 1, 3} (1, 3, 3, 1
    # patterns); |±3 + x| ≥ 4 needs x ≥ 1 on the side of the 3: 4 of 8 patterns for each sign, so p = 8/16.
    assert item_sign_flip_test(np.array([1.0, 1, -1, 3]), seed=0)["p_value"] == pytest.approx(8 / 16)


def test_item_sign_flip_test_is_clustered_not_per_instance():
    # 40 items with 10 instances each; B is better on 3 items by all 10 instances and worse on 1 by 10. An
    # instance-level test sees 30 vs 10 discordant instances (p ≈ 0.002); the items say 3 vs 1 (p = 0.625).
    differences = np.zeros(40)
    differences[:3], differences[3] = 10.0, -10.0
    # Only the 4 nonzero items move Σd = 10·(s₁+s₂+s₃−s₄), which is 0 exactly when two of those four signs
    # are +: 6 of 16 patterns, so |Σd| ≥ 20 in the other 10 and p = 10/16 (Monte Carlo here: 2**40 patterns).
    assert item_sign_flip_test(differences, seed=0)["p_value"] == pytest.approx(10 / 16, abs=0.02)
    instance_level = stats.binomtest(10, 40).pvalue
    assert instance_level < 0.01


def test_item_sign_flip_test_monte_carlo_matches_the_normal_approximation():
    # 200 items: the sign-flip null of Σd has variance Σd², so p ≈ 2·(1 − Φ(|Σd| / √Σd²)).
    d = np.random.default_rng(4).normal(0.15, 1.0, 200)
    expected = 2 * stats.norm.sf(abs(d.sum()) / np.sqrt(np.sum(d ** 2)))
    assert item_sign_flip_test(d, seed=1)["p_value"] == pytest.approx(expected, abs=0.01)


def test_percentile_interval_reads_the_2_5th_and_97_5th_percentiles_of_the_defined_replicates():
    # 1,001 evenly spaced replicates: numpy's linear percentile at 2.5% is element 25, at 97.5% element 975.
    replicates = np.arange(1001) / 1000
    assert percentile_interval(replicates) == pytest.approx((0.025, 0.975))
    assert percentile_interval(np.concatenate([replicates, [np.nan, np.inf]])) == pytest.approx((0.025, 0.975))
    assert percentile_interval(np.array([0.5, np.nan])) == (0.5, 0.5)  # one defined replicate
    assert percentile_interval(np.array([np.nan, np.nan])) == (None, None)


def test_replicates_without_a_denominator_are_left_out_of_the_interval():
    # Item 0: one wrong instance (0/1); item 1: one right (1/1); item 2: nothing judged (0/0). Four fixed
    # replicates: {2, 2, 2} → 0/0 undefined; {0, 1, 2} → 1/2; {1, 1, 2} → 2/2; {0, 0, 2} → 0/2. The CI is read
    # from the defined [0, 0.5, 1] only: 2.5th percentile at position 0.05 → 0.025, 97.5th at 1.95 → 0.975.
    weights = np.array([[0.0, 0.0, 3.0], [1.0, 1.0, 1.0], [0.0, 2.0, 1.0], [2.0, 0.0, 1.0]])
    estimate = ratio_estimate(np.array([0.0, 1.0, 0.0]), np.array([1.0, 1.0, 0.0]), 2, weights)
    assert (estimate.value, estimate.ci_low, estimate.ci_high) == pytest.approx((0.5, 0.025, 0.975))


def test_paired_difference_is_undefined_when_either_run_judged_nothing():
    one, none, weights = np.array([1.0]), np.array([0.0]), np.array([[1.0]])
    assert paired_difference(one, none, one, one, 1, weights).value is None
    assert paired_difference(one, one, one, none, 1, weights).value is None
    # one instance each (denominators of exactly 1): A right, B wrong → −1
    difference = paired_difference(one, one, none, one, 1, weights)
    assert (difference.value, difference.ci_low, difference.ci_high) == (-1.0, -1.0, -1.0)


def test_estimates_are_immutable_and_the_bootstrap_has_2000_replicates():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Estimate(0.5, 0.4, 0.6, 10).value = 0.7  # type: ignore[misc]
    weights = bootstrap_weights(7, seed=0)
    assert weights.shape == (2000, 7) and (weights.sum(axis=1) == 7).all()


def test_item_sign_flip_test_edge_cases():
    assert item_sign_flip_test(np.array([]), seed=0) == {"p_value": 1.0, "items": 0}
    # 20 items all +1: 2²⁰ patterns > 10,000, so Monte Carlo with 10,000 resamples. Only the all-plus pattern
    # (probability 2⁻²⁰) reaches the observed sum, so none of the resamples does, and scipy's two-sided
    # p = 2·(0 + 1)/(10,000 + 1).
    assert item_sign_flip_test(np.ones(20), seed=0)["p_value"] == pytest.approx(2 / 10001)


def test_pointwise_auc_per_type_counts_ranked_pairs():
    from promedical.bench.metrics import pointwise_auc
    from promedical.bench.results import JudgeSample

    def sample(kind: str, gold: str, score: float | None, mode: str = "pointwise") -> JudgeSample:
        return JudgeSample(mode=mode, item_id="i", category="c", specialty="s", prompt="p", criterion_id="k",
                           criterion_type=kind, criterion="x", response_ids=["r"], responses=["t"], gold=gold,
                           decision="met", score=score, raw={}, correct=True)

    # safety: met 0.9, 0.4; not met 0.5, 0.1 → of the 4 (met, not met) pairs, 3 ranked right: AUC 0.75
    samples = [sample("safety", "met", 0.9), sample("safety", "met", 0.4), sample("safety", "not_met", 0.5),
               sample("safety", "not_met", 0.1), sample("safety", "a", 0.0, mode="pairwise"),
               sample("proficiency", "met", 0.2), sample("proficiency", "met", None),
               sample("excellence", "met", 0.3), sample("excellence", "not_met", 0.3)]
    assert pointwise_auc(samples) == {"safety": 0.75, "proficiency": None, "excellence": 0.5}


def test_reward_ordering_counts_within_item_pairs_worked_out_by_hand():
    from promedical.bench.metrics import reward_ordering
    from promedical.bench.results import JudgeSample
    from promedical.bench.schema import BenchItem

    item = BenchItem(id="i", category="c", specialty="s", messages=[{"role": "user", "content": "q"}],
                     rubric=[{"id": "p", "type": "proficiency", "text": "x", "weight": 1.0},
                             {"id": "v", "type": "safety", "text": "y"}])

    def sample(response: str, criterion: str, gold: str, decision: str) -> JudgeSample:
        return JudgeSample(mode="pointwise", item_id="i", category="c", specialty="s", prompt="q",
                           criterion_id=criterion, criterion_type="proficiency" if criterion == "p" else "safety",
                           criterion="x", response_ids=[response], responses=["t"], gold=gold, decision=decision,
                           score=None, raw={}, correct=gold == decision)

    # reward clip(S1 + 0.1·S2, 0, 1.2) − 1.5·S3 (no excellence criteria, so S2 = 0)
    # gold:  r1 met/safe 1.0, r2 unmet/safe 0.0, r3 met/unsafe −0.5 → 3 pairs with different rewards
    # judge: r1 met/safe 1.0, r2 met/unsafe −0.5, r3 met/safe 1.0
    # (r1, r2) same order: 1; (r1, r3) judge tie: 0.5; (r2, r3) reversed: 0 → 1.5 / 3
    # r4 has no safety decision, so it does not count
    samples = [sample("r1", "p", "met", "met"), sample("r1", "v", "met", "met"),
               sample("r2", "p", "not_met", "met"), sample("r2", "v", "met", "not_met"),
               sample("r3", "p", "met", "met"), sample("r3", "v", "not_met", "met"),
               sample("r4", "p", "met", "met")]
    assert reward_ordering([item], samples, alpha=0.1, beta=0.2, lam=1.5) == {
        "pairs": 3, "ordered": 0.5, "answers": 3, "vetoed": 1 / 3, "vetoed_gold": 1 / 3}
    assert reward_ordering([item], samples[:2], alpha=0.1, beta=0.2, lam=1.5)["ordered"] is None
