"""The results store the leaderboard reads: results files, their samples, agreement files and reported rows.

Streamlit-free, so it is tested and benchmarked on its own; ``app.py`` wraps the loaders in ``st.cache_data``
keyed on each file's modification time and size.

What is read, and nothing else (results files are the one interface between evaluation and display):

- ``<dir>/**/<run_id>/results.json`` — every file is validated against :class:`RunResults`; a file that
  does not validate (or cannot be read) is listed with its problem, never a crash.
- ``samples.jsonl`` beside a results file — only when a run is opened for drill-down or comparison.
- ``*.agreement.json`` — agreement statistics written by ``adjudicate import`` (``docs/adjudication.md``).
- ``reported.json`` shipped with this package — figures reported by papers, never mixed with measured ones.

Folders whose name starts with ``.`` (the run cache, temporary files) are skipped, and the search goes at
most :data:`MAX_DEPTH` folders deep.

All metric values in the tables are percent (the results files hold fractions in [0, 1]).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from promedical.bench.results import (
    RESULTS_FILE,
    SAMPLES_FILE,
    JudgeSample,
    PolicySample,
    RunResults,
    UltraMedicalSample,
    parse_results,
    parse_sample,
)

ENV_VAR = "PROMEDICAL_RESULTS_DIR"
DEFAULT_DIR = "results"
AGREEMENT_SUFFIX = ".agreement.json"
MAX_DEPTH = 4
#: Tracks in display order; any other track a results file has comes after these, alphabetically.
TRACK_ORDER = ("judge", "policy", "ultramedical")
#: The metrics shown by default (a metric not listed here is still available in the column picker).
HEADLINE = {
    "judge": ("overall_accuracy", "pointwise_proficiency_accuracy", "pointwise_safety_accuracy",
              "pairwise_safety_accuracy", "veto_f1"),
    "policy": ("overall", "proficiency", "excellence", "safety_compliance"),
}
def is_headline(track: str, metric: str) -> bool:
    """Shown by default: the tracks' headline metrics; for UltraMedical the averages and each task's accuracy
    (not the acc_norm or no-answer columns); every metric of any other track."""
    if track in HEADLINE:
        return metric in HEADLINE[track]
    if track == "ultramedical":
        return metric in ("avg", "micro_avg") or metric.endswith(".acc")
    return True


#: Scatter-plot defaults per track: (accuracy metric, safety metric).
ACCURACY_SAFETY = {
    "judge": ("overall_accuracy", "pairwise_safety_accuracy"),
    "policy": ("proficiency", "safety_compliance"),
}
METRIC_HELP = {
    "overall_accuracy": "Judge track: accuracy over all criterion-level instances (pointwise and pairwise).",
    "pointwise_proficiency_accuracy": "Judge track: pointwise met/not-met accuracy on proficiency (S1) criteria.",
    "pointwise_excellence_accuracy": "Judge track: pointwise met/not-met accuracy on excellence (S2) criteria.",
    "pointwise_safety_accuracy": "Judge track: pointwise met/not-met accuracy on safety (S3, veto) criteria.",
    "pairwise_proficiency_accuracy": "Judge track: which of two responses better meets a proficiency criterion.",
    "pairwise_excellence_accuracy": "Judge track: which of two responses better meets an excellence criterion.",
    "pairwise_safety_accuracy": "Judge track: which of two responses better meets a safety criterion.",
    "veto_precision": "Judge track: of the safety violations the judge flagged, the share that are real.",
    "veto_recall": "Judge track: of the real safety violations, the share the judge flagged.",
    "veto_f1": "Judge track: harmonic mean of veto precision and recall (a violation is the positive class).",
    "overall": "Policy track: mean of [S3 = 0]·min(S1 + α·S2, 1+β)/(1+β); a safety violation scores 0.",
    "proficiency": "Policy track: mean S1, the weighted share of proficiency criteria the answers meet.",
    "excellence": "Policy track: mean share of excellence (bonus) criteria the answers meet.",
    "safety_compliance": "Policy track: share of answers that violate no safety criterion (S3 = 0).",
    "avg": "UltraMedical: unweighted mean of the nine task accuracies (UltraMedical's definition).",
    "micro_avg": "UltraMedical: accuracy over all questions of all tasks pooled.",
}
INFO_HELP = {
    "rank": "Rank among the measured runs shown, by the 'Rank by' metric (ties share a rank). Reported rows "
            "are never ranked.",
    "model": "The model as given to `promedical-bench run` (a Hugging Face id, a local path or openai:NAME).",
    "kind": "causal: a causal LM judging by prompting; reward: a reward model r(x, c, y); api: an "
            "OpenAI-compatible API; policy: a model evaluated on its answers.",
    "tracks": "Which evaluations the run contains: judge, policy, ultramedical.",
    "judge": "Who graded the policy answers (policy track); in the judge track the model itself is the judge.",
    "bench": "Bench name as given to the run.",
    "bench_hash": "Content hash of the bench items the run used: only runs with the same hash are comparable.",
    "items": "Bench items the run used (after --limit).",
    "protocol": "How the numbers were produced: the judge prompt template version, or the UltraMedical protocol "
                "(loglik or cot).",
    "date": "When the run finished (UTC).",
    "run_id": "The run's folder name.",
    "source": "measured: a results file in the results folder; reported: a figure copied from a paper.",
}


#: The descriptive columns of a row, in order (``key`` identifies the row and is never displayed).
INFO_COLUMNS = ["key", "source", "model", "kind", "tracks", "judge", "bench", "bench_hash", "items", "protocol",
                "date", "run_id"]


def track_sort_key(track: str) -> tuple[int, str]:
    return (TRACK_ORDER.index(track) if track in TRACK_ORDER else len(TRACK_ORDER), track)


def metric_column(track: str, metric: str) -> str:
    """The table column of a metric: ``track · metric`` (its CI is in ``track · metric · CI``)."""
    return f"{track} · {metric}"


def ci_column(track: str, metric: str) -> str:
    return f"{metric_column(track, metric)} · CI"


def metric_help(track: str, metric: str) -> str:
    """Column help (rendered as Markdown by Streamlit, so it never quotes names taken from results files)."""
    text = METRIC_HELP.get(metric) if track in TRACK_ORDER else None
    if text is None:
        text = {"ultramedical": "UltraMedical: a task's accuracy (or an average) from the run's ultramedical track.",
                }.get(track, "A metric from the results files.")
    return text + " Percent; the CI column holds its 95% bootstrap CI over items."


# --------------------------------------------------------------------------------------------------- files

Stamp = tuple[str, int, int]
"""A file as the caches see it: (absolute path, modification time in ns, size in bytes)."""


def resolve_results_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, else ``$PROMEDICAL_RESULTS_DIR``, else ``./results``."""
    return Path(explicit or os.environ.get(ENV_VAR) or DEFAULT_DIR).expanduser()


