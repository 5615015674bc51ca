"""``promedical-bench`` command line. Thin: parsing and printing only; the work lives in the modules.

Exit codes: 0 success, 2 bad input or usage, 1 anything else. Errors are one line; ``--debug`` adds the
traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from importlib.metadata import version
from pathlib import Path

import click

from promedical.bench.cli_options import BatchSize
from promedical.bench.data.synthetic import P_VIOLATION, SPLITS
from promedical.bench.datasets import FORMATS, BenchDataError, load_bench
from promedical.bench.io import write_jsonl_atomic
from promedical.bench.judging import JudgeError
from promedical.bench.models.api import ApiError
from promedical.bench.summary import bench_stats, format_stats

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2

@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version("promedical-bench"), "--version", prog_name="promedical-bench")
@click.option("--debug", is_flag=True, help="Show the full traceback when a command fails.")
def cli(debug: bool) -> None:
    """Evaluate and align medical LLMs against fine-grained clinical rubrics with a safety veto
    (ProMedical, Geng et al., ACL 2026).

    Start with `promedical-bench validate sample` and `promedical-bench data stats sample` to see the
    bundled sample bench.
    """


@cli.command()
@click.argument("source", metavar="PATH")
@click.option("--format", "data_format", type=click.Choice(FORMATS), default="promedical", show_default=True,
              help="Input layout: promedical bench items, or HealthBench JSONL (converted on the fly).")
@click.option("--split", default=None,
              help="Split to read from a Hugging Face dataset (default: the only one, or 'test').")
def validate(source: str, data_format: str, split: str | None) -> None:
    """Check that PATH is valid bench data.

    PATH is a .jsonl/.json/.parquet file, a folder of them, a Hugging Face dataset id, 'sample' (the
    bundled sample bench), 'calibration' (the bundled calibration set) or 'test' (the locked test set).
    Prints a one-line summary and exits 0 when every record is valid; otherwise prints
    `PATH:LINE: FIELD: problem` for the first bad record (and how many more were bad) and exits 2.
    """
    items = load_bench(source, split=split, format=data_format)  # type: ignore[arg-type]
    stats = bench_stats(items)
    click.echo(
        f"OK {source}: {stats['items']} items, {stats['criteria']['total']} criteria, "
        f"{stats['responses']} responses, {stats['labels']['pointwise']} pointwise and "
        f"{stats['labels']['pairwise']} pairwise labels"
    )


@cli.group()
def data() -> None:
    """Inspect bench data and generate synthetic clinical-world data."""


@data.command("stats")
@click.argument("source", metavar="PATH")
@click.option("--format", "data_format", type=click.Choice(FORMATS), default="promedical", show_default=True,
              help="Input layout (see `validate`).")
@click.option("--split", default=None, help="Split to read from a Hugging Face dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def data_stats(source: str, data_format: str, split: str | None, as_json: bool) -> None:
    """Summarise PATH: items, criteria by type, categories, specialties, scenarios, responses and labels.

    PATH is a .jsonl/.json/.parquet file, a folder of them, a Hugging Face dataset id, or 'sample'.
    """
    stats = bench_stats(load_bench(source, split=split, format=data_format))  # type: ignore[arg-type]
    click.echo(json.dumps(stats, indent=2) if as_json else format_stats(stats, title=source))


@data.command("convert")
@click.argument("source", metavar="PATH")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), required=True,
              help="Bench JSONL file to write (atomically; nothing is written if any record is bad).")
@click.option("--format", "data_format", type=click.Choice(FORMATS), default="promedical", show_default=True,
              help="Input layout; 'healthbench' imports HealthBench JSONL (see data_cards/healthbench_import.md).")
@click.option("--split", default=None, help="Split to read from a Hugging Face dataset.")
def data_convert(source: str, output: str, data_format: str, split: str | None) -> None:
    """Validate PATH and write it as bench JSONL (e.g. import HealthBench, or save a Hub dataset locally).

    Missing proficiency weights are filled in (equal weights), so the output is fully explicit.
    """
    items = load_bench(source, split=split, format=data_format)  # type: ignore[arg-type]
    count = write_jsonl_atomic(output, items)
    click.echo(f"wrote {count} items to {output}")


@data.command("synth")
@click.option("--instructions", "n_instructions", type=click.IntRange(min=1), required=True,
              help="Number of instructions (bench items) to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--split", type=click.Choice(SPLITS), default="train", show_default=True,
              help="train: training scenarios; heldout: held-out scenarios (disjoint by construction); "
                   "heldout_prompts: training scenarios asked with the one prompt reserved from training.")
@click.option("--violation-rate", type=click.FloatRange(0.0, 1.0), default=P_VIOLATION, show_default=True,
              help="Probability that a response violates each of its safety criteria.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), required=True,
              help="JSONL file to write (atomically).")
def data_synth(n_instructions: int, seed: int, split: str, violation_rate: float, output: str) -> None:
    """Write labelled items from the deterministic synthetic clinical world.

    Every response's criterion satisfaction is known by construction, so the output is a labelled bench
    (held-out split) or a criterion-level preference set (train split) in the bench format.
    """
    from promedical.bench.data.synthetic import iter_synthetic

    count = write_jsonl_atomic(output, iter_synthetic(n_instructions, seed, split, violation_rate))  # type: ignore[arg-type]
    click.echo(f"wrote {count} {split} items (seed {seed}) to {output}")


@cli.command("run")
@click.option("--model", required=True,
              help="Model to evaluate: a local path or Hugging Face id (reward model or causal LM, detected from "
                   "its config), or hf:PATH, rm:PATH, openai:MODEL, table:FILE (verdicts and answers fixed in a "
                   "file).")
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
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Runs are written to OUTPUT_DIR/<run_id>/.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N items (quick looks).")
@click.option("--batch-size", type=BatchSize(), default="auto", show_default=True,
              help="Inputs per forward pass; 'auto' starts at 32 and halves on CUDA out-of-memory.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
              show_default=True, help="auto: bfloat16 on CUDA, float32 on CPU.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds sampling and the bootstrap CIs.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the verdict/generation cache lives (default OUTPUT_DIR/.cache).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option("--backend", type=click.Choice(["hf", "openai", "vllm"]), default=None,
              help="Generation backend for the policy track (default: openai for openai:MODEL, else hf).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="0 = greedy decoding.")
@click.option("--tensor-parallel-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="GPUs per model with --backend vllm.")
def run_command(model: str, bench: str, split: str | None, track: str, judge_spec: str | None, output_dir: Path,
                limit: int | None, batch_size: int | None, device: str, dtype: str, seed: int, cache_dir: Path | None,
                no_cache: bool, backend: str | None, max_new_tokens: int, temperature: float,
                tensor_parallel_size: int) -> None:
    """Score a model on a bench as a judge (default) and/or as a policy.

    Writes OUTPUT_DIR/<run_id>/results.json (metrics with 95% bootstrap CIs over items) and samples.jsonl
    (every instance with its inputs, verdict and raw judge output). Verdicts and generations are cached,
    so re-running is free and an interrupted run resumes where it stopped.

    Offline example: `promedical-bench tiny-model --output models/tiny` builds a small random-weight
    checkpoint, then `promedical-bench run --model models/tiny` runs the judge track on the bundled sample.
    """
    from promedical.bench.runner import RunConfig, run

    config = RunConfig(model=model, bench=bench, split=split, track=track, judge=judge_spec,  # type: ignore[arg-type]
                       output_dir=output_dir, limit=limit, batch_size=batch_size, device=device, dtype=dtype,
                       seed=seed, cache_dir=cache_dir, use_cache=not no_cache, backend=backend,
                       max_new_tokens=max_new_tokens, temperature=temperature,
                       tensor_parallel_size=tensor_parallel_size)
    outcome = run(config)
    click.echo(format_summary(outcome.results))
    click.echo(f"\nwrote {outcome.run_dir} ({outcome.model_calls} model calls, the rest from cache)")


@cli.command("compare")
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

    comparison = compare_runs(run_a, run_b, seed)
    click.echo(json.dumps(comparison, indent=2) if as_json else format_comparison(comparison))


@cli.command("tiny-model")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write the checkpoint to.")
@click.option("--kind", type=click.Choice(["causal", "reward"]), default="causal", show_default=True,
              help="causal: a chat causal LM (judge by prompting, or policy); reward: a 1-label reward model.")
@click.option("--seed", type=int, default=0, show_default=True)
def tiny_model(output: Path, kind: str, seed: int) -> None:
    """Build a tiny random-weight Qwen3 checkpoint with a tokenizer trained on bundled text.

    For trying the pipeline offline: it judges at chance level. No download is involved.
    """
    from promedical.bench.tiny import build_tiny_model

    build_tiny_model(output, kind=kind, seed=seed)  # type: ignore[arg-type]
    click.echo(f"wrote a tiny {kind} checkpoint to {output}")


def _fmt(metric: dict | None) -> str:
    if not metric or metric.get("value") is None:
        return "n/a"
    low, high = metric.get("ci_low"), metric.get("ci_high")
    interval = f" [{100 * low:.1f}, {100 * high:.1f}]" if low is not None and high is not None else ""
    return f"{100 * metric['value']:.1f}{interval}"


def format_summary(results) -> str:  # noqa: ANN001 - RunResults, imported lazily
    """The end-of-run table: every metric in percent with its 95% CI and n."""
    lines = [f"{results.model.id} ({results.model.kind}) on {results.bench.name} "
             f"({results.bench.items} items, bench {results.bench.content_hash})"]
    for track, result in results.tracks.items():
        judged_by = f", graded by {result.judge.id}" if result.judge else ""
        lines.append(f"\n{track} track{judged_by}  (percent, 95% CI over items)")
        for name, metric in result.metrics.items():
            lines.append(f"  {name:<34} {_fmt(metric.model_dump()):>22}   n={metric.n}")
        lines.append("  counts: " + ", ".join(f"{k}={v}" for k, v in result.counts.items()))
    return "\n".join(lines)


def format_comparison(comparison: dict) -> str:
    lines = [f"B − A: {comparison['run_b']} − {comparison['run_a']} (bench {comparison['bench']})"]
    for track, entry in comparison["tracks"].items():
        lines.append(f"\n{track} track  (percentage points, paired 95% CI)")
        for name, diff in entry["differences"].items():
            if diff["value"] is None:
                lines.append(f"  {name:<34} {'n/a':>24}")
                continue
            lines.append(f"  {name:<34} {100 * diff['value']:+7.1f} [{100 * diff['ci_low']:+.1f}, "
                         f"{100 * diff['ci_high']:+.1f}]   n={diff['n']}")
        test, counts = entry["paired_test"], entry["instances"]
        lines.append(f"  {test['name']} on {test['tested']}: p = {test['p_value']:.4g} ({test['items']} items)")
        lines.append(f"  compared {counts['compared']} instances both runs decided; dropped "
                     f"{counts['undecided_in_a']} undecided in A, {counts['undecided_in_b']} undecided in B, "
                     f"{counts['only_in_a']} only in A, {counts['only_in_b']} only in B")
    return "\n".join(lines)


from promedical.bench.adjudication_cli import adjudicate, agreement_command  # noqa: E402

cli.add_command(adjudicate)
cli.add_command(agreement_command)

from promedical.alignment.commands import (  # noqa: E402
    reproduce_command,
    train_grpo_command,
    train_rm,
    train_sft_command,
)

for _command in (train_rm, train_sft_command, train_grpo_command, reproduce_command):
    cli.add_command(_command)

from promedical.bench.leaderboard_cli import leaderboard  # noqa: E402

cli.add_command(leaderboard)

from promedical.bench.ultramedical_cli import ultramedical_command  # noqa: E402

cli.add_command(ultramedical_command)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the CLI and map failures to one-line errors and exit codes."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    _quiet_libraries()
    try:
        cli.main(args=args, prog_name="promedical-bench", standalone_mode=False)
        return EXIT_OK
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return EXIT_FAILURE
    except click.ClickException as error:
        usage = isinstance(error, click.UsageError)
        _report(f"{error.format_message()} (see --help)" if usage else error.format_message(), debug)
        return EXIT_BAD_INPUT if isinstance(error, click.UsageError | click.BadParameter) else error.exit_code
    except (BenchDataError, JudgeError) as error:
        _report(str(error), debug)
        return EXIT_BAD_INPUT
    except ApiError as error:  # the API could not be used at all: a runtime failure, not bad input
        _report(str(error), debug)
        return EXIT_FAILURE
    except Exception as error:  # the one place that turns unexpected failures into one readable line
        _report(f"{type(error).__name__}: {error}", debug)
        return EXIT_FAILURE


def _quiet_libraries() -> None:
    """Keep library chatter (weight-loading bars, advisory warnings) off the terminal; ours stays."""
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("transformers", "datasets", "huggingface_hub", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _report(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)


if __name__ == "__main__":
    sys.exit(main())
