"""False-positive rate of `compare`'s paired test when two runs of one judge differ only by item-correlated noise.

Each simulated bench has the sample's shape (66 items, 1,895 criterion-level instances split unevenly over the
items). Both runs are the same judge: an instance is decided correctly with probability
sigmoid(μ + uᵢ + vᵢʳ + εᵢⱼʳ), where uᵢ is the item's difficulty (shared by both runs) and vᵢʳ a per-run,
per-item shift (e.g. one prompt rendering that the run's sampling happens to handle badly) shared by all of that
item's instances. Both runs are drawn from the same distribution, so any rejection is a false positive.

For each of ``--pairs`` simulated pairs it applies the item-level sign-flip permutation test that `compare`
reports (`promedical.bench.statistics.item_sign_flip_test`, on per-item differences in correct decisions)
and, as the contrast, McNemar's test on the instances (statsmodels), and prints the share of pairs each
rejects at α = 0.05 with its 95% Wilson interval.

    python benchmarks/paired_test_fpr.py --pairs 1000 --seed 0
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from promedical.bench.statistics import item_sign_flip_test

ITEMS, INSTANCES = 66, 1895
ALPHA = 0.05


def simulate_pair(rng: np.random.Generator, item_sd: float, run_item_sd: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correctness of run A and run B per instance, and each instance's item index."""
    sizes = rng.multinomial(INSTANCES - 5 * ITEMS, np.full(ITEMS, 1 / ITEMS)) + 5
    item = np.repeat(np.arange(ITEMS), sizes)
    difficulty = rng.normal(0.8, item_sd, ITEMS)

    def one_run() -> np.ndarray:
        logit = difficulty[item] + rng.normal(0.0, run_item_sd, ITEMS)[item] + rng.normal(0.0, 0.5, item.size)
        return rng.random(item.size) < 1 / (1 + np.exp(-logit))

    return one_run(), one_run(), item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--item-sd", type=float, default=1.0, help="SD of item difficulty (logit scale).")
    parser.add_argument("--run-item-sd", type=float, default=0.6,
                        help="SD of the per-run, per-item shift (logit scale): the item-correlated noise.")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rejected = {"item_sign_flip": 0, "instance_mcnemar": 0}
    for pair in range(args.pairs):
        a, b, item = simulate_pair(rng, args.item_sd, args.run_item_sd)
        per_item = np.bincount(item, weights=b.astype(float) - a.astype(float), minlength=ITEMS)
        rejected["item_sign_flip"] += item_sign_flip_test(per_item, seed=pair, n_resamples=2000)["p_value"] < ALPHA
        table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
        rejected["instance_mcnemar"] += mcnemar(table, exact=False, correction=True).pvalue < ALPHA
    report = {"pairs": args.pairs, "seed": args.seed, "alpha": ALPHA, "items": ITEMS, "instances": INSTANCES,
              "item_sd": args.item_sd, "run_item_sd": args.run_item_sd, "false_positive_rate": {}}
    for name, count in rejected.items():
        low, high = proportion_confint(count, args.pairs, alpha=0.05, method="wilson")
        report["false_positive_rate"][name] = {"rate": count / args.pairs, "ci_low": low, "ci_high": high}
        print(f"{name:<18} rejects {count}/{args.pairs} = {100 * count / args.pairs:.1f}% "
              f"[{100 * low:.1f}, {100 * high:.1f}] at alpha = {ALPHA}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
