"""Inter-rater agreement statistics, each with a seeded bootstrap CI over units.

Every array-taking function here takes ``ratings`` shaped **(units, raters)**: one row per rated unit, one
column per rater, ``NaN`` where that rater did not rate that unit. (The ``krippendorff`` package wants the
transpose, raters × units; this module transposes for it.) Values are numbers: category codes for nominal
data, ranks for ordinal data, measurements for interval and ratio data. Map labels to codes first
(:func:`code_labels` does it for the labels this toolkit writes).

Point estimates come from the well-kept libraries where one exists — Krippendorff's α from ``krippendorff``,
Cohen's κ from scikit-learn, Fleiss' κ from statsmodels — and are implemented here only where none does:
Gwet's AC1 (``irrCAC`` is not a dependency: its wheel downgrades numpy), the Shrout & Fleiss ICC forms
(from the ANOVA mean squares) and percent agreement. CIs are 95% percentile bootstraps that resample
**units** (rows) with the seeded multinomial weights of :mod:`promedical.bench.statistics`; the bootstrap
replicates are computed from per-unit sufficient statistics (vectorised), which the tests check to equal
the library values on the full sample.

Which units a statistic uses (and so its ``n_units``):

- percent agreement, Krippendorff's α, Light's κ: units with at least two ratings;
- Cohen's κ: units rated by both raters;
- Fleiss' κ: units with the most common number of ratings (the formula needs a constant number per unit);
- Gwet's AC1: units with at least one rating (single ratings inform the category prevalences);
- ICC: units rated by every rater (the Shrout & Fleiss forms need a complete units × raters table).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from promedical.bench.datasets import BenchDataError
from promedical.bench.errors import PromedicalError
from promedical.bench.statistics import CONFIDENCE, N_BOOTSTRAP, bootstrap_weights, percentile_interval

LEVELS = ("nominal", "ordinal", "interval", "ratio")
KAPPA_WEIGHTS = (None, "linear", "quadratic")
ICC_FORMS = ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)", "ICC(2,k)", "ICC(3,k)")
#: JSON-friendly names of the ICC forms, in :data:`ICC_FORMS` order.
ICC_KEYS = ("icc_1_1", "icc_2_1", "icc_3_1", "icc_1_k", "icc_2_k", "icc_3_k")

#: Above this many distinct values, ratings are treated as measurements (see :func:`report_statistics`).
MAX_CATEGORIES = 30
#: Krippendorff's α (the package and the bootstrap) needs memory in the square of the distinct values.
MAX_ALPHA_CATEGORIES = 400

#: The rating scales this toolkit writes, lowest first (codes 0, 1, ...). Pairwise values are the side that
#: is preferred, so the scale runs from "b preferred" through "tie" to "a preferred".
POINTWISE_SCALE = ("not_met", "met")
PAIRWISE_SCALE = ("b", "tie", "a")
KNOWN_SCALES = (POINTWISE_SCALE, PAIRWISE_SCALE)


class AgreementError(PromedicalError, ValueError):
    """Ratings that cannot be analysed as asked (wrong shape, non-numeric values, a level the data lacks).

    ``str()`` is the problem alone; the command line names the step: ``error: agreement: problem``."""

    def report(self) -> list[str]:
        return [f"agreement: {self.message()}"]


@dataclass(frozen=True)
class AgreementEstimate:
    """A statistic with its percentile bootstrap CI over units; ``value`` is None where it is undefined
    (e.g. α when every rating is the same category). ``n_units``/``n_raters``: what it rests on."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n_units: int
    n_raters: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


# --------------------------------------------------------------------------------------------- inputs


def as_ratings(ratings: Any) -> np.ndarray:
    """``ratings`` as a float array shaped (units, raters) with NaN for missing; refuses anything else."""
    try:
        array = np.array(ratings, dtype=float)
    except (TypeError, ValueError):
        raise AgreementError("ratings must be numbers shaped (units, raters) with NaN for missing; "
                             "map labels to codes first (code_labels)") from None
    if array.ndim != 2:
        raise AgreementError(f"ratings must be 2-dimensional (units, raters), got shape {array.shape}")
    if np.isinf(array).any():
        raise AgreementError("ratings contain infinity; use NaN for a missing rating")
    return array


def _categories(x: np.ndarray, categories: Sequence[float] | None) -> np.ndarray:
    observed = np.unique(x[~np.isnan(x)])
    if categories is None:
        return observed
    cats = np.unique(np.asarray(categories, dtype=float))
    outside = np.setdiff1d(observed, cats)
    if outside.size:
        raise AgreementError(f"ratings contain values outside the given categories: {outside[:5].tolist()}")
    return cats


