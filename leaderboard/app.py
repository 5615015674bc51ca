"""promedical-bench leaderboard: browse, compare and share evaluation results.

Start it with ``promedical-bench leaderboard [--results-dir DIR]`` (or ``streamlit run`` on this file with
``PROMEDICAL_RESULTS_DIR`` set). It reads only results files (``<run_id>/results.json`` and, for drill-down
and comparison, ``samples.jsonl``), ``*.agreement.json`` files from adjudication, and the reported rows
shipped with the package; see :mod:`promedical.leaderboard.store`.

Safety of displayed text: everything that comes from a results or samples file (model names, prompts,
responses, raw judge output, even metric names) is shown only through elements that render plain text —
``st.dataframe`` cells and headers, ``st.text``, ``st.code``, select-box options and chart marks. No such
text is ever put into Markdown (titles, captions, labels, help texts, alerts), so it can neither run as
HTML nor hide content as Markdown.
"""

from __future__ import annotations

import json
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from promedical.bench.compare import compare_runs
from promedical.leaderboard import store

st.set_page_config(page_title="promedical-bench leaderboard", page_icon="🩺", layout="wide")

VIEWS = ("Leaderboard", "Model", "Compare", "Agreement")
ALL = "(all)"

HOW_COMPUTED = """
**Judge track** — the model judges the bench's expert-labelled, criterion-level instances. *Pointwise*: does
this response meet this criterion (met / not met)? *Pairwise*: which of two responses better meets it? Accuracy
is the share of instances where the judge matches the expert label, overall and per criterion type
(proficiency S1, excellence S2, safety S3). Safety-veto precision / recall / F1 treat a violated safety
criterion as the positive class. Pairs whose expert label is a tie, and `unknown` verdicts, are excluded and
counted.

**Policy track** — the model answers every instruction; a grader (the *judge* column) decides each rubric
criterion. *Proficiency* = mean S1 (weighted share of proficiency criteria met); *excellence* = mean share of
excellence criteria met; *safety compliance* = share of answers violating no safety criterion (S3 = 0);
*overall* = mean of [S3 = 0] · min(S1 + α·S2, 1+β) / (1+β) (α = 0.1, β = 0.2) — one safety violation scores
the answer 0.

**UltraMedical track** — multiple-choice accuracy on MedQA, MedMCQA, PubMedQA and six MMLU medical subsets
through lm-eval; *avg* is the unweighted mean of the nine tasks. The *protocol* column says whether answers
were scored by log-likelihood (`loglik`) or by extracting the letter from a chain of thought (`cot`); the two
are not comparable.

**Uncertainty** — every CI is a seeded 95% percentile bootstrap (2,000 replicates) that resamples bench
*items*, so all instances of one item move together. *Compare* reports B − A with a paired bootstrap CI
(both runs resampled on the same items, on the instances both runs decided) and an item-level sign-flip
permutation test — on each item's difference in correct decisions (judge track) or in overall score (policy
track), so the instances of one item never count as independent — computed by the same code as
`promedical-bench compare`.

**Slices** — choosing a category or specialty shows each run's metrics on that slice's items only (from the
results file's breakdowns; CIs are wider because there are fewer items).

**Reported rows** — figures copied from the ProMedical paper (judge and safety-veto tables) and the
UltraMedical paper. They were not measured here, carry no CI, use the papers' own benches and protocols, and
are never ranked with measured runs.
"""


# --------------------------------------------------------------------------------------------- cached I/O


@st.cache_resource(show_spinner=False, max_entries=10_000)
def read_run(path: str, mtime_ns: int, size: int) -> store.Run | str:
    """One results file (validated) or its one-line problem; cached on (path, mtime, size).

    A resource cache, not ``st.cache_data``: the validated objects are shared read-only instead of being
    unpickled on every rerun, which would cost more than parsing the file again.
    """
    return store.read_run_or_problem(path)


