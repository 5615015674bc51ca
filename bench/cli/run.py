"""``promedical-bench run`` and ``compare``: score a model on a bench, compare two runs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from promedical.bench.cli import options
from promedical.bench.cli.console import percent_cells, plural, table
from promedical.bench.cli.options import BatchSize


@click.command("run")
@click.option("--model", required=True,
              help="Model to evaluate: a local path or Hugging Face id (reward model or causal LM, detected from "
                   "its config), or hf:PATH, rm:PATH, openai:MODEL, table:FILE (verdicts and answers fixed in a "
                   f"file). {options.PATH_RULE}")
@click.option("--bench", default="sample", show_default=True,
              help="Bench: 'sample' (bundled), a file or folder, or a Hugging Face dataset id.")
@click.option("--split", default=None, help="Split of a Hugging Face dataset.")
@click.option("--track", type=click.Choice(["judge", "policy", "all"]), default="judge", show_default=True,
              help="judge: the model judges labelled criterion-level instances; policy: the model answers and "
                   "--judge grades the answers; all: both.")
@click.option("--judge", "judge_spec", default=None,
              help="Grader for the policy track: rm:PATH, hf:PATH, openai:MODEL (OPENAI_BASE_URL, OPENAI_API_KEY), "
                   "table:FILE (verdicts fixed in a file), "
                   "or world (exact ground truth for synthetic-world prompts).")
@options.runs_output_dir
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N items (quick looks).")
@click.option("--batch-size", type=BatchSize(), default="auto", show_default=True,
              help="Inputs per forward pass; 'auto' starts at 32 and halves on CUDA out-of-memory.")
@options.device
@options.dtype
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds sampling and the bootstrap CIs.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the verdict/generation cache lives (default OUTPUT_DIR/.cache).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option("--backend", type=click.Choice(["hf", "openai", "vllm"]), default=None,
              help="Generation backend for the policy track (default: openai for openai:MODEL, else hf).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="0 = greedy decoding.")
@click.option("--enable-thinking", is_flag=True,
              help="Policy track: let a Qwen3-style model think first (chat-template argument enable_thinking); the "
                   "answer graded is what follows its </think>. Off by default, as in the shipped training recipes.")
@click.option("--tensor-parallel-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="GPUs per model with --backend vllm.")
@click.option("--gpu-memory-utilization", type=click.FloatRange(min=0.0, max=1.0, min_open=True), default=0.9,
              show_default=True, help="Share of each GPU the vLLM engine takes (weights and KV cache), with --backend "
                                      "vllm; the engine is shut down before the answers are graded.")
@click.option("--max-model-len", type=click.IntRange(min=1), default=None,
              help="Longest prompt plus answer vLLM must hold (default: the model's own limit).")
def run_command(model: str, bench: str, split: str | None, track: str, judge_spec: str | None, output_dir: Path,
                limit: int | None, batch_size: int | None, device: str, dtype: str, seed: int, cache_dir: Path | None,
                no_cache: bool, backend: str | None, max_new_tokens: int, temperature: float, enable_thinking: bool,
                tensor_parallel_size: int, gpu_memory_utilization: float, max_model_len: int | None) -> None:
    """Score a model on a bench as a judge (default) and/or as a policy.

    Writes OUTPUT_DIR/<run_id>/results.json (metrics with 95% bootstrap CIs over items) and samples.jsonl
    (every instance with its inputs, verdict and raw judge output). Verdicts and generations are cached,
    so re-running is free and an interrupted run resumes where it stopped.

    Offline example: `promedical-bench tiny-model --output models/tiny` builds a small random-weight
    checkpoint, then `promedical-bench run --model models/tiny` runs the judge track on the bundled sample.
    """
    from promedical.bench.runner import NothingMeasuredError, RunConfig, run

    config = RunConfig(model=model, bench=bench, split=split, track=track, judge=judge_spec,  # type: ignore[arg-type]
                       output_dir=output_dir, limit=limit, batch_size=batch_size, device=device, dtype=dtype,
                       seed=seed, cache_dir=cache_dir, use_cache=not no_cache, backend=backend,
                       max_new_tokens=max_new_tokens, temperature=temperature, enable_thinking=enable_thinking,
                       tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max_model_len)
    outcome = run(config)
    click.echo(format_summary(outcome.results, judge_floor(outcome.run_dir) if "judge" in outcome.results.tracks
                              else None))
    click.echo(f"\nwrote {outcome.run_dir} ({calls_phrase(outcome.model_calls, outcome.cached_calls)})")
    if outcome.nothing_measured:
        raise NothingMeasuredError(outcome.nothing_measured)


def calls_phrase(made: int, cached: int) -> str:
    """How the run's answers came: ``12 model calls``, ``12 model calls, 30 from the cache``, ``no model call:
    all 42 from the cache``."""
    if not made:
        return f"no model call: all {cached} from the cache" if cached else "no model call"
    return plural(made, "model call") + (f", {cached} from the cache" if cached else "")


@click.command("compare")
@click.argument("run_a", type=click.Path(exists=True, file_okay=False))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the paired bootstrap.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_command(run_a: str, run_b: str, seed: int, as_json: bool) -> None:
    """Paired comparison of two runs on the same bench: B − A per metric with a paired bootstrap 95% CI, and
    an item-level sign-flip permutation test (per-item difference in correct decisions for the judge track,
    in overall score for the policy track). Only instances both runs decided are compared; the drops are
    counted."""
    from promedical.bench.compare import compare_runs

    comparison = compare_runs(run_a, run_b, seed=seed)
    click.echo(json.dumps(comparison, indent=2) if as_json else format_comparison(comparison))


def judge_floor(run_dir: Path) -> dict[str, float | None]:
    """The constant-predictor floor of a finished run's judge track (``bench.metrics.constant_floor``)."""
    from promedical.bench.metrics import constant_floor
    from promedical.bench.results import JudgeSample, read_samples

    return constant_floor([s for s in read_samples(run_dir) if isinstance(s, JudgeSample)])


