"""``promedical-bench adjudicate export|import|merge`` and ``promedical-bench agreement``: thin click commands over
:mod:`promedical.bench.adjudication` and :mod:`promedical.bench.agreement`.

Refusals (:class:`~promedical.bench.adjudication.errors.AdjudicationError`,
:class:`~promedical.bench.agreement.AgreementError`) print one ``error:`` line per problem and exit 2 with
nothing written; ``promedical.bench.cli.main`` does the printing.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from promedical.bench.cli.console import plural
from promedical.bench.schema import CRITERION_TYPES

# The work modules (numpy, openpyxl, scikit-learn, ...) load only when a command runs, so that the console
# script starts fast; these mirror their constants (tests/test_adjudication.py checks that they agree).
LEVELS = ("nominal", "ordinal", "interval", "ratio")  # agreement.LEVELS
TASKS = ("pointwise", "pairwise")  # adjudication.units.TASKS
N_BOOTSTRAP = 2000  # statistics.N_BOOTSTRAP


@click.group("adjudicate")
def adjudicate() -> None:
    """Blinded physician adjudication: export rating packets, import the filled ones, merge final labels.

    \b
    1. adjudicate export   one packet per rater (.xlsx and .csv) and a key file for the study lead
    2. (raters fill the rating column of their packet)
    3. adjudicate import   check the packets, write ratings, agreement and a disagreement packet
    4. (a senior adjudicator fills the disagreement packet)
    5. adjudicate import   with the adjudication key: final labels in bench format
    6. adjudicate merge    write the final labels into a bench file

    The whole workflow, with what each statistic means: docs/adjudication.md.
    """


@adjudicate.command("export")
@click.argument("run_args", metavar="[RUN_DIR]...", nargs=-1)
@click.option("--run", "runs", multiple=True, metavar="RUN_DIR",
              help="A run directory whose policy-track answers are rated (repeatable; one run per model). Further "
                   "RUN_DIRs may follow without --run.")
@click.option("--bench", "bench", default=None, metavar="PATH",
              help="Rate a bench file's own candidate responses instead of runs.")
@click.option("--raters", type=int, required=True, help="Number of raters K (one packet each).")
@click.option("--overlap", type=int, default=2, show_default=True,
              help="Raters per unit (at least 2; K = fully crossed, every rater rates everything).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="New (or empty) folder for xlsx/, csv/ and key.json; written all at once or not at all.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the design: which raters rate a unit, row order per packet, pairwise sides.")
@click.option("--task", type=click.Choice(["pointwise", "pairwise", "both"]), default="both", show_default=True,
              help="pointwise: does a response meet the criterion; pairwise: which of two responses meets it "
                   "better (items with at least two responses).")
@click.option("--criterion-type", "criterion_types", multiple=True, type=click.Choice(CRITERION_TYPES),
              help="Only criteria of this type (repeatable; default all).")
@click.option("--max-units", type=click.IntRange(min=1), default=None,
              help="Rate a seeded random subset of this many units.")
@click.option("--rater-names", default=None, metavar="NAME,...",
              help="K comma-separated names (letters, digits, . _ -) for the packets; default rater-1..rater-K.")
def export_command(run_args: tuple[str, ...], runs: tuple[str, ...], bench: str | None, raters: int, overlap: int,
                   output_dir: Path, seed: int, task: str, criterion_types: tuple[str, ...], max_units: int | None,
                   rater_names: str | None) -> None:
    """Write one blinded rating packet per rater and the study key.

    The units are the policy answers of the runs (different models on the same bench) or a bench's own
    responses, each against each rubric criterion (pointwise) and, per criterion, each pair of responses
    (pairwise). Packets carry no model name, path, run id or response id; rows come in a different random
    order per rater and pairwise sides are randomised per row. KEY (OUTPUT_DIR/key.json) maps rows back and
    signs each row (HMAC-SHA256): keep it, and do not send it to the raters.
    """
    from promedical.bench.adjudication.packets import export_study
    from promedical.bench.adjudication.sources import load_bench_responses, load_runs

    all_runs = list(runs) + list(run_args)
    if bool(all_runs) == bool(bench):
        raise click.UsageError("give --run RUN_DIR... or --bench PATH (one of the two)")
    source = load_bench_responses(bench) if bench else load_runs(all_runs)
    names = [n.strip() for n in rater_names.split(",")] if rater_names else None
    tasks = TASKS if task == "both" else (task,)
    result = export_study(source, output_dir, raters, overlap=overlap, seed=seed, tasks=tasks,
                          criterion_types=criterion_types or None, max_units=max_units, rater_names=names)
    units = ", ".join(f"{n} {t}" for t, n in sorted(result.units.items()))
    click.echo(f"exported {plural(sum(result.units.values()), 'unit')} ({units}) for {raters} raters, {overlap} per "
               f"unit (seed {seed})")
    for packet in result.packets:
        click.echo(f"  {packet['rater']:<14} packet {packet['packet_id']:<12} {packet['rows']:>5} rows  "
                   f"{packet['xlsx']}  {packet['csv']}")
    shared = ", ".join(f"{pair} {n}" for pair, n in sorted(result.pair_overlap.items()))
    click.echo(f"units shared per rater pair: {shared}")
    if result.skipped:
        click.echo("skipped: " + ", ".join(f"{k}={v}" for k, v in result.skipped.items()))
    if result.warnings:
        click.echo(f"{len(result.warnings)} blinding warning(s) above: review those responses before sending packets")
    click.echo(f"key: {result.key_path} (keep it; never send it to raters: it unblinds the packets)")


@adjudicate.command("import")
@click.option("--packets", "packets_dir", type=click.Path(path_type=Path), required=True,
              help="Folder holding the filled packets (.xlsx or .csv, one per rater, any file names).")
@click.option("--key", "key_path", type=click.Path(path_type=Path), required=True,
              help="The export's key.json, or the adjudication-key.json of a disagreement queue.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Ratings file (.csv or .jsonl, long format); with an adjudication key: final labels (.jsonl).")
@click.option("--queue-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the adjudicator's packet and key go (default: OUTPUT_STEM-adjudication/ beside OUTPUT).")
@click.option("--partial", is_flag=True, help="Import although some raters' packets have not come back.")
@click.option("--min-ratings", type=click.IntRange(min=1), default=2, show_default=True,
              help="A unit is agreed when all its ratings agree and there are at least this many; every other "
                   "unit goes to the adjudicator.")
@click.option("--hide-ratings", is_flag=True,
              help="Do not show the adjudicator the first-round ratings and comments (blind adjudication).")
@click.option("--level", type=click.Choice(LEVELS), default="nominal", show_default=True,
              help="Level of measurement for Krippendorff's alpha in the agreement statistics.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the bootstrap CIs and the queue order.")
@click.option("--n-boot", type=click.IntRange(min=0), default=N_BOOTSTRAP, show_default=True,
              help="Bootstrap replicates for the CIs (0: no CIs).")
def import_command(packets_dir: Path, key_path: Path, output: Path, queue_dir: Path | None, partial: bool,
                   min_ratings: int, hide_ratings: bool, level: str, seed: int, n_boot: int) -> None:
    """Check filled packets against the key and unblind them.

    Refuses, one line per problem and writing nothing: packets from another export or study, the same
    rater's packet twice, unknown, missing, moved or duplicate row ids, edited prompt, criterion or response
    cells, and ratings outside the allowed values. Unrated rows are allowed and counted.

    With the export's key it writes OUTPUT (long format: unit, rater, value, task, criterion type, models,
    ...), OUTPUT_STEM.agreement.json, and a disagreement queue: a packet for a senior adjudicator and its
    key. Importing that packet with that key writes the final labels (bench JSONL) to OUTPUT.
    """
    from promedical.bench.adjudication.workflow import import_study
    from promedical.bench.agreement import format_report

    result = import_study(packets_dir, key_path, output, queue_dir=queue_dir, partial=partial,
                          min_ratings=min_ratings, hide_ratings=hide_ratings, level=level, seed=seed, n_boot=n_boot)
    counts = result.counts
    if result.kind == "adjudication":
        click.echo(f"resolved {counts['agreed'] + counts['adjudicated']} of {counts['units']} units "
                   f"({counts['agreed']} agreed in the first round, {counts['adjudicated']} adjudicated, "
                   f"{counts['unresolved']} unresolved)")
        click.echo(f"wrote final labels for {plural(counts['items'], 'item')} to {result.outputs['final_labels']}")
        return
    missing = f", {counts['packets_not_returned']} packet(s) not returned" if counts["packets_not_returned"] else ""
    click.echo(f"read {plural(counts['packets'], 'packet')}: {plural(counts['rated'], 'row')} rated, "
               f"{counts['unrated']} unrated{missing}")
    click.echo(format_report(result.agreement or {}, f"\nagreement ({level}, 95% bootstrap CI over units)"))
    click.echo(f"\n{counts['agreed']} of {counts['units']} units agreed; {counts['queued']} go to the adjudicator")
    click.echo(f"wrote {result.outputs['ratings']} and {result.outputs['agreement']}")
    if result.queued:
        click.echo(f"adjudicator's packet: {result.outputs['queue_xlsx']} (or {result.outputs['queue_csv']}); "
                   f"import it with --key {result.outputs['queue_key']}")
    else:
        click.echo(f"nothing to adjudicate: final labels in {result.outputs['final_labels']}")


@adjudicate.command("merge")
@click.option("--bench", "bench", required=True, metavar="PATH", help="The bench file to merge into.")
@click.option("--labels", "labels", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Final labels (bench JSONL) from `adjudicate import` with an adjudication key.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Bench JSONL to write, atomically (may be the bench file itself).")
@click.option("--replace", is_flag=True, help="Overwrite labels the bench already has with a different value.")
def merge_command(bench: str, labels: Path, output: Path, replace: bool) -> None:
    """Merge adjudicated final labels into a bench file.

    Labelled items must be in the bench with the same prompt and criteria; responses the bench lacks (a
    run's answers) are added with their model; a label that contradicts one already in the bench is refused
    unless --replace. Nothing is written when anything is refused.
    """
    from promedical.bench.adjudication.workflow import merge_labels

    result = merge_labels(bench, labels, output, replace=replace)
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(result.counts.items()))
    click.echo(f"merged into {result.output}: {counts}")


@click.command("agreement")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--level", type=click.Choice(LEVELS), default="nominal", show_default=True,
              help="Level of measurement for Krippendorff's alpha; ordinal adds weighted kappas, interval and "
                   "ratio add the Shrout & Fleiss ICCs.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {statistic: {value, ci_low, ci_high, n_units, n_raters}} (per group when grouped).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the bootstrap over units.")
@click.option("--n-boot", type=click.IntRange(min=0), default=N_BOOTSTRAP, show_default=True,
              help="Bootstrap replicates for the 95% CIs (0: no CIs).")
@click.option("--group-by", multiple=True, metavar="COLUMN",
              help="Group by this column (repeatable; default: task and criterion_type when present).")
@click.option("--no-groups", is_flag=True,
              help="Pool all rows, whatever the columns, into one set of statistics per task: pointwise and "
                   "pairwise ratings are never pooled together.")
@click.option("--order", default=None, metavar="LOWEST,...,HIGHEST",
              help="Order of text ratings for ordinal and higher levels (known: not_met < met; b < tie < a).")
@click.option("--judge-run", type=click.Path(path_type=Path), default=None,
              help="Compare this run's judge verdicts with --labels instead of computing inter-rater agreement.")
@click.option("--labels", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --judge-run: adjudicated labels (bench JSONL) or long-format ratings (majority label).")
@click.option("--ratings", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --judge-run: the physicians' long-format ratings, to score each one leave-one-out.")
@click.option("--verdicts", type=click.Choice(["judge", "policy"]), default=None,
              help="With --judge-run: use the judge track (the model judging) or the policy track's grader "
                   "(default: judge when the run has it).")
def agreement_command(file: Path | None, level: str, as_json: bool, seed: int, n_boot: int, group_by: tuple[str, ...],
                      no_groups: bool, order: str | None, judge_run: Path | None, labels: Path | None,
                      ratings: Path | None, verdicts: str | None) -> None:
    """Inter-rater agreement of long-format ratings, with seeded 95% bootstrap CIs over units.

    FILE is CSV (with a header) or JSONL with columns unit, rater, value and any others, such as the output
    of `adjudicate import`; an empty value is an unrated row. Reports percent agreement, Krippendorff's
    alpha, Cohen's kappa (two raters) or Light's kappa (more), Fleiss' kappa, Gwet's AC1, and for
    interval/ratio data the Shrout & Fleiss ICCs — per task and criterion type when those columns exist.

    With --judge-run RUN_DIR --labels FILE it instead scores a judge against adjudicated labels (accuracy,
    Cohen's kappa, macro-F1) and puts each physician, scored leave-one-out against the others, beside it.
    """
    from promedical.bench.agreement import format_report, long_agreement, read_long

    if judge_run is not None:
        from promedical.bench.adjudication.report import format_judge_report, judge_agreement

        if file is not None or labels is None:
            raise click.UsageError("with --judge-run give --labels FILE (and optionally --ratings FILE), not FILE")
        report = judge_agreement(judge_run, labels, ratings, verdicts=verdicts, seed=seed, n_boot=n_boot)
        click.echo(json.dumps(report, indent=2) if as_json else format_judge_report(report))
        return
    if file is None:
        raise click.UsageError("give a ratings FILE, or --judge-run RUN_DIR --labels FILE")
    if labels is not None or ratings is not None or verdicts is not None:
        raise click.UsageError("--labels, --ratings and --verdicts go with --judge-run")
    if no_groups and group_by:
        raise click.UsageError("--no-groups and --group-by exclude each other")
    rows, columns = read_long(file)
    ordered = [v.strip() for v in order.split(",")] if order else None
    grouping = [] if no_groups else list(group_by) or None
    report = long_agreement(rows, level=level, group_by=grouping, order=ordered, seed=seed, n_boot=n_boot,
                            columns=columns)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(format_report(report, f"{file}: {len(rows)} ratings, level {level} (95% bootstrap CI over units)"))