@st.cache_data(show_spinner=False, max_entries=32)
def read_samples(run_path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    """A run's samples as a table, one row per record (its fields as written, ``model_dump()``)."""
    return pd.DataFrame([sample.model_dump() for sample in store.read_samples_file(run_path)])


@st.cache_data(show_spinner=False)
def reported() -> tuple[pd.DataFrame, list[store.ReportedSource]]:
    return store.load_reported()


@st.cache_data(show_spinner=False, max_entries=256)
def read_agreement(path: str, mtime_ns: int, size: int) -> pd.DataFrame | str:
    try:
        return store.read_agreement(path)
    except ValueError as error:
        return str(error)


@st.cache_data(show_spinner=False, max_entries=64)
def compare(path_a: str, stamps_a: tuple, path_b: str, stamps_b: tuple, seed: int) -> dict[str, Any] | str:
    """``compare_runs`` (the `promedical-bench compare` code), cached on both runs' files and the seed."""
    try:
        return compare_runs(path_a, path_b, seed=seed)
    except Exception as error:  # shown as text, never a crash
        return f"{type(error).__name__}: {error}"


def run_stamps(run: store.Run) -> tuple:
    stamps = []
    for name in (store.RESULTS_FILE, store.SAMPLES_FILE):
        try:
            stamps.append(store.stamp(f"{run.path}/{name}"))
        except OSError:
            stamps.append((name, 0, 0))
    return tuple(stamps)


# ------------------------------------------------------------------------------------------------ helpers


def label(run: store.Run) -> str:
    """A run's name in select boxes (plain text there): model, then run id."""
    return f"{run.results.model.id}  ·  {run.results.run_id}"


def column_config(columns: list[str], metric_of: dict[str, tuple[str, str]]) -> dict[str, Any]:
    config: dict[str, Any] = {"key": None}
    for column in columns:
        if column in metric_of:
            track, metric = metric_of[column]
            config[column] = st.column_config.NumberColumn(help=store.metric_help(track, metric), format="%.1f")
        elif column.endswith(" · CI"):
            config[column] = st.column_config.TextColumn(help="95% bootstrap confidence interval (percent).")
        elif column == "date":
            config[column] = st.column_config.DatetimeColumn(help=store.INFO_HELP["date"], format="YYYY-MM-DD HH:mm")
        elif column in ("rank", "items"):
            config[column] = st.column_config.NumberColumn(help=store.INFO_HELP[column], format="%d",
                                                           pinned=column == "rank")
        elif column == "model":
            config[column] = st.column_config.TextColumn(help=store.INFO_HELP[column], pinned=True)
        elif column in store.INFO_HELP:
            config[column] = st.column_config.TextColumn(help=store.INFO_HELP[column])
    return config


def table_height(rows: int, max_rows: int | None = None) -> int:
    """Pixels for a table showing ``rows`` rows (at most ``max_rows``; it scrolls beyond)."""
    shown = max(1, rows if max_rows is None else min(rows, max_rows))
    return 35 * (shown + 1) + 3


def plain_code(text: Any, language: str | None = None) -> None:
    """Untrusted text, shown verbatim (no HTML, no Markdown)."""
    st.code("" if text is None else str(text), language=language, wrap_lines=True)


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def problems(title: str, rows: list[tuple[str, str]]) -> None:
    """A warning whose Markdown is ours; the untrusted paths and messages go into a code block."""
    st.warning(f"{title} ({len(rows)} file{'s' if len(rows) != 1 else ''}, not shown):", icon="⚠️")
    plain_code("\n".join(f"{path}: {problem}" for path, problem in rows))


# ---------------------------------------------------------------------------------------------- page: board


def leaderboard_view(runs: list[store.Run]) -> None:
    tracks_all = sorted({t for run in runs for t in run.results.tracks}, key=store.track_sort_key)
    benches = sorted({f"{r.results.bench.name} · {r.results.bench.content_hash}" for r in runs})
    kinds = sorted({r.results.model.kind for r in runs})
    categories, specialties = store.slices(runs)

    with st.sidebar:
        st.header("Filters")
        tracks = st.multiselect("Track", tracks_all, key="track", placeholder="all tracks",
                                help="Show runs that contain any of these tracks, and only their metrics.")
        bench = st.multiselect("Bench", benches, key="bench", placeholder="all benches",
                               help="Bench name and content hash: only runs on the same items are comparable.")
        kind = st.multiselect("Model kind", kinds, key="kind", placeholder="all kinds", help=store.INFO_HELP["kind"])
        category = st.selectbox("Category", [ALL, *categories], key="category",
                                disabled=st.session_state.get("specialty", ALL) != ALL,
                                help="Metrics on this category's items only (from each run's breakdown); runs "
                                     "without it are hidden. One slice at a time: category or specialty.")
        specialty = st.selectbox("Specialty", [ALL, *specialties], key="specialty", disabled=category != ALL,
                                 help="Metrics on this specialty's items only; runs without it are hidden.")
        show_reported = st.toggle("Show reported rows", key="reported", bind="query-params",
                                  help="Add the ProMedical and UltraMedical papers' published figures, in a "
                                       "separate table marked 'reported' (not measured here, never ranked).")

    chosen = [r for r in runs
              if (not tracks or set(tracks) & set(r.results.tracks))
              and (not bench or f"{r.results.bench.name} · {r.results.bench.content_hash}" in bench)
              and (not kind or r.results.model.kind in kind)]
    breakdown = (("category", category) if category not in (None, ALL)
                 else ("specialty", specialty) if specialty not in (None, ALL) else None)
    table = store.runs_table(chosen, breakdown)
    long = store.metrics_frame(chosen, breakdown)
    pairs = [(t, m) for t, m in store.metric_columns(long) if not tracks or t in tracks]
    metric_of = {store.metric_column(t, m): (t, m) for t, m in pairs}
    headline = [store.metric_column(t, m) for t, m in pairs if store.is_headline(t, m)]

    left, middle, right = st.columns([2, 5, 1])
    rank_by = left.selectbox("Rank by", list(metric_of) or ["(no metric)"], key="rank_by",
                             help="Measured runs are ranked by this metric, higher is better. Click a column "
                                  "header to sort the table by any column.")
    shown_metrics = middle.multiselect("Metric columns", list(metric_of), default=headline,
                                       key="metrics:" + "+".join(sorted(tracks)),  # new tracks, new defaults
                                       help="Which metrics to show (percent). Every metric has a CI column.")
    with_ci = right.toggle("CIs", value=True, key="ci", help="Show the 95% CI column next to each metric.")

    ranked = store.add_rank(table, rank_by if rank_by in metric_of else None)
    metric_cols = [c for m in shown_metrics for c in ([m, f"{m} · CI"] if with_ci else [m])]
    info_cols = ["kind", "tracks", "judge", "bench", "bench_hash", "items", "protocol", "date", "run_id"]
    visible = ranked[["rank", "model", *metric_cols, *info_cols]]

    where = "" if breakdown is None else f" — {breakdown[0]} slice"
    st.subheader(f"Measured runs{where}")
    st.caption(f"{len(visible)} of {len(runs)} runs. Values in percent; CIs are 95% bootstrap intervals over "
               "bench items. Hover a column header for what it means.")
    st.dataframe(visible, hide_index=True, column_config=column_config(list(visible.columns), metric_of),
                 key="runs_table", height=table_height(len(visible), max_rows=20))

    reported_visible = pd.DataFrame()
    if show_reported:
        reported_visible = reported_view(tracks, breakdown)

    st.download_button("Download the visible table as CSV", store.export_csv(visible, reported_visible),
                       file_name="promedical-leaderboard.csv", mime="text/csv", key="download",
                       help="The rows and columns shown above (and the reported rows when they are shown), "
                            "with a 'source' column: measured or reported.")
    with st.expander("How these numbers are computed"):
        st.markdown(HOW_COMPUTED)

    st.subheader("Accuracy vs safety")
    scatter(chosen, long, show_reported)
    st.subheader("Per category and per specialty")
    breakdown_bars(chosen)


def reported_view(tracks: list[str], breakdown: tuple[str, str] | None) -> pd.DataFrame:
    """The papers' figures, one table per track, apart from the measured runs; returns the rows shown."""
    frame, sources = reported()
    st.subheader("Reported (from papers — not measured here, never ranked)")
    if breakdown is not None:
        st.info("The papers report no per-category or per-specialty figures: clear the slice to see them.")
        return pd.DataFrame()
    if tracks:
        frame = frame[frame["tracks"].isin(tracks)]
    st.caption("As published, in percent, without CIs; each paper used its own bench and protocol, so compare "
               "with measured runs of the same protocol only. Sources: "
               + "; ".join(f"[{s.source}]({s.url})" for s in sources if not tracks or s.track in tracks) + ".")
    shown = []
    for track in sorted(frame["tracks"].unique(), key=store.track_sort_key):
        part = frame[frame["tracks"] == track]
        metric_cols = [c for c in part.columns if c.startswith(f"{track} · ") and not c.endswith(" · CI")
                       and part[c].notna().any()]
        columns = ["source", "model", *metric_cols, "kind", "bench", "protocol"]
        visible = part[columns].reset_index(drop=True)
        st.dataframe(visible, hide_index=True, key=f"reported_table_{track}", height=table_height(len(visible)),
                     column_config=column_config(columns, {c: (track, c.split(" · ", 1)[1]) for c in metric_cols}))
        shown.append(visible.assign(tracks=track))
    return pd.concat(shown, ignore_index=True) if shown else pd.DataFrame()


def scatter(runs: list[store.Run], long: pd.DataFrame, show_reported: bool) -> None:
    tracks = [t for t in store.ACCURACY_SAFETY if t in set(long["track"])]
    if not tracks:
        st.info("No judge- or policy-track metrics among the runs shown.")
        return
    columns = st.columns(3)
    track = columns[0].selectbox("Track", tracks, key="scatter_track")
    metrics = list(dict.fromkeys(long.loc[long["track"] == track, "metric"]))
    x_default, y_default = store.ACCURACY_SAFETY[track]
    x_metric = columns[1].selectbox("Accuracy axis", metrics, key=f"scatter_x_{track}",
                                    index=metrics.index(x_default) if x_default in metrics else 0)
    y_metric = columns[2].selectbox("Safety axis", metrics, key=f"scatter_y_{track}",
                                    index=metrics.index(y_default) if y_default in metrics else 0)
    names = {run.key: run.results.model.id for run in runs}
    run_ids = {run.key: run.results.run_id for run in runs}
    part = long[long["track"] == track]
    x = part[part["metric"] == x_metric].set_index("key")[["value", "ci_low", "ci_high"]]
    y = part[part["metric"] == y_metric].set_index("key")[["value", "ci_low", "ci_high"]]
    joined = x.add_suffix("_x").join(y.add_suffix("_y"), how="inner")
    points = [{"model": names[key], "run_id": run_ids[key], "source": "measured",
               "x": row.value_x, "x_low": row.ci_low_x, "x_high": row.ci_high_x,
               "y": row.value_y, "y_low": row.ci_low_y, "y_high": row.ci_high_y}
              for key, row in zip(joined.index, joined.itertuples(index=False), strict=True)]
    if show_reported and track == "judge":
        frame, _ = reported()
        xc, yc = store.metric_column(track, x_metric), store.metric_column(track, y_metric)
        if xc in frame.columns and yc in frame.columns:
            for _, row in frame.dropna(subset=[xc, yc]).iterrows():
                points.append({"model": row["model"], "run_id": "", "source": "reported", "x": row[xc],
                               "x_low": None, "x_high": None, "y": row[yc], "y_low": None, "y_high": None})
    data = pd.DataFrame(points).dropna(subset=["x", "y"]) if points else pd.DataFrame()
    if data.empty:
        st.info("No run has both metrics.")
        return
    legend = alt.Legend(title="model") if data["model"].nunique() <= 20 else None
    color = alt.Color("model:N", legend=legend)
    base = alt.Chart(data)
    tooltip = ["model:N", "run_id:N", "source:N", alt.Tooltip("x:Q", title=x_metric, format=".1f"),
               alt.Tooltip("y:Q", title=y_metric, format=".1f")]
    marks = base.mark_point(filled=True, size=90).encode(
        x=alt.X("x:Q", title=f"{x_metric} (%)", scale=alt.Scale(domain=[0, 100])),
        y=alt.Y("y:Q", title=f"{y_metric} (%)", scale=alt.Scale(domain=[0, 100])),
        color=color, shape=alt.Shape("source:N", title="source",
                                     scale=alt.Scale(domain=["measured", "reported"], range=["circle", "diamond"])),
        tooltip=tooltip)
    measured = base.transform_filter(alt.datum.source == "measured")
    x_bars = measured.mark_rule().encode(x="x_low:Q", x2="x_high:Q", y="y:Q", color=color)
    y_bars = measured.mark_rule().encode(y="y_low:Q", y2="y_high:Q", x="x:Q", color=color)
    st.altair_chart((x_bars + y_bars + marks).properties(height=420), key="scatter_chart")
    st.caption("Error bars: 95% bootstrap CIs. Diamonds (when reported rows are shown) are the papers' figures, "
               "on the papers' bench, without CIs.")


def breakdown_bars(runs: list[store.Run]) -> None:
    if not runs:
        st.info("No runs to show.")
        return
    by_key = {run.key: run for run in runs}
    columns = st.columns(4)
    key = columns[0].selectbox("Run", list(by_key), format_func=lambda k: label(by_key[k]), key="bars_run")
    run = by_key[key]
    by = columns[1].selectbox("By", ["category", "specialty"], key="bars_by")
    tracks = sorted(run.results.tracks, key=store.track_sort_key)
    track = columns[2].selectbox("Track", tracks, key=f"bars_track:{key}")
    if track not in run.results.tracks:
        st.info("This run has no tracks.")
        return
    result = run.results.tracks[track]
    table = result.by_category if by == "category" else result.by_specialty
    metrics = list(dict.fromkeys(m for values in table.values() for m in values))
    if not metrics:
        st.info("This run's track has no breakdown of that kind.")
        return
    default = store.ACCURACY_SAFETY.get(track, (metrics[0],))[0]
    metric = columns[3].selectbox("Metric", metrics, key=f"bars_metric_{track}",
                                  index=metrics.index(default) if default in metrics else 0)
    rows = [{"slice": name, "value": 100 * m.value if m.value is not None else None,
             "low": 100 * m.ci_low if m.ci_low is not None else None,
             "high": 100 * m.ci_high if m.ci_high is not None else None, "n": m.n}
            for name, values in sorted(table.items()) for mname, m in values.items() if mname == metric]
    data = pd.DataFrame(rows).dropna(subset=["value"])
    if data.empty:
        st.info("No values for this metric.")
        return
    base = alt.Chart(data).encode(y=alt.Y("slice:N", title=by, sort=None))
    bars = base.mark_bar().encode(x=alt.X("value:Q", title=f"{metric} (%)", scale=alt.Scale(domain=[0, 100])),
                                  tooltip=["slice:N", alt.Tooltip("value:Q", format=".1f"), "n:Q"])
    rules = alt.Chart(data).mark_rule(color="black", strokeWidth=2).encode(
        y=alt.Y("slice:N", sort=None, bandPosition=0.5), x="low:Q", x2="high:Q")
    st.altair_chart((bars + rules).properties(height=max(120, 28 * len(data))), key="bars_chart")
    st.caption("Bars: the metric on each slice's items; black lines: 95% bootstrap CIs; n = instances or answers.")


# ---------------------------------------------------------------------------------------------- page: model


def model_view(runs: list[store.Run]) -> None:
    by_key = {run.key: run for run in runs}
    key = st.selectbox("Run", list(by_key), format_func=lambda k: label(by_key[k]), key="model_run",
                       help="Model and run id.")
    run = by_key[key]
    r = run.results
    st.subheader("Run")
    details = [("model", r.model.id), ("identity", r.model.identity), ("kind", r.model.kind),
               ("run id", r.run_id), ("bench", f"{r.bench.name} ({r.bench.items} items, hash {r.bench.content_hash})"),
               ("prompt template", f"{r.template_version} ({r.template_hash})"),
               ("started", r.started_at), ("finished", r.finished_at), ("folder", run.path)]
    for track, result in r.tracks.items():
        if result.judge is not None:
            details.append((f"{track} graded by", f"{result.judge.id} ({result.judge.kind}; {result.judge.identity})"))
    st.dataframe(pd.DataFrame(details, columns=["field", "value"]), hide_index=True, key="model_details")

    st.subheader("Metrics")
    long = store.metrics_frame([run]).drop(columns=["key"])
    st.dataframe(long, hide_index=True, key="model_metrics", column_config={
        "value": st.column_config.NumberColumn("value (%)", format="%.2f"),
        "ci_low": st.column_config.NumberColumn("95% CI low", format="%.2f"),
        "ci_high": st.column_config.NumberColumn("95% CI high", format="%.2f"),
        "n": st.column_config.NumberColumn("n", help="Instances (judge) or answers (policy) the metric rests on.")})
    counts = [(track, name, value) for track, result in r.tracks.items() for name, value in result.counts.items()]
    st.dataframe(pd.DataFrame(counts, columns=["track", "count", "value"]), hide_index=True, key="model_counts")
    with st.expander("Configuration and software"):
        plain_code(as_json({"config": r.config, "software": r.software}), language="json")

    st.subheader("Per-item drill-down")
    try:
        _, mtime_ns, size = store.stamp(f"{run.path}/{store.SAMPLES_FILE}")
        samples = read_samples(run.path, mtime_ns, size)
    except OSError:
        st.info("This run has no samples file, so there is nothing to drill into.")
        return
    if samples.empty or "track" not in samples.columns:
        st.info("The samples file is empty.")
        return
    drill_down(samples)


#: Drill-down filters: (sample field, label), shown when the chosen track's samples have the field.
DRILL_FILTERS = [("mode", "Mode"), ("criterion_type", "Criterion type"), ("task", "Task"), ("category", "Category"),
                 ("specialty", "Specialty")]
#: Columns of the instance list, in order, when present.
DRILL_COLUMNS = ("item_id", "task", "doc_id", "mode", "criterion_id", "criterion_type", "response_ids", "gold",
                 "decision", "prediction", "correct", "acc", "no_answer", "score", "category", "specialty", "s1",
                 "s2", "s3", "safe", "overall")
#: The "only the failures" switch per track: (label, field, value meaning failure).
FAILURES = {"judge": ("Only the judge's mistakes", "correct", False), "policy": ("Only vetoed answers", "safe", 0),
            "ultramedical": ("Only wrong answers", "acc", 0)}


def drill_down(samples: pd.DataFrame) -> None:
    if "track" not in samples.columns:
        samples = samples.assign(track="(unknown)")
    tracks = sorted(samples["track"].dropna().astype(str).unique(), key=store.track_sort_key)
    columns = st.columns(1 + len(DRILL_FILTERS))
    track = columns[0].selectbox("Track", tracks, key="drill_track")
    part = samples[samples["track"] == track]
    part = part[[c for c in part.columns if part[c].notna().any()]]
    filters = [(name, title) for name, title in DRILL_FILTERS if name in part.columns]
    for column, (name, title) in zip(columns[1:], filters, strict=False):
        options = [ALL, *sorted(part[name].dropna().astype(str).unique())]
        chosen = column.selectbox(title, options, key=f"drill_{name}_{track}")
        if chosen != ALL:
            part = part[part[name].astype(str) == chosen]
    if track in FAILURES and FAILURES[track][1] in part.columns:
        title, field, failure = FAILURES[track]
        if st.toggle(title, key=f"drill_wrong_{track}"):
            values = part[field] if isinstance(failure, bool) else pd.to_numeric(part[field], errors="coerce")
            part = part[values.eq(failure)]

    part = part.reset_index(drop=True)
    shown = part[[c for c in DRILL_COLUMNS if c in part.columns]].copy()
    for column in shown.columns:  # lists and dicts as JSON text, so every cell is a plain string or number
        if shown[column].map(lambda v: isinstance(v, list | dict)).any():
            shown[column] = shown[column].map(lambda v: json.dumps(v, ensure_ascii=False)
                                              if isinstance(v, list | dict) else v)
    st.caption(f"{len(part)} instance(s). Pick one below to read it in full.")
    st.dataframe(shown, hide_index=False, key="drill_table", height=260)
    if part.empty:
        return
    position = st.selectbox("Instance", list(range(len(part))), key=f"drill_pick_{track}",
                            format_func=lambda i: f"#{i}  {instance_label(part.iloc[i])}")
    show_instance({k: v for k, v in part.iloc[position].to_dict().items() if not _missing(v)})


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def instance_label(row: pd.Series) -> str:
    parts = [row.get(c) for c in ("item_id", "task", "doc_id", "mode", "criterion_id") if not _missing(row.get(c))]
    ids = row.get("response_ids")
    if isinstance(ids, list):
        parts.append(" vs ".join(map(str, ids)))
    return "  ·  ".join(map(str, parts))


def show_instance(sample: dict[str, Any]) -> None:
    """One instance in full, every piece of model or bench text as plain text."""
    st.markdown("**Instruction**")
    plain_code(sample.get("prompt"))
    if sample.get("track") == "judge":
        st.markdown("**Criterion**")
        st.text(f"{sample.get('criterion_id')} ({sample.get('criterion_type')})")
        plain_code(sample.get("criterion"))
        responses = sample.get("responses") or []
        ids = sample.get("response_ids") or []
        for position, text in enumerate(responses):
            st.markdown(f"**Response {'AB'[position] if len(responses) == 2 else position + 1}**")
            if position < len(ids):
                st.text(f"id: {ids[position]}")
            plain_code(text)
        st.markdown("**Verdict**")
        verdict = {k: sample.get(k) for k in ("mode", "gold", "decision", "correct", "score")}
        st.dataframe(pd.DataFrame([{k: "" if v is None else str(v) for k, v in verdict.items()}]), hide_index=True,
                     key="drill_verdict")
        st.markdown("**Raw judge output**")
        plain_code(as_json(sample.get("raw")), language="json")
    elif sample.get("track") == "policy":
        st.markdown("**Answer**")
        plain_code(sample.get("answer"))
        st.markdown("**Scores**")
        scores = {k: sample.get(k) for k in ("s1", "s2", "s3", "safe", "overall")}
        st.dataframe(pd.DataFrame([{k: "" if v is None else str(v) for k, v in scores.items()}]), hide_index=True,
                     key="drill_scores")
        judgements = sample.get("judgements") or []
        st.markdown("**Verdicts per criterion**")
        rows = [{k: "" if j.get(k) is None else str(j.get(k))
                 for k in ("criterion_id", "criterion_type", "decision", "score", "criterion")}
                for j in judgements if isinstance(j, dict)]
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="drill_judgements")
        st.markdown("**Raw grader output**")
        plain_code(as_json([{"criterion_id": j.get("criterion_id"), "raw": j.get("raw")}
                            for j in judgements if isinstance(j, dict)]), language="json")
    elif sample.get("track") == "ultramedical":
        if "response" in sample:
            st.markdown("**Response**")
            plain_code(sample.get("response"))
        st.markdown("**Scores**")
        scores = {k: sample.get(k) for k in ("protocol", "gold", "prediction", "acc", "acc_norm", "no_answer")
                  if k in sample}
        st.dataframe(pd.DataFrame([{k: str(v) for k, v in scores.items()}]), hide_index=True, key="drill_mc")
        if "loglikelihoods" in sample:
            st.markdown("**Log-likelihood of each choice**")
            plain_code(as_json(sample.get("loglikelihoods")), language="json")
        st.markdown("**Document**")
        plain_code(as_json(sample.get("doc")), language="json")
    else:
        st.markdown("**Sample**")
        plain_code(as_json(sample), language="json")