def format_summary(results, floors: dict[str, float | None] | None = None) -> str:  # noqa: ANN001 - RunResults
    """The end-of-run table: every metric in percent with its 95% CI and n, then the track's counts; with
    ``floors`` (:func:`judge_floor`), the judge track gets a column with each metric's constant-predictor floor."""
    lines = [f"{results.model.id} ({results.model.kind}) on {results.bench.name} "
             f"({plural(results.bench.items, 'item')}, bench {results.bench.content_hash})"]
    for track, result in results.tracks.items():
        judged_by = f", graded by {result.judge.id}" if result.judge else ""
        floor = floors if track == "judge" else None
        lines.append(f"\n{track} track{judged_by}  (percent, 95% CI over items)")
        rows = [[name, *percent_cells(metric.value, metric.ci_low, metric.ci_high), str(metric.n)]
                + ([percent_cells(floor.get(name), None, None)[0]] if floor else [])
                for name, metric in result.metrics.items()]
        headers = ["metric", "percent", "95% CI", "n"] + (["floor"] if floor else [])
        lines.append(table(headers, rows, right={1, 2, 3, 4}))
        if floor:
            lines.append("  floor: a constant judge, always the majority gold label of each mode and criterion type")
        lines.append("  counts: " + ", ".join(f"{k}={v}" for k, v in result.counts.items()))
        if result.met_share:
            lines.append(met_share_line(result.met_share))
    return "\n".join(lines)


def met_share_line(shares: dict[str, float]) -> str:
    """The share of "met" verdicts per criterion type, and a flag on each type the judge gave one verdict."""
    from promedical.bench.metrics import ONE_VERDICT_SHARE, one_verdict_types

    line = "  verdicts met: " + ", ".join(f"{kind} {100 * share:.0f}%" for kind, share in shares.items())
    flagged = one_verdict_types(shares)
    if flagged:
        line += (f"  ! one verdict to >= {100 * ONE_VERDICT_SHARE:.0f}% of "
                 + ", ".join(f"{kind} ({verdict})" for kind, verdict in flagged.items())
                 + ": a constant predictor there")
    return line


def format_comparison(comparison: dict) -> str:
    """B − A per metric in percentage points with its paired CI, then the paired test and what was compared."""
    lines = [f"B − A: {comparison['run_b']} − {comparison['run_a']} (bench {comparison['bench']})"]
    for track, entry in comparison["tracks"].items():
        lines.append(f"\n{track} track  (percentage points, paired 95% CI)")
        rows = [[name, *percent_cells(diff["value"], diff["ci_low"], diff["ci_high"], signed=True),
                 "" if diff["value"] is None else str(diff["n"])] for name, diff in entry["differences"].items()]
        lines.append(table(["metric", "B − A", "95% CI", "n"], rows, right={1, 2, 3}))
        test, counts = entry["paired_test"], entry["instances"]
        lines.append(f"  {test['name']} on {test['tested']}: p = {test['p_value']:.4g} "
                     f"({plural(test['items'], 'item')})")
        lines.append(f"  compared {counts['compared']} instances both runs decided; dropped "
                     f"{counts['undecided_in_a']} undecided in A, {counts['undecided_in_b']} undecided in B, "
                     f"{counts['only_in_a']} only in A, {counts['only_in_b']} only in B")
    return "\n".join(lines)
