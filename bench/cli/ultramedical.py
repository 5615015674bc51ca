"""`promedical-bench ultramedical`: the click command (thin; the work is in promedical.bench.ultramedical)."""

from __future__ import annotations

from pathlib import Path

import click

from promedical.bench.cli import options
from promedical.bench.cli.console import percent_cells, plural, table
from promedical.bench.cli.options import BatchSize
from promedical.bench.ultramedical.suite import COLUMNS, PROTOCOLS, TASK_NAMES


@click.command("ultramedical")
@click.option("--model", default=None,
              help="Causal LM to evaluate: a local path or Hugging Face id (loaded by lm-eval's hf or vllm model). "
                   f"{options.PATH_RULE}  [required unless --fetch-data]")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="loglik", show_default=True,
              help="loglik: lm-eval multiple_choice log-likelihood (acc, acc_norm); cot: UltraMedical's 0-shot "
                   "chain of thought with the chat template, greedy, answer letter extracted (no_answer = wrong).")
@click.option("--data-dir", default=None,
              help="Folder with one JSONL per task in the dataset's own layout (NAME.jsonl), or 'bundled' for the "
                   "bundled demo items. Default: the Hugging Face Hub.")
@click.option("--tasks", default="all", show_default=True,
              help=f"Comma-separated subset of: {', '.join(TASK_NAMES)}.")
@options.runs_output_dir
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N questions of each task.")
@click.option("--batch-size", type=BatchSize(), default="auto", show_default=True,
              help="lm-eval batch size; 'auto' is lm-eval's automatic size on CUDA and 8 on CPU.")
@options.device
@options.dtype
@click.option("--backend", type=click.Choice(["hf", "vllm"]), default="hf", show_default=True,
              help="lm-eval model type; vllm needs `pip install promedical-bench[vllm]` and a GPU.")
@click.option("--tensor-parallel-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="GPUs per model with --backend vllm.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Longest chain of thought generated (cot protocol).")
@click.option("--model-args", default=None,
              help="Extra lm-eval model arguments, KEY=VALUE,... (e.g. max_length=8192).")
@click.option("--enable-thinking", is_flag=True,
              help="cot: let a Qwen3-style model think before answering (chat-template argument enable_thinking, "
                   "answer read after </think>). Off by default: it is always passed explicitly.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the bootstrap CIs.")
@click.option("--fetch-data", "fetch_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Instead of evaluating: download the evaluation splits from the Hub and write DIR/NAME.jsonl "
                   "for a later --data-dir DIR (e.g. on an offline machine).")
def ultramedical_command(model: str | None, protocol: str, data_dir: str | None, tasks: str, output_dir: Path,
                         limit: int | None, batch_size: int | None, device: str, dtype: str, backend: str,
                         tensor_parallel_size: int, max_new_tokens: int, model_args: str | None,
                         enable_thinking: bool, seed: int, fetch_dir: Path | None) -> None:
    """UltraMedical's nine multiple-choice columns (MedQA, MedMCQA, PubMedQA, six MMLU medical subsets),
    run by lm-eval with the task configs in bench/ultramedical/.

    Writes OUTPUT_DIR/<run_id>/results.json (track `ultramedical`: per-task acc with stderr and 95% CI,
    `avg` = unweighted mean of the tasks as UltraMedical defines it, `micro_avg`), samples.jsonl, and lm-eval's
    own lm_eval_results.json and lm_eval_samples.jsonl. Results on --data-dir bundled are marked as such: the
    bundled items are a demo, not the benchmarks.

    Offline example: `promedical-bench tiny-model --output models/tiny`, then
    `promedical-bench ultramedical --model models/tiny --data-dir bundled`.
    """
    from promedical.bench.ultramedical.suite import (
        UltraMedicalConfig,
        fetch_data,
        run_ultramedical,
        select_columns,
    )

    if fetch_dir is not None:
        counts = fetch_data(fetch_dir, select_columns(tasks))
        for name, rows in counts.items():
            click.echo(f"wrote {fetch_dir / (name + '.jsonl')} ({plural(rows, 'question')})")
        return
    if model is None:
        raise click.UsageError("Missing option '--model'.")
    config = UltraMedicalConfig(
        model=model, protocol=protocol, data_dir=data_dir, tasks=tuple(tasks.split(",")),  # type: ignore[arg-type]
        output_dir=output_dir, limit=limit, batch_size=batch_size, device=device, dtype=dtype,
        backend=backend, max_new_tokens=max_new_tokens, tensor_parallel_size=tensor_parallel_size,  # type: ignore
        model_args=model_args, enable_thinking=enable_thinking, seed=seed)
    outcome = run_ultramedical(config)
    click.echo(format_ultramedical(outcome.results))
    click.echo(f"\nwrote {outcome.run_dir}")


def _cells(metric) -> tuple[str, str]:  # noqa: ANN001 - MetricValue or None
    return percent_cells(None, None, None) if metric is None else percent_cells(metric.value, metric.ci_low,
                                                                                  metric.ci_high)


def format_ultramedical(results) -> str:  # noqa: ANN001 - RunResults
    """Per-task table and the averages, every score in percent with its 95% CI over questions."""
    config, track = results.config, results.tracks["ultramedical"]
    metrics, protocol = track.metrics, config["protocol"]
    second = "acc_norm" if protocol == "loglik" else "no_answer"
    lines = [f"{results.model.id}: UltraMedical suite, protocol {protocol}, data {config['data']}"]
    if config.get("bundled_items"):
        lines.append("NOTE: computed on the bundled demo items (8 per task), not on the benchmarks; "
                     "not comparable with published figures.")
    lines.append("\npercent, 95% CI over questions")
    labels = {c.name: c.label for c in COLUMNS}
    rows = [[f"{labels[name]} ({name})", *_cells(metrics[f"{name}.acc"]), *_cells(metrics.get(f"{name}.{second}")),
             str(metrics[f"{name}.acc"].n)] for name in config["tasks"]]
    average_second = metrics.get("avg_acc_norm") if protocol == "loglik" else None
    rows.append(["avg (unweighted over tasks)", *_cells(metrics["avg"]),
                 *(_cells(average_second) if average_second else ("", "")), str(metrics["avg"].n)])
    rows.append(["micro_avg (all questions)", *_cells(metrics["micro_avg"]),
                 *_cells(metrics.get("micro_avg_acc_norm") or metrics.get("no_answer")), str(metrics["micro_avg"].n)])
    lines.append(table(["task", "acc", "95% CI", second, "95% CI", "n"], rows, right={1, 2, 3, 4, 5}))
    return "\n".join(lines)
