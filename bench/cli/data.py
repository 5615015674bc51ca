"""``promedical-bench validate``, ``data stats|convert|synth`` and ``tiny-model``: bench data in and out."""

from __future__ import annotations

import json
from pathlib import Path

import click

from promedical.bench.cli.console import plural
from promedical.bench.data.synthetic import P_VIOLATION, SPLITS
from promedical.bench.datasets import FORMATS, load_bench
from promedical.bench.io import write_jsonl_atomic
from promedical.bench.summary import bench_stats, format_stats


@click.command()
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
        f"OK {source}: {plural(stats['items'], 'item')}, "
        f"{plural(stats['criteria']['total'], 'criterion', 'criteria')}, "
        f"{plural(stats['responses'], 'response')}, {stats['labels']['pointwise']} pointwise and "
        f"{plural(stats['labels']['pairwise'], 'pairwise label')}"
    )


@click.group()
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
    click.echo(f"wrote {plural(count, 'item')} to {output}")


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
    click.echo(f"wrote {plural(count, f'{split} item')} (seed {seed}) to {output}")


@click.command("tiny-model")
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