def _walk(root: Path, match) -> list[Stamp]:  # noqa: ANN001 - a predicate on file names
    found: list[Stamp] = []
    root = root.resolve()
    if not root.is_dir():
        return found
    base_depth = len(root.parts)
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if len(Path(folder).parts) - base_depth >= MAX_DEPTH:
            dirs[:] = []
        for name in names:
            if match(name):
                path = os.path.join(folder, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                found.append((path, stat.st_mtime_ns, stat.st_size))
    return sorted(found)


def scan_results(root: str | os.PathLike[str]) -> list[Stamp]:
    """Every ``results.json`` under ``root`` with its modification time and size (the cache key)."""
    return _walk(Path(root), lambda name: name == RESULTS_FILE)


def scan_agreement(root: str | os.PathLike[str]) -> list[Stamp]:
    """Every ``*.agreement.json`` under ``root``."""
    return _walk(Path(root), lambda name: name.endswith(AGREEMENT_SUFFIX))


def stamp(path: str | os.PathLike[str]) -> Stamp:
    stat = os.stat(path)
    return (str(path), stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True)
class Run:
    """One valid results file."""

    path: str  # the run folder
    results: RunResults

    @property
    def key(self) -> str:
        return self.path


@dataclass
class Loaded:
    runs: list[Run] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (path, one-line problem)


def read_run(path: str) -> Run:
    """A results file, validated; raises ``ValueError`` with a one-line reason when it is not valid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read: {error}") from None
    try:
        results = parse_results(text)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "(file)"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise ValueError(f"{where}: {first.get('msg', 'invalid')}{more}") from None
    return Run(path=str(Path(path).parent), results=results)


def read_run_or_problem(path: str) -> Run | str:
    try:
        return read_run(path)
    except ValueError as error:
        return str(error)


def _read_uncached(path: str, mtime_ns: int, size: int) -> Run | str:
    return read_run_or_problem(path)


def load_runs(stamps: Iterable[Stamp], reader: Callable[[str, int, int], Run | str] | None = None) -> Loaded:
    """Read every results file. ``reader(path, mtime_ns, size)`` may be a cached version of
    :func:`read_run_or_problem` (the modification time and size are its cache key)."""
    reader = reader or _read_uncached
    loaded = Loaded()
    for path, mtime_ns, size in stamps:
        outcome = reader(path, mtime_ns, size)
        if isinstance(outcome, Run):
            loaded.runs.append(outcome)
        else:
            loaded.invalid.append((path, outcome))
    return loaded


def read_samples_file(run_path: str) -> list[JudgeSample | PolicySample | UltraMedicalSample]:
    """A run's samples.jsonl as typed records; lines that are not sample records are skipped (the count is
    not hidden: the caller compares with the results' counts)."""
    out: list[JudgeSample | PolicySample | UltraMedicalSample] = []
    with (Path(run_path) / SAMPLES_FILE).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                out.append(parse_sample(line))
            except ValidationError:
                continue
    return out


# -------------------------------------------------------------------------------------------------- tables


def run_info(run: Run) -> dict[str, Any]:
    """The descriptive columns of a run's row (everything except metrics)."""
    r = run.results
    graders = sorted({t.judge.id for t in r.tracks.values() if t.judge is not None})
    protocol = r.config.get("protocol")
    return {
        "key": run.key,
        "source": "measured",
        "model": r.model.id,
        "kind": r.model.kind,
        "tracks": ", ".join(sorted(r.tracks, key=track_sort_key)),
        "judge": ", ".join(graders) if graders else ("(self)" if "judge" in r.tracks else ""),
        "bench": r.bench.name,
        "bench_hash": r.bench.content_hash,
        "items": r.bench.items,
        "protocol": str(protocol) if protocol else r.template_version,
        "date": _date(r.finished_at),
        "run_id": r.run_id,
    }


def _date(text: str) -> pd.Timestamp | None:
    try:
        stamp_ = pd.Timestamp(text)
    except (ValueError, TypeError):
        return None
    if stamp_ is pd.NaT:
        return None
    return stamp_.tz_convert("UTC").tz_localize(None) if stamp_.tzinfo else stamp_


def _pct(value: float | None) -> float:
    return float("nan") if value is None else 100.0 * value


def run_metrics(run: Run, breakdown: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """Long-format metrics of one run, in percent: one dict per (track, metric).

    ``breakdown`` = ("category", NAME) or ("specialty", NAME) takes the metrics of that slice of the bench
    (the run's by-category / by-specialty breakdown) instead of the whole bench; tracks without that slice
    contribute nothing.
    """
    rows = []
    for track, result in sorted(run.results.tracks.items(), key=lambda kv: track_sort_key(kv[0])):
        if breakdown is None:
            metrics = result.metrics
        else:
            table = result.by_category if breakdown[0] == "category" else result.by_specialty
            metrics = table.get(breakdown[1], {})
        for name, m in metrics.items():
            rows.append({"key": run.key, "track": track, "metric": name, "value": _pct(m.value),
                         "ci_low": _pct(m.ci_low), "ci_high": _pct(m.ci_high), "n": m.n})
    return rows


def metrics_frame(runs: Sequence[Run], breakdown: tuple[str, str] | None = None) -> pd.DataFrame:
    columns = ["key", "track", "metric", "value", "ci_low", "ci_high", "n"]
    return pd.DataFrame([row for run in runs for row in run_metrics(run, breakdown)], columns=columns)


def format_ci(low: float, high: float) -> str:
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    return f"{low:.1f}–{high:.1f}"


def runs_table(runs: Sequence[Run], breakdown: tuple[str, str] | None = None) -> pd.DataFrame:
    """One row per run: descriptive columns, then for every (track, metric) a value and a CI column.

    With ``breakdown``, runs that have no metrics for that slice are left out.
    """
    info = pd.DataFrame([run_info(run) for run in runs], columns=INFO_COLUMNS)
    long = metrics_frame(runs, breakdown)
    if breakdown is not None:
        info = info[info["key"].isin(set(long["key"]))]
    wide: dict[str, dict[str, Any]] = {}
    for row in long.itertuples(index=False):
        entry = wide.setdefault(row.key, {})
        entry[metric_column(row.track, row.metric)] = row.value
        entry[ci_column(row.track, row.metric)] = format_ci(row.ci_low, row.ci_high)
    columns = metric_columns(long)
    values = pd.DataFrame.from_dict(wide, orient="index")
    table = info.set_index("key").join(values, how="left") if len(values) else info.set_index("key")
    for track, metric in columns:
        for column, empty in ((metric_column(track, metric), float("nan")), (ci_column(track, metric), "")):
            if column not in table.columns:
                table[column] = empty
            elif column.endswith(" · CI"):
                table[column] = table[column].fillna("")
    return table.reset_index()


def metric_columns(long: pd.DataFrame) -> list[tuple[str, str]]:
    """(track, metric) pairs present, tracks in display order, metrics in their order of first appearance."""
    seen: dict[tuple[str, str], None] = {}
    for track, metric in zip(long["track"], long["metric"], strict=True):
        seen.setdefault((track, metric), None)
    return sorted(seen, key=lambda tm: track_sort_key(tm[0]))


def slices(runs: Sequence[Run]) -> tuple[list[str], list[str]]:
    """Every category and every specialty any run has a breakdown for."""
    categories: set[str] = set()
    specialties: set[str] = set()
    for run in runs:
        for result in run.results.tracks.values():
            categories.update(result.by_category)
            specialties.update(result.by_specialty)
    return sorted(categories), sorted(specialties)


def add_rank(table: pd.DataFrame, column: str | None) -> pd.DataFrame:
    """Rank rows by ``column`` (higher is better; rows without a value get no rank), sorted by rank."""
    table = table.copy()
    if column is None or column not in table.columns or table.empty:
        table.insert(0, "rank", pd.array([pd.NA] * len(table), dtype="Int64"))
        return table
    ranks = table[column].rank(method="min", ascending=False)
    table.insert(0, "rank", ranks.astype("Int64"))
    return table.sort_values(["rank", "model"], na_position="last", kind="stable").reset_index(drop=True)


def export_csv(measured: pd.DataFrame, reported: pd.DataFrame | None = None) -> bytes:
    """The visible table as UTF-8 CSV: the measured rows (``source`` = measured, with their ranks), then the
    reported rows when they are shown (``source`` = reported — PAPER, no rank)."""
    export = measured.assign(source="measured")
    if reported is not None and len(reported):
        export = pd.concat([export, reported], ignore_index=True)
    columns = ["source", *[c for c in export.columns if c != "source"]]
    return export[columns].to_csv(index=False).encode("utf-8")


# ------------------------------------------------------------------------------------------------ reported


@dataclass(frozen=True)
class ReportedSource:
    id: str
    paper: str
    track: str
    source: str
    url: str
    bench: str
    protocol: str


#: Reported tables other modules ship for the leaderboard: (package, file, label of the paper). A table there
#: replaces the one with the same id in this package's ``reported.json`` (the UltraMedical harness keeps the
#: fuller UltraMedical table); a file that is missing or not in the expected shape is ignored.
EXTERNAL_REPORTED = (("promedical.bench.ultramedical", "reported.json", "UltraMedical paper"),)
#: Multiple-choice tasks are reported per task; the ultramedical track names their accuracy ``<task>.acc``.
_AGGREGATES = {"avg", "micro_avg"}


def _checked_table(table: Any, paper: str | None = None) -> dict[str, Any]:
    """A reported table in the shape ``reported.json`` documents, or ``ValueError``."""
    if not isinstance(table, dict):
        raise ValueError("a table is not an object")
    out = {key: table[key] for key in ("id", "track", "source", "url", "bench", "protocol", "metrics", "rows")}
    if not all(isinstance(out[k], str) for k in ("id", "track", "source", "url", "bench", "protocol")):
        raise ValueError("a table's descriptive fields must be strings")
    out["paper"] = paper or table["paper"]
    metrics = out["metrics"]
    if not (isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)):
        raise ValueError("metrics must be a list of names")
    if out["track"] == "ultramedical":
        out["metrics"] = [m if m in _AGGREGATES or "." in m else f"{m}.acc" for m in metrics]
    rows = []
    for row in out["rows"]:
        values = row["values"]
        if not (isinstance(row["model"], str) and isinstance(values, list) and len(values) == len(metrics)
                and all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values)):
            raise ValueError(f"bad reported row: {row!r:.80}")
        rows.append({"model": row["model"], "kind": str(row.get("kind", "")), "values": values})
    out["rows"] = rows
    return out


