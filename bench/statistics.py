"""The one statistics module: clustered bootstrap CIs, paired differences and the item-level paired test.

Every metric we report is a ratio of sums over items — accuracy = Σ correct / Σ judged, F1 = Σ 2TP /
Σ (2TP + FP + FN), a policy mean = Σ value / Σ responses — so each is described by one numerator and one
denominator per item. Resampling items (not instances) keeps all instances of an item together, as the
criterion-level instances of one item are not independent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

N_BOOTSTRAP = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile bootstrap CI; ``n`` is the number of instances it rests on."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def bootstrap_weights(n_items: int, seed: int, n_boot: int = N_BOOTSTRAP) -> np.ndarray:
    """How often each item appears in each bootstrap replicate, shape (n_boot, n_items); seeded."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=n_boot).astype(np.float64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def ratio_estimate(numerator: np.ndarray, denominator: np.ndarray, n: int, weights: np.ndarray,
                   confidence: float = CONFIDENCE) -> Estimate:
    """Σ numerator / Σ denominator over items, with a percentile CI from the replicates in ``weights``.

    Replicates whose denominator is zero (the metric is undefined there) are left out of the CI.
    """
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    if denominator.sum() <= 0:
        return Estimate(None, None, None, n)
    value = float(numerator.sum() / denominator.sum())
    replicates = _ratio(weights @ numerator, weights @ denominator)
    low, high = percentile_interval(replicates, confidence)
    return Estimate(value, low, high, n)


def paired_difference(num_a: np.ndarray, den_a: np.ndarray, num_b: np.ndarray, den_b: np.ndarray, n: int,
                      weights: np.ndarray, confidence: float = CONFIDENCE) -> Estimate:
    """Metric(B) − Metric(A) on the same items, CI from resampling items jointly for both runs."""
    if np.sum(den_a) <= 0 or np.sum(den_b) <= 0:
        return Estimate(None, None, None, n)
    value = float(np.sum(num_b) / np.sum(den_b) - np.sum(num_a) / np.sum(den_a))
    replicates = _ratio(weights @ num_b, weights @ den_b) - _ratio(weights @ num_a, weights @ den_a)
    low, high = percentile_interval(replicates, confidence)
    return Estimate(value, low, high, n)


def percentile_interval(replicates: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """The percentile bootstrap interval of ``replicates``, ignoring undefined (non-finite) replicates."""
    replicates = np.asarray(replicates, dtype=float)
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return None, None
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def item_sign_flip_test(differences: np.ndarray, seed: int, n_resamples: int = 10000) -> dict[str, float | int]:
    """Two-sided paired permutation test of Σ dᵢ = 0, where dᵢ is item i's difference B − A.

    Under the null the two runs are exchangeable within an item, so each item's difference is as likely
    positive as negative: the null distribution flips the sign of whole items, never of single instances,
    which keeps the test valid when the instances of an item are correlated (McNemar's test on instances
    is not). Exact (all 2ⁿ sign patterns) when 2ⁿ ≤ ``n_resamples``, Monte Carlo otherwise.
    """
    from scipy.stats import permutation_test

    d = np.asarray(differences, float)
    if d.size == 0:
        return {"p_value": 1.0, "items": int(d.size)}
    result = permutation_test(
        (d,), lambda x, axis: np.sum(x, axis=axis), vectorized=True, permutation_type="samples",
        n_resamples=n_resamples, alternative="two-sided", random_state=np.random.default_rng(seed),
    )
    return {"p_value": float(min(1.0, result.pvalue)), "items": int(d.size)}