# -------------------------------------------------------------------------------------------- page: compare


def compare_view(runs: list[store.Run]) -> None:
    st.caption("Paired comparison of two runs on the same bench items: B − A per metric with a paired bootstrap "
               "95% CI, and an item-level sign-flip permutation test, on the instances both runs decided — the "
               "same computation as `promedical-bench compare`.")
    by_key = {run.key: run for run in runs}
    columns = st.columns([3, 3, 1])
    key_a = columns[0].selectbox("Run A", list(by_key), format_func=lambda k: label(by_key[k]), key="compare_a")
    run_a = by_key[key_a]
    candidates = [k for k, run in by_key.items()
                  if k != key_a and run.results.bench.content_hash == run_a.results.bench.content_hash
                  and set(run.results.tracks) & set(run_a.results.tracks)]
    if not candidates:
        st.info("No other run shares run A's bench (same content hash) and a track with it.")
        return
    key_b = columns[1].selectbox("Run B", candidates, format_func=lambda k: label(by_key[k]), key="compare_b")
    seed = columns[2].number_input("Seed", value=0, step=1, key="compare_seed")
    run_b = by_key[key_b]
    outcome = compare(run_a.path, run_stamps(run_a), run_b.path, run_stamps(run_b), int(seed))
    if isinstance(outcome, str):
        st.error("These runs cannot be compared:")
        plain_code(outcome)
        return
    st.text(f"A: {label(run_a)}\nB: {label(run_b)}")
    for track, entry in outcome["tracks"].items():
        st.markdown(f"**{track if track in store.TRACK_ORDER else 'other'} track** — B − A, percentage points")
        rows = [{"metric": name, "B − A": _pp(d.get("value")), "CI low": _pp(d.get("ci_low")),
                 "CI high": _pp(d.get("ci_high")), "n": d.get("n")} for name, d in entry["differences"].items()]
        st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"compare_{track}", column_config={
            "B − A": st.column_config.NumberColumn(format="%+.2f", help="Difference in percentage points."),
            "CI low": st.column_config.NumberColumn(format="%+.2f", help="Paired bootstrap 95% CI."),
            "CI high": st.column_config.NumberColumn(format="%+.2f", help="Paired bootstrap 95% CI."),
            "n": st.column_config.NumberColumn(help="Instances or answers both runs decided.")})
        test, counts = entry["paired_test"], entry["instances"]
        st.dataframe(pd.DataFrame([{"test": f"{test['name']} on {test['tested']}", "p-value": test["p_value"],
                                    "items": test["items"], **counts}]),
                     hide_index=True, key=f"compare_test_{track}")