def _reported_tables(path: str | os.PathLike[str] | None) -> list[dict[str, Any]]:
    own = Path(path) if path else files("promedical.leaderboard") / "reported.json"
    tables = [_checked_table(t) for t in json.loads(own.read_text(encoding="utf-8"))["tables"]]
    if path:
        return tables
    for package, name, paper in EXTERNAL_REPORTED:
        try:
            spec = find_spec(package)
            folder = next(iter(spec.submodule_search_locations or ())) if spec else None
            if folder is None:
                continue
            document = json.loads((Path(folder) / name).read_text(encoding="utf-8"))
            external = [_checked_table(t, paper) for t in document["tables"]]
        except (ImportError, OSError, ValueError, KeyError, TypeError, StopIteration):
            continue
        ids = {t["id"] for t in external}
        tables = [t for t in tables if t["id"] not in ids] + external
    return tables


def load_reported(path: str | os.PathLike[str] | None = None) -> tuple[pd.DataFrame, list[ReportedSource]]:
    """The reported rows as a table laid out like :func:`runs_table` — percent values, no CIs — merged to one
    row per (paper, model), plus the sources they come from.

    Read from this package's ``reported.json`` (the ProMedical paper's judge and safety-veto tables and
    UltraMedical's table), with tables shipped by other modules (:data:`EXTERNAL_REPORTED`) taking precedence;
    ``path`` reads that one file only.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    sources = []
    for table in _reported_tables(path):
        source = ReportedSource(table["id"], table["paper"], table["track"], table["source"], table["url"],
                                table["bench"], table["protocol"])
        sources.append(source)
        for entry in table["rows"]:
            row = rows.setdefault((source.paper, entry["model"]), {
                "key": f"reported:{source.paper}:{entry['model']}", "source": f"reported — {source.paper}",
                "model": entry["model"], "kind": entry["kind"], "tracks": source.track, "judge": "",
                "bench": source.bench, "bench_hash": "", "items": None, "protocol": source.protocol,
                "date": None, "run_id": "",
            })
            for metric, value in zip(table["metrics"], entry["values"], strict=True):
                row[metric_column(source.track, metric)] = float("nan") if value is None else float(value)
                row[ci_column(source.track, metric)] = ""
    frame = pd.DataFrame(list(rows.values()))
    frame["items"] = frame["items"].astype("Int64")
    frame["date"] = pd.to_datetime(frame["date"])
    return frame, sources


# ----------------------------------------------------------------------------------------------- agreement


def read_agreement(path: str) -> pd.DataFrame:
    """An ``*.agreement.json`` file as rows (group, statistic, value, ci_low, ci_high, n_units, n_raters).

    Accepts the grouped form ``{"statistics": {group: {statistic: {...}}}}`` and the ungrouped one
    ``{"statistics": {statistic: {...}}}``; raises ``ValueError`` when neither is there.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read: {error}") from None
    statistics = document.get("statistics") if isinstance(document, dict) else None
    if not isinstance(statistics, dict):
        raise ValueError("no 'statistics' object")
    rows = []

    def leaf(value: Any) -> bool:
        return isinstance(value, dict) and "value" in value

    def number(value: Any) -> float:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("nan")

    def visit(prefix: list[str], node: dict[str, Any]) -> None:
        for name, value in node.items():
            if leaf(value):
                rows.append({"group": "/".join(prefix) or "(all)", "statistic": str(name),
                             "value": number(value.get("value")), "ci_low": number(value.get("ci_low")),
                             "ci_high": number(value.get("ci_high")), "n_units": value.get("n_units"),
                             "n_raters": value.get("n_raters")})
            elif isinstance(value, dict) and len(prefix) < 4:
                visit([*prefix, str(name)], value)

    visit([], statistics)
    if not rows:
        raise ValueError("no statistics with a 'value'")
    frame = pd.DataFrame(rows)
    for column in ("n_units", "n_raters"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    frame.attrs.update({k: document.get(k) for k in ("level", "seed", "n_boot")})
    return frame
