"""`promedical-bench compare RUN_A RUN_B`: paired comparison of two runs on the same bench.

Only instances both runs decided are compared (an instance one run left `unknown`, or an answer one run
failed to generate or grade, is dropped from both, and the drops are counted). Per metric, the difference
B − A with a paired bootstrap CI (items resampled jointly for both runs), and one paired test per track:
an item-level sign-flip permutation test on the per-item difference in correct decisions (judge track) or
in overall score (policy track), so instances of one item are never treated as independent. The
leaderboard reuses this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from promedical.bench.datasets import BenchDataError
from promedical.bench.metrics import JUDGE_CONTRIBUTIONS, POLICY_CONTRIBUTIONS, per_item_sums
from promedical.bench.results import JudgeSample, PolicySample, read_results, read_samples
from promedical.bench.statistics import bootstrap_weights, item_sign_flip_test, paired_difference

CONTRIBUTIONS = {"judge": JUDGE_CONTRIBUTIONS, "policy": POLICY_CONTRIBUTIONS}
# The per-sample value the paired test compares, and whether a sample has one.
TESTED_VALUE = {"judge": "correct", "policy": "overall"}


def _instance_key(sample: JudgeSample | PolicySample) -> tuple:
    if isinstance(sample, PolicySample):
        return ("policy", sample.item_id)
    return ("judge", sample.mode, sample.item_id, sample.criterion_id, tuple(sample.response_ids))


def _tested(sample: JudgeSample | PolicySample) -> float | None:
    """The value the paired test compares: a judge instance's correctness, a policy answer's overall score."""
    return sample.overall if isinstance(sample, PolicySample) else sample.correct


def _decided(sample: JudgeSample | PolicySample) -> bool:
    """A judge instance with a verdict, or a policy answer that was generated and fully graded."""
    return _tested(sample) is not None


def compare_runs(run_a: str | Path, run_b: str | Path, *, seed: int) -> dict[str, Any]:
    """Differences B − A for every metric of every track both runs have, on the instances both decided."""
    results_a, results_b = read_results(run_a), read_results(run_b)
    if results_a.bench.content_hash != results_b.bench.content_hash:
        raise BenchDataError(str(run_b), f"bench {results_b.bench.content_hash} differs from {run_a}'s "
                             f"{results_a.bench.content_hash}: runs must use the same bench items")
    tracks = [t for t in results_a.tracks if t in results_b.tracks]
    if not tracks:
        raise BenchDataError(str(run_b), "the two runs share no track")
    samples_a, samples_b = read_samples(run_a), read_samples(run_b)
    out: dict[str, Any] = {"run_a": results_a.run_id, "run_b": results_b.run_id,
                           "bench": results_a.bench.content_hash, "tracks": {}}
    for track in tracks:
        a = {_instance_key(s): s for s in samples_a if isinstance(s, JudgeSample | PolicySample) and s.track == track}
        b = {_instance_key(s): s for s in samples_b if isinstance(s, JudgeSample | PolicySample) and s.track == track}
        common = set(a) & set(b)
        shared = sorted((k for k in common if _decided(a[k]) and _decided(b[k])), key=repr)
        if not shared:
            raise BenchDataError(str(run_b), f"the two runs share no {track}-track instance both decided")
        item_ids = sorted({a[k].item_id for k in shared})
        weights = bootstrap_weights(len(item_ids), seed)
        sums_a = per_item_sums([a[k] for k in shared], CONTRIBUTIONS[track], item_ids)
        sums_b = per_item_sums([b[k] for k in shared], CONTRIBUTIONS[track], item_ids)
        differences = {}
        for name in CONTRIBUTIONS[track]:
            num_a, den_a, n = sums_a[name]
            num_b, den_b, _ = sums_b[name]
            differences[name] = paired_difference(num_a, den_a, num_b, den_b, n, weights).as_dict()
        index = {item_id: i for i, item_id in enumerate(item_ids)}
        per_item = np.zeros(len(item_ids))
        for k in shared:
            per_item[index[a[k].item_id]] += float(_tested(b[k])) - float(_tested(a[k]))  # type: ignore[arg-type]
        out["tracks"][track] = {
            "differences": differences,
            "paired_test": {"name": "item-level sign-flip permutation test", "tested": TESTED_VALUE[track],
                            **item_sign_flip_test(per_item, seed)},
            "instances": {"compared": len(shared),
                          "undecided_in_a": sum(1 for k in common if not _decided(a[k])),
                          "undecided_in_b": sum(1 for k in common if not _decided(b[k])),
                          "only_in_a": len(set(a) - common), "only_in_b": len(set(b) - common)},
        }
    return out