def _counts(x: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Units × categories: how many raters put each unit in each category."""
    return (x[:, :, None] == cats[None, None, :]).sum(axis=1).astype(float)


def _n_raters(x: np.ndarray) -> int:
    return int((~np.isnan(x)).any(axis=0).sum())


# --------------------------------------------------------------------------------------------- bootstrap


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


@dataclass
class _Prepared:
    """One statistic ready to evaluate: its point value, what it rests on, and its bootstrap replicates
    as a function of unit weights shaped (replicates, n_units)."""

    value: float | None
    n_units: int
    n_raters: int
    replicates: Callable[[np.ndarray], np.ndarray] | None

    def estimate(self, seed: int, n_boot: int, confidence: float,
                 weights_cache: dict[int, np.ndarray] | None = None) -> AgreementEstimate:
        value = _finite(self.value)
        if value is None or self.replicates is None or self.n_units < 2 or n_boot <= 0:
            return AgreementEstimate(value, None, None, self.n_units, self.n_raters)
        cache = {} if weights_cache is None else weights_cache
        if self.n_units not in cache:  # statistics on the same units share their replicates' weights
            cache[self.n_units] = bootstrap_weights(self.n_units, seed, n_boot)
        weights = cache[self.n_units]
        with np.errstate(invalid="ignore", divide="ignore"):
            low, high = percentile_interval(np.asarray(self.replicates(weights), dtype=float), confidence)
        return AgreementEstimate(value, low, high, self.n_units, self.n_raters)


def _undefined(n_units: int = 0, n_raters: int = 0) -> _Prepared:
    return _Prepared(None, n_units, n_raters, None)


# --------------------------------------------------------------------------------------------- statistics


def _prep_percent(x: np.ndarray, cats: np.ndarray) -> _Prepared:
    n = _counts(x, cats)
    m = n.sum(axis=1)
    keep = m >= 2
    if not keep.any():
        return _undefined()
    n, m = n[keep], m[keep]
    per_unit = (n * (n - 1)).sum(axis=1) / (m * (m - 1))
    return _Prepared(float(per_unit.mean()), int(keep.sum()), _n_raters(x[keep]),
                     lambda w: (w @ per_unit) / w.sum(axis=1))


def percent_agreement(ratings: Any) -> float | None:
    """Mean over units (with ≥ 2 ratings) of the share of rater pairs that agree exactly.

    ``ratings``: shaped (units, raters), NaN for missing."""
    x = as_ratings(ratings)
    return _finite(_prep_percent(x, _categories(x, None)).value)


def _distance_matrix(cats: np.ndarray, level: str) -> np.ndarray:
    """Krippendorff's squared distances δ² between category values (ordinal needs the value marginals)."""
    a, b = cats[:, None], cats[None, :]
    if level == "nominal":
        return (a != b).astype(float)
    if level == "interval":
        return (a - b) ** 2
    if level == "ratio":
        total = a + b
        return np.divide(a - b, total, out=np.zeros(np.broadcast(a, b).shape), where=total != 0) ** 2
    raise AssertionError(level)


def _ordinal_distances(marginals: np.ndarray) -> np.ndarray:
    """δ²_ck = (Σ_{g=c..k} n_g − (n_c + n_k)/2)² for marginals shaped (..., C); returns (..., C, C)."""
    cumulative = np.cumsum(marginals, axis=-1)
    size = marginals.shape[-1]
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    low, high = np.minimum(i, j), np.maximum(i, j)
    before = np.where(low > 0, np.take(cumulative, np.maximum(low - 1, 0), axis=-1), 0.0)
    between = np.take(cumulative, high, axis=-1) - before
    return (between - (np.take(marginals, i, axis=-1) + np.take(marginals, j, axis=-1)) / 2) ** 2


def _prep_alpha(x: np.ndarray, cats: np.ndarray, level: str) -> _Prepared:
    import krippendorff

    if level not in LEVELS:
        raise AgreementError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    if len(cats) > MAX_ALPHA_CATEGORIES:
        raise AgreementError(f"{len(cats)} distinct values: Krippendorff's alpha needs memory in their square "
                             f"(limit {MAX_ALPHA_CATEGORIES}); round the ratings to fewer values")
    n = _counts(x, cats)
    m = n.sum(axis=1)
    keep = m >= 2
    if not keep.any():
        return _undefined()
    n, m = n[keep], m[keep]
    n_raters = _n_raters(x[keep])
    if np.count_nonzero(n.sum(axis=0)) < 2:  # one value only: no disagreement is possible, α is 0/0
        return _undefined(int(keep.sum()), n_raters)
    value = float(krippendorff.alpha(reliability_data=x[keep].T, value_domain=cats, level_of_measurement=level))
    scale = 1.0 / (m - 1)

    if level == "ordinal":
        def replicates(w: np.ndarray) -> np.ndarray:
            marginals = w @ n  # pairable values per category, (B, C)
            totals = marginals.sum(axis=1)
            out = np.empty(len(w))
            for b in range(len(w)):  # the distances depend on each replicate's marginals
                delta = _ordinal_distances(marginals[b])
                coincidence = n.T @ ((w[b] * scale)[:, None] * n)  # Σ_u w_u/(m_u−1) · n_u n_uᵀ
                out[b] = 1.0 - (coincidence * delta).sum() / (marginals[b] @ delta @ marginals[b] / (totals[b] - 1))
            return out
    else:
        delta = _distance_matrix(cats, level)
        per_unit = np.einsum("uc,ck,uk->u", n, delta, n) * scale  # δ_cc = 0, so the diagonal term vanishes

        def replicates(w: np.ndarray) -> np.ndarray:
            marginals = w @ n
            totals = marginals.sum(axis=1)
            expected = np.einsum("bc,ck,bk->b", marginals, delta, marginals) / (totals - 1)
            return 1.0 - (w @ per_unit) / expected

    return _Prepared(value, int(keep.sum()), n_raters, replicates)


def krippendorff_alpha(ratings: Any, level: str = "nominal", categories: Sequence[float] | None = None
                       ) -> float | None:
    """Krippendorff's α at ``level`` (nominal, ordinal, interval or ratio), via the ``krippendorff`` package.

    ``ratings``: shaped (units, raters), NaN for missing (transposed here for the package, which wants
    raters × units). ``categories``: the value domain when some values were never used (matters for
    ordinal). None when fewer than two distinct values were given (α is 0/0 there)."""
    x = as_ratings(ratings)
    return _finite(_prep_alpha(x, _categories(x, categories), level).value)


def _disagreement_weights(size: int, weights: str | None) -> np.ndarray:
    """scikit-learn's κ disagreement weights over category ranks: 0/1, |i−j| or (i−j)²."""
    if weights not in KAPPA_WEIGHTS:
        raise AgreementError(f"unknown kappa weights {weights!r}; choose None, 'linear' or 'quadratic'")
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    if weights is None:
        return (i != j).astype(float)
    return np.abs(i - j).astype(float) if weights == "linear" else ((i - j) ** 2).astype(float)


def _kappa_from_confusion(confusion: np.ndarray, disagreement: np.ndarray) -> np.ndarray:
    """Cohen's κ = 1 − Σ w·O / Σ w·E for confusion matrices shaped (..., C, C)."""
    total = confusion.sum(axis=(-2, -1))
    expected = confusion.sum(axis=-1)[..., :, None] * confusion.sum(axis=-2)[..., None, :] / total[..., None, None]
    return 1.0 - (confusion * disagreement).sum(axis=(-2, -1)) / (expected * disagreement).sum(axis=(-2, -1))


def _weighted_confusions(w: np.ndarray, cells: np.ndarray, size: int) -> np.ndarray:
    """Replicate confusion matrices (B, C, C) from each unit's cell index (row·C + column) and unit weights."""
    out = np.zeros((len(w), size * size))
    for cell in np.unique(cells):
        out[:, cell] = w[:, cells == cell].sum(axis=1)
    return out.reshape(len(w), size, size)


def _prep_cohen(x: np.ndarray, cats: np.ndarray, weights: str | None) -> _Prepared:
    from sklearn.metrics import cohen_kappa_score

    if x.shape[1] != 2:
        raise AgreementError(f"Cohen's kappa compares exactly two raters, got {x.shape[1]}; "
                             "use fleiss_kappa or light_kappa for more")
    both = ~np.isnan(x).any(axis=1)
    if both.sum() < 1:
        return _undefined()
    pair = x[both]
    disagreement = _disagreement_weights(len(cats), weights)
    index = {value: i for i, value in enumerate(cats)}
    rows = np.array([index[v] for v in pair[:, 0]])
    cols = np.array([index[v] for v in pair[:, 1]])
    n_units = int(both.sum())
    if len(np.unique(np.concatenate([rows, cols]))) < 2:  # one category only: κ is 0/0
        return _undefined(n_units, 2)
    value = float(cohen_kappa_score(rows, cols, labels=np.arange(len(cats)), weights=weights))
    cells = rows * len(cats) + cols
    return _Prepared(value, n_units, 2,
                     lambda w: _kappa_from_confusion(_weighted_confusions(w, cells, len(cats)), disagreement))


def cohen_kappa(ratings: Any, weights: str | None = None, categories: Sequence[float] | None = None
                ) -> float | None:
    """Cohen's κ of two raters (unweighted, ``"linear"`` or ``"quadratic"``), via scikit-learn.

    ``ratings``: shaped (units, raters) with exactly two raters, NaN for missing; units rated by both are
    used. Weights are over category ranks (scikit-learn's convention); ``categories`` adds values nobody used
    to the scale."""
    x = as_ratings(ratings)
    return _finite(_prep_cohen(x, _categories(x, categories), weights).value)


def _prep_light(x: np.ndarray, cats: np.ndarray, weights: str | None, min_common: int = 2) -> _Prepared:
    """Each pair's κ is scikit-learn's formula on the pair's confusion matrix (computed here directly: calling
    scikit-learn for every pair of K raters costs seconds; the tests check the two agree)."""
    m = (~np.isnan(x)).sum(axis=1)
    keep = m >= 2
    x = x[keep]
    disagreement = _disagreement_weights(len(cats), weights)
    index = {value: i for i, value in enumerate(cats)}
    pairs = []
    for j, k in combinations(range(x.shape[1]), 2):
        both = ~np.isnan(x[:, j]) & ~np.isnan(x[:, k])
        if both.sum() < min_common:
            continue
        a, b = x[both, j], x[both, k]
        if len(np.unique(np.concatenate([a, b]))) < 2:
            continue  # κ undefined for this pair
        cells = np.array([index[v] for v in a]) * len(cats) + np.array([index[v] for v in b])
        confusion = np.bincount(cells, minlength=len(cats) ** 2).reshape(len(cats), len(cats)).astype(float)
        pairs.append((float(_kappa_from_confusion(confusion, disagreement)), np.flatnonzero(both), cells))
    if not pairs:
        return _undefined(int(keep.sum()), _n_raters(x))

    def replicates(w: np.ndarray) -> np.ndarray:
        values = [_kappa_from_confusion(_weighted_confusions(w[:, units], cells, len(cats)), disagreement)
                  for _, units, cells in pairs]
        stacked = np.stack(values)
        counted = np.isfinite(stacked).sum(axis=0)
        return np.where(counted > 0, np.nansum(stacked, axis=0) / np.maximum(counted, 1), np.nan)

    return _Prepared(float(np.mean([p[0] for p in pairs])), int(keep.sum()), _n_raters(x), replicates)


def light_kappa(ratings: Any, weights: str | None = None, categories: Sequence[float] | None = None
                ) -> float | None:
    """Light's κ: the mean of Cohen's κ over every pair of raters that share at least two units (pairs whose
    κ is undefined are left out). For more than two raters, e.g. K physicians with 2 ratings per unit.

    ``ratings``: shaped (units, raters), NaN for missing."""
    x = as_ratings(ratings)
    return _finite(_prep_light(x, _categories(x, categories), weights).value)


def _prep_fleiss(x: np.ndarray, cats: np.ndarray) -> _Prepared:
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    n = _counts(x, cats)
    m = n.sum(axis=1)
    if not (m >= 2).any():
        return _undefined()
    counts = np.bincount(m[m >= 2].astype(int))
    modal = int(np.flatnonzero(counts == counts.max()).max())  # the most common count; the larger on a tie
    keep = m == modal
    n = n[keep]
    n_units, n_raters = int(keep.sum()), _n_raters(x[keep])
    p_cat = n.sum(axis=0) / n.sum()
    if np.isclose((p_cat ** 2).sum(), 1.0):  # one category only: κ is 0/0
        return _undefined(n_units, n_raters)
    value = float(sm_fleiss(n, method="fleiss"))
    per_unit = ((n * n).sum(axis=1) - modal) / (modal * (modal - 1))

    def replicates(w: np.ndarray) -> np.ndarray:
        shares = (w @ n) / (modal * w.sum(axis=1))[:, None]
        expected = (shares ** 2).sum(axis=1)
        observed = (w @ per_unit) / w.sum(axis=1)
        return (observed - expected) / (1.0 - expected)

    return _Prepared(value, n_units, n_raters, replicates)


def fleiss_kappa(ratings: Any, categories: Sequence[float] | None = None) -> float | None:
    """Fleiss' κ (statsmodels), on the units with the most common number of ratings (the formula assumes the
    same number of ratings on every unit; the raters themselves may differ from unit to unit).

    ``ratings``: shaped (units, raters), NaN for missing."""
    x = as_ratings(ratings)
    return _finite(_prep_fleiss(x, _categories(x, categories)).value)


def _prep_gwet(x: np.ndarray, cats: np.ndarray) -> _Prepared:
    n = _counts(x, cats)
    m = n.sum(axis=1)
    keep = m >= 1
    n, m = n[keep], m[keep]
    q = len(cats)
    if q < 2 or not (m >= 2).any():
        return _undefined(int(keep.sum()), _n_raters(x[keep]))
    two = (m >= 2).astype(float)
    agree = np.where(m >= 2, (n * (n - 1)).sum(axis=1) / np.maximum(m * (m - 1), 1), 0.0)
    shares = n / m[:, None]

    def evaluate(w: np.ndarray) -> np.ndarray:
        observed = (w @ agree) / (w @ two)
        prevalence = (w @ shares) / w.sum(axis=1)[:, None]
        expected = (prevalence * (1 - prevalence)).sum(axis=1) / (q - 1)
        return (observed - expected) / (1.0 - expected)

    value = float(evaluate(np.ones((1, len(m))))[0])
    return _Prepared(value, int(keep.sum()), _n_raters(x[keep]), evaluate)


def gwet_ac1(ratings: Any, categories: Sequence[float] | None = None) -> float | None:
    """Gwet's AC1 (Gwet 2008; 2014, ch. 4) for any number of raters with missing ratings:
    p_a = mean over units with ≥ 2 ratings of Σ_k r_ik(r_ik−1) / (r_i(r_i−1));
    π_k = mean over units with ≥ 1 rating of r_ik / r_i; p_e = Σ_k π_k(1−π_k) / (q−1);
    AC1 = (p_a − p_e) / (1 − p_e), with q the number of categories (``categories`` when some were unused).

    ``ratings``: shaped (units, raters), NaN for missing."""
    x = as_ratings(ratings)
    return _finite(_prep_gwet(x, _categories(x, categories)).value)


def _icc_from_sums(w: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """The six Shrout & Fleiss ICCs and the four mean squares of a complete table ``x`` (n × k), for each
    row of unit weights ``w`` (B × n; ones = the sample itself)."""
    n_units, k = w.sum(axis=1), x.shape[1]
    row_means = x.mean(axis=1)
    grand = (w @ row_means) / n_units
    total_ss = w @ (x ** 2).sum(axis=1) - n_units * k * grand ** 2
    between_rows = k * (w @ row_means ** 2 - n_units * grand ** 2)
    column_means = (w @ x) / n_units[:, None]
    between_columns = n_units * ((column_means - grand[:, None]) ** 2).sum(axis=1)
    bms = between_rows / (n_units - 1)
    wms = (total_ss - between_rows) / (n_units * (k - 1))
    jms = between_columns / (k - 1)
    ems = (total_ss - between_rows - between_columns) / ((n_units - 1) * (k - 1))
    return {
        "ICC(1,1)": (bms - wms) / (bms + (k - 1) * wms),
        "ICC(2,1)": (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n_units),
        "ICC(3,1)": (bms - ems) / (bms + (k - 1) * ems),
        "ICC(1,k)": (bms - wms) / bms,
        "ICC(2,k)": (bms - ems) / (bms + (jms - ems) / n_units),
        "ICC(3,k)": (bms - ems) / bms,
        "BMS": bms, "WMS": wms, "JMS": jms, "EMS": ems,
    }


def _complete(x: np.ndarray) -> np.ndarray:
    rated = (~np.isnan(x)).any(axis=0)
    x = x[:, rated]
    return x[~np.isnan(x).any(axis=1)]


def _prep_icc(x: np.ndarray, form: str) -> _Prepared:
    if form not in ICC_FORMS:
        raise AgreementError(f"unknown ICC form {form!r}; choose one of {', '.join(ICC_FORMS)}")
    table = _complete(x)
    if table.shape[0] < 2 or table.shape[1] < 2:
        return _undefined(table.shape[0], table.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        value = float(_icc_from_sums(np.ones((1, table.shape[0])), table)[form][0])
    return _Prepared(value, table.shape[0], table.shape[1], lambda w: _icc_from_sums(w, table)[form])


def icc(ratings: Any, form: str = "ICC(2,1)") -> float | None:
    """An intraclass correlation in the Shrout & Fleiss (1979) forms: ICC(1,1) one-way random, ICC(2,1)
    two-way random (absolute agreement), ICC(3,1) two-way mixed (consistency), and ICC(1,k), ICC(2,k),
    ICC(3,k) for the mean of the k raters — from the ANOVA mean squares.

    ``ratings``: shaped (units, raters), NaN for missing; only units rated by every rater are used."""
    return _finite(_prep_icc(as_ratings(ratings), form).value)


# --------------------------------------------------------------------------------------------- estimates


def _prepare(statistic: str, x: np.ndarray, cats: np.ndarray, level: str) -> _Prepared:
    if statistic == "percent_agreement":
        return _prep_percent(x, cats)
    if statistic == "krippendorff_alpha":
        return _prep_alpha(x, cats, level)
    if statistic == "fleiss_kappa":
        return _prep_fleiss(x, cats)
    if statistic == "gwet_ac1":
        return _prep_gwet(x, cats)
    for prefix, prep in (("cohen_kappa", _prep_cohen), ("light_kappa", _prep_light)):
        if statistic.startswith(prefix):
            weights = statistic.removeprefix(prefix).lstrip("_") or None
            return prep(x, cats, weights)
    if statistic in ICC_KEYS:
        return _prep_icc(x, ICC_FORMS[ICC_KEYS.index(statistic)])
    raise AgreementError(f"unknown statistic {statistic!r}")


def estimate(statistic: str, ratings: Any, *, level: str = "nominal", categories: Sequence[float] | None = None,
             seed: int = 0, n_boot: int = N_BOOTSTRAP, confidence: float = CONFIDENCE) -> AgreementEstimate:
    """One statistic with a seeded percentile bootstrap CI over units.

    ``ratings``: shaped (units, raters), NaN for missing. ``statistic``: ``percent_agreement``,
    ``krippendorff_alpha`` (at ``level``), ``cohen_kappa[_linear|_quadratic]`` (two raters),
    ``light_kappa[_linear|_quadratic]``, ``fleiss_kappa``, ``gwet_ac1``, or an ICC (``icc_1_1``, ``icc_2_1``,
    ``icc_3_1``, ``icc_1_k``, ``icc_2_k``, ``icc_3_k``)."""
    x = as_ratings(ratings)
    return _prepare(statistic, x, _categories(x, categories), level).estimate(seed, n_boot, confidence)


def report_statistics(n_raters: int, level: str, n_categories: int = 2) -> list[str]:
    """The statistics :func:`agreement_report` gives for data with ``n_raters`` raters at ``level`` with
    ``n_categories`` distinct values. Measurements with more than :data:`MAX_CATEGORIES` distinct values get
    Krippendorff's α and the ICCs only: the category-counting statistics mean nothing there."""
    if level not in LEVELS:
        raise AgreementError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    if n_categories > MAX_CATEGORIES and level in ("interval", "ratio"):
        return ["krippendorff_alpha", *ICC_KEYS]
    kappa = "cohen_kappa" if n_raters == 2 else "light_kappa"
    names = ["percent_agreement", "krippendorff_alpha", kappa]
    if level != "nominal":
        names += [f"{kappa}_linear", f"{kappa}_quadratic"]
    names += ["fleiss_kappa", "gwet_ac1"]
    if level in ("interval", "ratio"):
        names += list(ICC_KEYS)
    return names


def agreement_report(ratings: Any, *, level: str = "nominal", categories: Sequence[float] | None = None,
                     seed: int = 0, n_boot: int = N_BOOTSTRAP, confidence: float = CONFIDENCE
                     ) -> dict[str, AgreementEstimate]:
    """Every statistic that fits the data, each with a seeded bootstrap CI over units.

    ``ratings``: shaped (units, raters), NaN for missing. Always: percent agreement, Krippendorff's α at
    ``level``, Cohen's κ (exactly two raters) or Light's κ (more), Fleiss' κ and Gwet's AC1 (both nominal);
    for ordinal and higher levels also linear and quadratic weighted κ; for interval and ratio the six
    Shrout & Fleiss ICCs (on the units every rater rated)."""
    x = as_ratings(ratings)
    cats = _categories(x, categories)
    cache: dict[int, np.ndarray] = {}
    return {name: _prepare(name, x, cats, level).estimate(seed, n_boot, confidence, cache)
            for name in report_statistics(_n_raters(x), level, len(cats))}


# --------------------------------------------------------------------------------------------- predictions


def classification_agreement(predicted: Sequence[str], reference: Sequence[str], units: Sequence[Any],
                             classes: Sequence[str], *, seed: int = 0, n_boot: int = N_BOOTSTRAP,
                             confidence: float = CONFIDENCE, n_raters: int = 1) -> dict[str, AgreementEstimate]:
    """Accuracy, Cohen's κ and macro-F1 of ``predicted`` against ``reference`` labels, one pair per instance.

    ``units`` names each instance's unit: the bootstrap resamples units, so that several instances of one
    unit (one per reference physician, HealthBench's pairwise form) move together. Macro-F1 is the mean over
    ``classes`` of F1 = 2TP / (2TP + FP + FN), leaving out a class absent from both sides."""
    if not (len(predicted) == len(reference) == len(units)):
        raise AgreementError("predicted, reference and units must have the same length")
    index = {label: i for i, label in enumerate(classes)}
    unknown = sorted({str(v) for v in (*predicted, *reference) if v not in index})
    if unknown:
        raise AgreementError(f"labels outside {list(classes)}: {unknown[:5]}")
    names = ["accuracy", "cohen_kappa", "macro_f1"]
    if not predicted:
        return {name: AgreementEstimate(None, None, None, 0, n_raters) for name in names}
    unit_ids = {u: i for i, u in enumerate(dict.fromkeys(units))}
    size = len(classes)
    per_unit = np.zeros((len(unit_ids), size * size))
    for p, r, u in zip(predicted, reference, units, strict=True):
        per_unit[unit_ids[u], index[r] * size + index[p]] += 1  # rows: reference, columns: prediction
    disagreement = _disagreement_weights(size, None)

    def metrics(w: np.ndarray) -> dict[str, np.ndarray]:
        confusion = (w @ per_unit).reshape(len(w), size, size)
        total = confusion.sum(axis=(1, 2))
        diagonal = np.diagonal(confusion, axis1=1, axis2=2)
        f1_denominator = confusion.sum(axis=1) + confusion.sum(axis=2)  # 2TP + FN + FP per class
        present = f1_denominator > 0
        f1 = np.where(present, 2 * diagonal / np.where(present, f1_denominator, 1), 0.0)
        return {"accuracy": diagonal.sum(axis=1) / total,
                "cohen_kappa": _kappa_from_confusion(confusion, disagreement),
                "macro_f1": f1.sum(axis=1) / present.sum(axis=1)}

    with np.errstate(invalid="ignore", divide="ignore"):
        point = metrics(np.ones((1, len(unit_ids))))
        replicates = metrics(bootstrap_weights(len(unit_ids), seed, n_boot)) if n_boot > 0 else None
    out = {}
    for name in names:
        value = _finite(float(point[name][0]))
        low, high = (None, None) if value is None or replicates is None or len(unit_ids) < 2 else \
            percentile_interval(replicates[name], confidence)
        out[name] = AgreementEstimate(value, low, high, len(unit_ids), n_raters)
    return out


# --------------------------------------------------------------------------------------------- long format

REQUIRED_COLUMNS = ("unit", "rater", "value")
#: Grouping columns used by default when a long file has them.
DEFAULT_GROUPS = ("task", "criterion_type")


@dataclass(frozen=True)
class LongRating:
    """One row of a long-format ratings file; ``line`` is where it is (CSV: the spreadsheet row)."""

    unit: str
    rater: str
    value: str
    extra: dict[str, str]
    line: int


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_long(path: str | Path) -> tuple[list[LongRating], list[str]]:
    """Read long-format ratings (``.csv`` with a header, or ``.jsonl``): columns ``unit, rater, value`` and any
    extra ones. An empty value is an unrated row and is skipped. Refuses (``BenchDataError``, ``PATH:LINE``)
    missing columns and a unit rated twice by one rater. Returns the rows and the column names."""
    path = Path(path)
    if not path.is_file():
        raise BenchDataError(str(path), "no such file")
    records: list[tuple[int, dict[str, Any]]] = []
    if path.suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            records = [(index + 2, row) for index, row in enumerate(reader)]
    elif path.suffix == ".jsonl":
        columns = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise BenchDataError(str(path), f"invalid JSON: {error.msg}", number, "record") from None
            if not isinstance(record, dict):
                raise BenchDataError(str(path), "expected a JSON object", number, "record")
            columns += [c for c in record if c not in columns]
            records.append((number, record))
    else:
        raise BenchDataError(str(path), f"unsupported file type {path.suffix!r}; use .csv or .jsonl")
    if not records:
        raise BenchDataError(str(path), "no ratings", 1, "file")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise BenchDataError(str(path), f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                             "(long format needs unit, rater, value)", 1, "header")
    rows: list[LongRating] = []
    first: dict[tuple[str, str], int] = {}
    for number, record in records:
        unit, rater, value = (_cell(record.get(c)) for c in REQUIRED_COLUMNS)
        if not unit or not rater:
            raise BenchDataError(str(path), "unit and rater must not be empty", number, "unit" if not unit else "rater")
        if not value:
            continue
        if (unit, rater) in first:
            problem = f"unit {unit!r} rated twice by rater {rater!r} (first at line {first[unit, rater]})"
            raise BenchDataError(str(path), problem, number, "rater")
        first[unit, rater] = number
        extra = {c: _cell(record.get(c)) for c in columns if c not in REQUIRED_COLUMNS}
        rows.append(LongRating(unit, rater, value, extra, number))
    if not rows:
        raise BenchDataError(str(path), "every row is unrated (empty value)", 1, "value")
    return rows, columns


def code_labels(values: Iterable[str], level: str = "nominal", order: Sequence[str] | None = None
                ) -> tuple[dict[str, float], list[float]]:
    """Numeric codes for rating values, and the full category list (for unused categories).

    Numbers stay numbers. ``order`` (lowest first) codes labels 0, 1, ...; otherwise the scales this toolkit
    writes are recognised (``not_met < met``; pairwise ``b < tie < a``); other labels are nominal only."""
    values = sorted(set(values))
    if order:
        missing = [v for v in values if v not in order]
        if missing:
            raise AgreementError(f"values not in the given order {list(order)}: {missing[:5]}")
        return {label: float(i) for i, label in enumerate(order)}, [float(i) for i in range(len(order))]
    try:
        numbers = {v: float(v) for v in values}
        if all(math.isfinite(n) for n in numbers.values()):
            return numbers, sorted(set(numbers.values()))
    except ValueError:
        pass
    lowered = {v.lower() for v in values}
    for scale in KNOWN_SCALES:
        if lowered <= set(scale):
            codes = {v: float(scale.index(v.lower())) for v in values}
            return codes, [float(i) for i in range(len(scale))]
    if level != "nominal":
        raise AgreementError(f"values {values[:6]} are labels without a known order: use --level nominal, or "
                             "give the order with --order LOWEST,...,HIGHEST")
    if all(v.lower() in POINTWISE_SCALE + PAIRWISE_SCALE for v in values):  # both tasks in one group
        joint = POINTWISE_SCALE + PAIRWISE_SCALE
        return {v: float(joint.index(v.lower())) for v in values}, [float(i) for i in range(len(joint))]
    return {v: float(i) for i, v in enumerate(values)}, [float(i) for i in range(len(values))]


def ratings_matrix(rows: Sequence[LongRating], codes: dict[str, float]) -> tuple[np.ndarray, list[str], list[str]]:
    """Long rows as an array shaped (units, raters) with NaN for missing, plus the unit and rater names."""
    units = list(dict.fromkeys(r.unit for r in rows))
    raters = sorted({r.rater for r in rows})
    unit_index = {u: i for i, u in enumerate(units)}
    rater_index = {r: i for i, r in enumerate(raters)}
    matrix = np.full((len(units), len(raters)), np.nan)
    for row in rows:
        matrix[unit_index[row.unit], rater_index[row.rater]] = codes[row.value]
    return matrix, units, raters


def _scale_of(values: Iterable[str]) -> str:
    lowered = {v.lower() for v in values}
    for scale in KNOWN_SCALES:
        if lowered <= set(scale):
            return "/".join(scale)
    return "other"


def _tasks(rows: Sequence[LongRating], order: Sequence[str] | None) -> dict[str, str]:
    """Each unit's task: its ``task`` column where the rows have one, otherwise, where the values mix the
    pointwise and pairwise scales (and no ``order`` puts them on one), the scale its own values are on."""
    if any("task" in r.extra for r in rows):
        by_task: dict[str, str] = {}
        for row in rows:
            if by_task.setdefault(row.unit, row.extra.get("task", "")) != row.extra.get("task", ""):
                raise AgreementError(f"unit {row.unit!r} has different task on different rows (line {row.line})")
        return by_task
    values = {r.value.lower() for r in rows}
    if order or not values <= set(POINTWISE_SCALE + PAIRWISE_SCALE) or \
            values <= set(POINTWISE_SCALE) or values <= set(PAIRWISE_SCALE):
        return {}
    by_unit: dict[str, set[str]] = {}
    for row in rows:
        by_unit.setdefault(row.unit, set()).add(row.value.lower())
    tasks = {}
    for unit, unit_values in by_unit.items():
        if unit_values <= set(POINTWISE_SCALE):
            tasks[unit] = "pointwise"
        elif unit_values <= set(PAIRWISE_SCALE):
            tasks[unit] = "pairwise"
        else:
            raise AgreementError(f"unit {unit!r} has both pointwise (met/not_met) and pairwise (a/b/tie) ratings")
    return tasks


def long_agreement(rows: Sequence[LongRating], *, level: str = "nominal", group_by: Sequence[str] | None = None,
                   order: Sequence[str] | None = None, seed: int = 0, n_boot: int = N_BOOTSTRAP,
                   columns: Sequence[str] | None = None) -> dict[str, Any]:
    """Agreement statistics of long-format ratings: ``{statistic: {value, ci_low, ci_high, n_units, n_raters}}``,
    or, when grouping columns exist, the same per group: ``all`` (left out when the groups use different
    rating scales, e.g. pointwise and pairwise, and when it would repeat the single value of the first of
    several grouping columns), each value of the first grouping column, and each combination
    (``pointwise/safety``). ``group_by`` None: ``task`` and ``criterion_type`` where present.

    Pointwise and pairwise ratings are never pooled: where both tasks occur (by the ``task`` column, or else
    by the scale of each unit's values), ``group_by`` empty (``--no-groups``) returns one pooled set of
    statistics per task (``{"pairwise": ..., "pointwise": ...}``), and groupings without ``task`` are split
    by task first (``criterion_type`` gives ``pointwise/safety``, ``pairwise/safety``, ...)."""
    present = set(columns) if columns is not None else set().union(*(r.extra for r in rows))
    if group_by is None:
        group_by = [c for c in DEFAULT_GROUPS if c in present]
    else:
        unknown = [c for c in group_by if c not in present]
        if unknown:
            raise AgreementError(f"no column {unknown[0]!r} to group by")
    tasks = _tasks(rows, order)
    split_by_task = len(set(tasks.values())) > 1 and "task" not in group_by
    if not group_by:
        if not split_by_task:
            return _report_dict(rows, level, order, seed, n_boot)
        return {task: _report_dict([r for r in rows if tasks[r.unit] == task], level, order, seed, n_boot)
                for task in sorted(set(tasks.values()))}
    keys: dict[str, tuple[str, ...]] = {}
    for row in rows:
        key = (tasks[row.unit],) * split_by_task + tuple(row.extra.get(c, "") for c in group_by)
        if keys.setdefault(row.unit, key) != key:
            raise AgreementError(f"unit {row.unit!r} has different {', '.join(group_by)} on different rows "
                                 f"(line {row.line})")
    groups: dict[str, list[LongRating]] = {}
    firsts = sorted({k[0] for k in keys.values()})
    scales = {_scale_of(r.value for r in rows if keys[r.unit][0] == first) for first in firsts}
    # "all" pools everything on one scale, unless the first grouping column has a single value, whose group
    # is then the same thing under its own name.
    width = len(group_by) + split_by_task
    if (len(scales) == 1 or order) and (width == 1 or len(firsts) > 1):
        groups["all"] = list(rows)
    if width > 1:
        for first in firsts:
            groups[first] = [r for r in rows if keys[r.unit][0] == first]
    for combination in sorted(set(keys.values())):
        groups["/".join(combination)] = [r for r in rows if keys[r.unit] == combination]
    return {name: _report_dict(members, level, order, seed, n_boot) for name, members in groups.items()}


def _report_dict(rows: Sequence[LongRating], level: str, order: Sequence[str] | None, seed: int, n_boot: int
                 ) -> dict[str, dict[str, Any]]:
    codes, categories = code_labels([r.value for r in rows], level, order)
    matrix, _, _ = ratings_matrix(rows, codes)
    report = agreement_report(matrix, level=level, categories=categories, seed=seed, n_boot=n_boot)
    return {name: value.as_dict() for name, value in report.items()}


def format_report(report: dict[str, Any], title: str) -> str:
    """A plain-text table of :func:`long_agreement`'s result."""
    grouped = report and isinstance(next(iter(report.values())), dict) and "value" not in next(iter(report.values()))
    sections = report.items() if grouped else [("", report)]
    lines = [title]
    for name, stats in sections:
        if name:
            lines.append(f"\n{name}")
        lines.append(f"  {'statistic':<26} {'value':>7}  {'95% CI':<17} {'units':>6} {'raters':>6}")
        for statistic, entry in stats.items():
            value = "n/a" if entry["value"] is None else f"{entry['value']:.3f}"
            ci = "" if entry["ci_low"] is None else f"[{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"
            lines.append(f"  {statistic:<26} {value:>7}  {ci:<17} {entry['n_units']:>6} {entry['n_raters']:>6}")
    return "\n".join(lines)
