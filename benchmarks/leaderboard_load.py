#!/usr/bin/env python
"""Leaderboard load time: how long the app takes to read and tabulate N results files (target: 200 in < 2 s).

    python benchmarks/leaderboard_load.py                 # 200 files, 5 repeats
    python benchmarks/leaderboard_load.py --runs 1000 --output load.json

Writes N schema-valid results files shaped like full ProMedical-Bench runs (5 categories, 26 specialties, every
judge- or policy-track metric with its CI in each breakdown; a quarter of the runs have both tracks and a
tenth an UltraMedical track) into a temporary folder, then measures, each repeated and reported as the median:

1. store      scanning the folder, validating every file against the results schema and building the main
              table (``promedical.leaderboard.store``, no Streamlit, no cache)
2. app cold   a whole run of the app script in ``streamlit.testing.v1.AppTest`` with empty Streamlit
              caches — what the first visitor waits for (every file read and validated, the table,
              both charts); Python imports and AppTest's one-off start-up are excluded
3. app warm   the same with the cache filled and no file changed (every later interaction)

Not a test (pytest never collects this folder). Needs the ``ui`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from promedical.bench.results import BenchInfo, MetricValue, ModelInfo, RunResults, TrackResult, write_run

JUDGE = ["overall_accuracy", "pointwise_proficiency_accuracy", "pointwise_excellence_accuracy",
         "pointwise_safety_accuracy", "pairwise_proficiency_accuracy", "pairwise_excellence_accuracy",
         "pairwise_safety_accuracy", "veto_precision", "veto_recall", "veto_f1"]
POLICY = ["overall", "proficiency", "excellence", "safety_compliance"]
ULTRA = ["medqa.acc", "medmcqa.acc", "pubmedqa.acc", "mmlu_anatomy.acc", "mmlu_clinical_knowledge.acc",
         "mmlu_college_biology.acc", "mmlu_college_medicine.acc", "mmlu_medical_genetics.acc",
         "mmlu_professional_medicine.acc", "avg", "micro_avg"]
CATEGORIES = ["diagnosis", "treatment", "medication", "prevention_lifestyle", "emergency_triage"]
SPECIALTIES = [f"specialty_{k:02d}" for k in range(26)]


def metric(rng: np.random.Generator, n: int) -> MetricValue:
    value = float(rng.uniform(0.3, 0.95))
    half = float(rng.uniform(0.01, 0.08))
    return MetricValue(value=value, ci_low=max(0.0, value - half), ci_high=min(1.0, value + half), n=n)


def track(rng: np.random.Generator, names: list[str], breakdowns: bool) -> TrackResult:
    return TrackResult(
        metrics={m: metric(rng, 5505) for m in names},
        by_category={c: {m: metric(rng, 1100) for m in names} for c in CATEGORIES} if breakdowns else {},
        by_specialty={s: {m: metric(rng, 210) for m in names} for s in SPECIALTIES} if breakdowns else {},
        counts={"instances": 5505, "unknown": 0})


def write_results(folder: Path, runs: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for k in range(runs):
        tracks = {}
        if k % 4 != 1:
            tracks["judge"] = track(rng, JUDGE, True)
        if k % 4 in (1, 2):
            tracks["policy"] = track(rng, POLICY, True)
            tracks["policy"].judge = ModelInfo(id="rm:models/promedical-rm", identity="rm:x", kind="reward")
        if k % 10 == 3:
            tracks["ultramedical"] = track(rng, ULTRA, False)
        results = RunResults(
            run_id=f"20260101-{k:06d}-model-{k}", model=ModelInfo(id=f"org/model-{k:04d}", identity=f"hf:{k}",
                                                                  kind=["causal", "reward", "api"][k % 3]),
            bench=BenchInfo(name="promedical-bench", content_hash="0123456789abcdef", items=795), tracks=tracks,
            config={"seed": 0, "protocol": "cot"} if "ultramedical" in tracks else {"seed": 0},
            template_version="pmb-judge-v1", template_hash="de1e8a9673977e95", software={"python": "3.11"},
            started_at="2026-01-01T00:00:00+00:00", finished_at=f"2026-01-01T{k % 24:02d}:00:00+00:00")
        write_run(folder / results.run_id, results, [])


def timed(function, repeats: int) -> list[float]:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="results files to load (default 200)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=2.0, help="seconds allowed for a cold app load")
    parser.add_argument("--output", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from promedical.bench.cli.leaderboard import app_path
    from promedical.leaderboard import store

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "results"
        write_results(folder, args.runs)
        size = sum(p.stat().st_size for p in folder.glob("*/results.json"))
        os.environ[store.ENV_VAR] = str(folder)

        def load_store() -> None:
            loaded = store.load_runs(store.scan_results(folder))
            assert len(loaded.runs) == args.runs and not loaded.invalid
            store.runs_table(loaded.runs)

        at = AppTest.from_file(str(app_path()), default_timeout=120)

        def app_run() -> None:
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            assert len(next(d.value for d in at.dataframe if "rank" in d.value.columns)) == args.runs

        app_run()  # imports, script compilation and AppTest's one-off component scan, not counted
        store_times = timed(load_store, args.repeats)
        cold = timed(lambda: (st.cache_data.clear(), st.cache_resource.clear(), app_run()), args.repeats)
        warm = timed(app_run, args.repeats)

    figures = {
        "runs": args.runs, "results_bytes": size, "repeats": args.repeats,
        "store_s": statistics.median(store_times), "app_cold_s": statistics.median(cold),
        "app_warm_s": statistics.median(warm), "target_s": args.target,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "raw": {"store_s": store_times, "app_cold_s": cold, "app_warm_s": warm},
    }
    figures["pass"] = figures["app_cold_s"] < args.target
    print(f"{args.runs} results files ({size / 1e6:.1f} MB), median of {args.repeats}:")
    print(f"  store: scan + validate + table   {figures['store_s']:6.3f} s")
    print(f"  app, cold cache                  {figures['app_cold_s']:6.3f} s   (target < {args.target:.1f} s: "
          f"{'pass' if figures['pass'] else 'FAIL'})")
    print(f"  app, warm cache                  {figures['app_warm_s']:6.3f} s")
    if args.output:
        args.output.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if figures["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