def _pp(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


# ------------------------------------------------------------------------------------------ page: agreement


def agreement_view(stamps: list[store.Stamp]) -> None:
    st.caption("Inter-rater agreement statistics from `promedical-bench adjudicate import` (`*.agreement.json`), "
               "each with a 95% bootstrap CI over units. See docs/adjudication.md.")
    if not stamps:
        st.info("No *.agreement.json files in the results folder.")
        return
    bad = []
    for path, mtime_ns, size in stamps:
        frame = read_agreement(path, mtime_ns, size)
        if isinstance(frame, str):
            bad.append((path, frame))
            continue
        st.text(path)
        settings = {k: v for k, v in frame.attrs.items() if v is not None}
        if settings:
            st.text(", ".join(f"{k}: {v}" for k, v in settings.items()))
        st.dataframe(frame, hide_index=True, key=f"agreement_{path}", column_config={
            "value": st.column_config.NumberColumn(format="%.3f"),
            "ci_low": st.column_config.NumberColumn("95% CI low", format="%.3f"),
            "ci_high": st.column_config.NumberColumn("95% CI high", format="%.3f")})
    if bad:
        problems("Some agreement files could not be read", bad)


# ------------------------------------------------------------------------------------------------- main


def main() -> None:
    root = store.resolve_results_dir()
    st.title("promedical-bench leaderboard")
    st.text(f"Results folder: {root.resolve()}")
    view = st.sidebar.radio("View", VIEWS, key="view", bind="query-params")

    stamps = store.scan_results(root)
    loaded = store.load_runs(stamps, reader=read_run)
    if loaded.invalid:
        problems("Some results files are not valid results (schema version 1)", loaded.invalid)

    if view == "Agreement":
        agreement_view(store.scan_agreement(root))
        return
    if not loaded.runs:
        st.info("No valid results files here yet. Write some with `promedical-bench run --output-dir DIR`, then "
                "start the leaderboard with `promedical-bench leaderboard --results-dir DIR`.")
        if view == "Leaderboard" and st.toggle("Show reported rows", key="reported", bind="query-params"):
            reported_view([], None)
        return
    if view == "Model":
        model_view(loaded.runs)
    elif view == "Compare":
        compare_view(loaded.runs)
    else:
        leaderboard_view(loaded.runs)


main()
