"""`promedical-bench ultramedical`: UltraMedical's nine multiple-choice columns, run by lm-eval.

Data flows one way: data (Hub, a local folder, or the bundled items) → lm-eval tasks from the YAMLs beside
this file (``TaskManager(include_path=...)``) → ``lm_eval.simple_evaluate`` (lm-eval's own ``hf`` or
``vllm`` model) → the common results file (track ``ultramedical``), with lm-eval's own output kept beside it.

Nothing is scored here: accuracies are lm-eval's. This module validates local data, builds the tasks, turns
lm-eval's per-document scores into bootstrap CIs and the UltraMedical averages, and writes the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np

from promedical.bench.datasets import BenchDataError, read_records
from promedical.bench.generating import THINK_END
from promedical.bench.io import write_text_atomic
from promedical.bench.prompts import chat_template_kwargs
from promedical.bench.results import (
    BenchInfo,
    MetricValue,
    ModelInfo,
    RunResults,
    TrackResult,
    UltraMedicalSample,
    new_run_dir,
    software_versions,
    write_run,
)
from promedical.bench.statistics import bootstrap_weights, percentile_interval

TASK_DIR = Path(__file__).resolve().parent
BUNDLED_DIR = TASK_DIR / "data"
REPORTED_FILE = TASK_DIR / "reported.json"
Protocol = Literal["loglik", "cot"]
PROTOCOLS: tuple[Protocol, ...] = ("loglik", "cot")
TRACK = "ultramedical"
TEMPLATE_VERSION = "ultramedical-1"
#: lm-eval's filter name for each protocol (the suffix of its metric keys, e.g. ``acc,none``).
FILTER = {"loglik": "none", "cot": "final-letter"}
#: Per-document metrics lm-eval reports for each protocol.
METRICS = {"loglik": ("acc", "acc_norm"), "cot": ("acc", "no_answer")}


@dataclass(frozen=True)
class Column:
    """One of UltraMedical's nine columns."""

    name: str  # task name on our command line, data file stem (NAME.jsonl) and metric prefix
    label: str  # UltraMedical's column header
    layout: str  # the dataset's field layout (see FIELDS)
    source: str  # the default Hugging Face source
    builtin: str  # lm-eval's built-in task whose loglik prompt ours reproduces
    split: str = "test"  # the evaluated split (the task YAML's test_split)


COLUMNS: tuple[Column, ...] = (
    Column("medqa", "MedQA", "medqa", "GBaker/MedQA-USMLE-4-options-hf, test (1,273)", "medqa_4options"),
    Column("medmcqa", "MedMCQA", "medmcqa", "openlifescienceai/medmcqa, validation = dev (4,183)", "medmcqa",
           "validation"),
    Column("pubmedqa", "PubMedQA", "pubmedqa",
           "bigbio/pubmed_qa pubmed_qa_labeled_fold0_source, test (500), via the Hub's Parquet export", "pubmedqa"),
    Column("mmlu_clinical_knowledge", "MMLU.ck", "mmlu", "cais/mmlu clinical_knowledge, test (265)",
           "mmlu_clinical_knowledge"),
    Column("mmlu_medical_genetics", "MMLU.mg", "mmlu", "cais/mmlu medical_genetics, test (100)",
           "mmlu_medical_genetics"),
    Column("mmlu_anatomy", "MMLU.an", "mmlu", "cais/mmlu anatomy, test (135)", "mmlu_anatomy"),
    Column("mmlu_professional_medicine", "MMLU.pm", "mmlu", "cais/mmlu professional_medicine, test (272)",
           "mmlu_professional_medicine"),
    Column("mmlu_college_biology", "MMLU.cb", "mmlu", "cais/mmlu college_biology, test (144)", "mmlu_college_biology"),
    Column("mmlu_college_medicine", "MMLU.cm", "mmlu", "cais/mmlu college_medicine, test (173)",
           "mmlu_college_medicine"),
)
BY_NAME = {c.name: c for c in COLUMNS}
TASK_NAMES = tuple(BY_NAME)


def task_id(name: str, protocol: str) -> str:
    """The lm-eval task name of a column under a protocol, e.g. ``ultramedical_medqa_loglik``."""
    return f"ultramedical_{name}_{protocol}"


def select_columns(tasks: str | Sequence[str] | None) -> list[Column]:
    """Columns from ``all`` or a comma-separated list (or a sequence) of task names, in suite order."""
    if tasks is None or tasks == "all" or (not isinstance(tasks, str) and list(tasks) == ["all"]):
        return list(COLUMNS)
    names = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        problem = f"unknown task {unknown[0]!r}" if unknown else "no task named"
        raise BenchDataError("--tasks", f"{problem}; choose from {', '.join(TASK_NAMES)} (comma-separated) or 'all'")
    return [c for c in COLUMNS if c.name in names]


# --------------------------------------------------------------------------------------------- local data


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"expected a string, got {type(value).__name__}"


def _question(value: Any) -> str | None:
    return _text(value) or (None if value.strip() else "empty question")


def _index(n: int):
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer option index 0-{n - 1}, got {value!r:.40}"
        return None if 0 <= value < n else f"option index {value} is outside 0-{n - 1}"
    return check


def _texts(n: int | None):
    def check(value: Any) -> str | None:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "expected a list of strings"
        if n is not None and len(value) != n:
            return f"expected {n} options, got {len(value)}"
        return None if value else "empty list"
    return check


def _decision(value: Any) -> str | None:
    return None if value in ("yes", "no", "maybe") else f"expected 'yes', 'no' or 'maybe', got {value!r:.40}"


#: The fields each layout must have (others are kept and ignored), with their checks.
FIELDS: dict[str, dict[str, Any]] = {
    "medqa": {"sent1": _question, "ending0": _text, "ending1": _text, "ending2": _text, "ending3": _text,
              "label": _index(4)},
    "medmcqa": {"question": _question, "opa": _text, "opb": _text, "opc": _text, "opd": _text, "cop": _index(4)},
    "pubmedqa": {"QUESTION": _question, "CONTEXTS": _texts(None), "final_decision": _decision},
    "mmlu": {"question": _question, "choices": _texts(4), "answer": _index(4)},
}


def validate_file(path: Path, layout: str) -> int:
    """Check every row of a task's JSONL file; raise :class:`BenchDataError` naming the first bad one
    (``PATH:LINE: FIELD: problem``, and how many more were bad). Returns the number of rows."""
    first: BenchDataError | None = None
    bad = rows = 0
    for record in read_records(path):
        if isinstance(record, BenchDataError):
            bad += 1
            first = first or record
            continue
        rows += 1
        problem = _row_problem(record.value, layout)
        if problem is not None:
            bad += 1
            first = first or BenchDataError(record.path, problem[1], record.line, problem[0])
    if first is not None:
        raise BenchDataError(first.path, first.problem, first.line, first.field, more=bad - 1)
    if rows == 0:
        raise BenchDataError(str(path), "no rows", line=1, field="file")
    return rows


def _row_problem(value: Any, layout: str) -> tuple[str, str] | None:
    if not isinstance(value, dict):
        return "record", f"expected a JSON object, got {type(value).__name__}"
    for name, check in FIELDS[layout].items():
        if name not in value:
            return name, f"required field is missing ({layout} layout: {', '.join(FIELDS[layout])})"
        if (problem := check(value[name])) is not None:
            return name, problem
    return None


def resolve_data(data_dir: str | None, columns: Sequence[Column]) -> dict[str, Path] | None:
    """``None`` for the Hub; otherwise each column's validated local file (``DIR/NAME.jsonl``)."""
    if data_dir is None:
        return None
    root = BUNDLED_DIR if data_dir == "bundled" else Path(data_dir)
    if not root.is_dir():
        raise BenchDataError(data_dir, "no such folder; --data-dir takes a folder with one JSONL file per task "
                             "(medqa.jsonl, medmcqa.jsonl, ...; see `--fetch-data`) or 'bundled'")
    files: dict[str, Path] = {}
    for column in columns:
        file = root / f"{column.name}.jsonl"
        if not file.is_file():
            raise BenchDataError(str(file), f"missing: task {column.name} needs this file, one JSON object per line "
                                 f"in the {column.layout} layout ({', '.join(FIELDS[column.layout])}); "
                                 "`promedical-bench ultramedical --fetch-data DIR` writes all nine")
        validate_file(file, column.layout)
        files[column.name] = file
    return files


# --------------------------------------------------------------------------------------------- lm-eval tasks


def task_manager():
    """lm-eval's TaskManager over the task YAMLs shipped beside this file (and nothing else)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASK_DIR), include_defaults=False)


def local_override(split: str, file: Path) -> dict[str, Any]:
    """lm-eval task overrides that read ``split`` of a task from a local JSONL file."""
    return {"dataset_path": "json", "dataset_name": None, "dataset_kwargs": {"data_files": {split: str(file)}}}


def load_tasks(manager, columns: Sequence[Column], protocol: str, files: dict[str, Path] | None) -> dict[str, Any]:
    """Build (and so load the data of) each column's lm-eval task; the first failure is one readable error.

    Local files are read through lm-eval's own mechanism: a group entry that references the shipped task
    with ``dataset_path: json`` + ``data_files`` overrides.
    """
    tasks: dict[str, Any] = {}
    for column in columns:
        name = task_id(column.name, protocol)
        if files is None:
            spec: str | dict[str, Any] = name
        else:
            spec = {"group": f"ultramedical_local_{column.name}",
                    "task": [{"task": name, **local_override(column.split, files[column.name])}]}
        try:
            tasks[column.name] = manager.load([spec])["tasks"][name]
        except Exception as error:  # datasets raises many types (connection, offline mode, not found, schema)
            reason = _first_line(error)
            if files is not None:
                raise BenchDataError(str(files[column.name]), f"lm-eval cannot read it: {reason}") from None
            raise BenchDataError(
                f"hf:{column.source.split(',')[0]}",
                f"cannot load from the Hugging Face Hub ({reason}). Offline, fetch the data on a networked machine "
                "with `promedical-bench ultramedical --fetch-data DIR` and pass --data-dir DIR, or try the "
                "pipeline on the bundled demo items with --data-dir bundled") from None
    return tasks


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


def fetch_data(output_dir: Path, columns: Sequence[Column]) -> dict[str, int]:
    """Download each column's evaluation split from the Hub (through the same lm-eval tasks, so the rows are
    exactly those evaluated) and write ``OUTPUT_DIR/NAME.jsonl`` for ``--data-dir``. Returns rows per task."""
    output_dir.mkdir(parents=True, exist_ok=True)
    manager = task_manager()
    counts: dict[str, int] = {}
    for column in columns:
        docs = load_tasks(manager, [column], "loglik", None)[column.name].eval_docs
        lines = (json.dumps(dict(doc), ensure_ascii=False, default=str) + "\n" for doc in docs)
        write_text_atomic(output_dir / f"{column.name}.jsonl", lines)
        counts[column.name] = len(docs)
    return counts


# --------------------------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class UltraMedicalConfig:
    model: str
    protocol: Protocol = "loglik"
    data_dir: str | None = None  # None = Hugging Face Hub; "bundled"; or a folder of NAME.jsonl files
    tasks: tuple[str, ...] = TASK_NAMES
    output_dir: Path = Path("results")
    limit: int | None = None
    batch_size: int | None = None  # None = automatic (lm-eval's "auto" on CUDA, 8 on CPU)
    device: str = "auto"
    dtype: str = "auto"
    backend: Literal["hf", "vllm"] = "hf"
    max_new_tokens: int = 1024
    tensor_parallel_size: int = 1
    model_args: str | None = None  # extra lm-eval model arguments, KEY=VALUE,...
    seed: int = 0
    enable_thinking: bool = False  # cot: the chat-template argument of Qwen3-style models (loglik has no template)

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
                for k, v in asdict(self).items()}


@dataclass
class UltraMedicalOutcome:
    run_dir: Path
    results: RunResults
    lm_eval: dict[str, Any] = field(repr=False, default_factory=dict)


def lm_eval_model(config: UltraMedicalConfig) -> tuple[str, dict[str, Any], str | int, str | None]:
    """(lm-eval model type, model_args, batch_size, device) for the configured backend."""
    from lm_eval.utils import simple_parse_args_string

    from promedical.bench.models.loading import resolve_device

    extra = simple_parse_args_string(config.model_args) if config.model_args else {}
    if "enable_thinking" in extra or "think_end_token" in extra:
        raise BenchDataError("--model-args", "thinking is set by --enable-thinking, not by model arguments")
    if config.protocol == "cot":  # explicit either way: lm-eval leaves it to the chat template otherwise
        extra = {"enable_thinking": config.enable_thinking} | (
            {"think_end_token": THINK_END} if config.enable_thinking else {}) | extra
    elif config.enable_thinking:
        raise BenchDataError("--enable-thinking", "thinking needs the cot protocol (loglik scores no generated text)")
    if config.backend == "vllm":
        args = {"pretrained": config.model, "dtype": "auto" if config.dtype == "auto" else config.dtype,
                "tensor_parallel_size": config.tensor_parallel_size, "seed": config.seed}
        return "vllm", args | extra, config.batch_size or "auto", None
    device = resolve_device(config.device)
    dtype = config.dtype if config.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    batch_size = config.batch_size or ("auto" if device == "cuda" else 8)
    return "hf", {"pretrained": config.model, "dtype": dtype} | extra, batch_size, device


def check_model(model: str, backend: str) -> None:
    """Refuse, before any work, a model that cannot be found (a missing folder, a Hub id that cannot be
    fetched), and with the hf backend one whose config cannot be read or that is not a causal LM."""
    from promedical.bench.judging import JudgeError
    from promedical.bench.models.loading import check_model_source, detect_kind

    check_model_source(model)
    if backend == "hf" and detect_kind(model) != "causal":
        raise JudgeError(f"model {model!r} is a reward model; the UltraMedical suite needs a causal LM")


def run_ultramedical(config: UltraMedicalConfig) -> UltraMedicalOutcome:
    """Validate, run lm-eval, and write ``OUTPUT_DIR/<run_id>/`` (results.json, samples.jsonl, lm-eval's output)."""
    started = datetime.now(timezone.utc)
    if config.protocol not in PROTOCOLS:
        raise BenchDataError("--protocol", f"unknown protocol {config.protocol!r}; choose loglik or cot")
    columns = select_columns(config.tasks)
    files = resolve_data(config.data_dir, columns)
    check_model(config.model, config.backend)
    model_type, model_args, batch_size, device = lm_eval_model(config)
    import lm_eval

    _quiet_lm_eval()
    manager = task_manager()
    tasks = load_tasks(manager, columns, config.protocol, files)
    if config.protocol == "cot":
        for task in tasks.values():
            task.set_config(key="generation_kwargs", value={"max_gen_toks": config.max_new_tokens}, update=True)
    output = lm_eval.simple_evaluate(
        model=model_type, model_args=model_args, tasks=list(tasks.values()), task_manager=manager,
        limit=config.limit, batch_size=batch_size, device=device, log_samples=True,
        apply_chat_template=config.protocol == "cot",
    )
    track, samples, content_hash, items = summarise(output, tasks, columns, config.protocol, config.seed)
    bundled = config.data_dir == "bundled"
    run_config = config.as_dict() | {
        "tasks": [c.name for c in columns],
        "data": "bundled" if bundled else "huggingface-hub" if files is None else str(Path(config.data_dir or "")),
        "bundled_items": bundled,
        "sources": {c.name: (f"bundled:{c.name}.jsonl" if bundled else str(files[c.name]) if files else c.source)
                    for c in columns},
        "lm_eval_tasks": [task_id(c.name, config.protocol) for c in columns],
        "lm_eval_model": model_type, "lm_eval_model_args": model_args, "lm_eval_batch_size": batch_size,
        "lm_eval_device": device, "apply_chat_template": config.protocol == "cot",
        "protocol_description": PROTOCOL_DESCRIPTIONS[config.protocol],
    }
    run_dir = new_run_dir(config.output_dir, started, config.model,
                          f"ultramedical-{config.protocol}{'-bundled' if bundled else ''}")
    results = RunResults(
        run_id=run_dir.name, model=ModelInfo(id=config.model, identity=_identity(config.model), kind="causal"),
        bench=BenchInfo(name="ultramedical-bundled" if bundled else "ultramedical", content_hash=content_hash,
                        items=items),
        tracks={TRACK: track}, config=run_config, template_version=TEMPLATE_VERSION,
        template_hash=template_hash(config),
        software=software_versions(("lm_eval", "accelerate", "vllm")),
        started_at=started.isoformat(timespec="seconds"),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    _write_lm_eval_output(run_dir, output)
    write_run(run_dir, results, samples)
    return UltraMedicalOutcome(run_dir, results, output)


PROTOCOL_DESCRIPTIONS = {
    "loglik": "lm-eval multiple_choice: log-likelihood of each option label after lm-eval's own prompt, no chat "
              "template, 0-shot; acc and acc_norm",
    "cot": "UltraMedical's: 0-shot chain of thought, chat template without system prompt, greedy decoding; the "
           "final answer letter is extracted by an lm-eval filter pipeline; no extractable letter = wrong "
           "(no_answer rate reported)",
}


def _quiet_lm_eval() -> None:
    """lm-eval and datasets log every step at INFO/WARNING; keep their errors only (progress bars stay). lm-eval
    also runs ``git describe`` for its results and lets git print ``fatal: not a git repository`` outside a
    checkout: it gets the same lookup with git's complaint kept off the terminal."""
    import datasets
    import lm_eval.evaluator

    for name in ("lm_eval", "lm-eval", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    lm_eval.evaluator.get_git_commit_hash = _git_commit_quietly


def _git_commit_quietly() -> str | None:
    """What ``lm_eval.loggers.utils.get_git_commit_hash`` returns (``git describe --always``, else the commit
    lm-eval reads from the working folder's .git), without git's error output."""
    import os
    import subprocess

    from lm_eval.loggers.utils import get_commit_from_path

    try:
        done = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, check=True)
    except (subprocess.CalledProcessError, FileNotFoundError):
        return get_commit_from_path(os.getcwd())
    return done.stdout.strip()


# --------------------------------------------------------------------------------------------- results


def summarise(output: dict[str, Any], tasks: dict[str, Any], columns: Sequence[Column], protocol: str, seed: int
              ) -> tuple[TrackResult, list[UltraMedicalSample], str, int]:
    """lm-eval's output → the ultramedical track (metrics with seeded bootstrap CIs), our samples, the content
    hash of the evaluated documents, and their number.

    Per task ``NAME.acc`` (and ``NAME.acc_norm`` or ``NAME.no_answer``) are lm-eval's own aggregates, with a 95%
    percentile bootstrap CI over documents and lm-eval's stderr as its ``stderr``. ``avg`` is the
    unweighted mean of the tasks' accuracies (UltraMedical's Avg when all nine run), ``micro_avg`` pools all
    documents; their CIs resample documents within each task.
    """
    filter_key, names = FILTER[protocol], METRICS[protocol]
    metrics: dict[str, MetricValue] = {}
    replicates: dict[str, list[np.ndarray]] = {m: [] for m in names}
    sums: dict[str, list[float]] = {m: [] for m in names}
    sizes: list[int] = []
    samples: list[UltraMedicalSample] = []
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    for index, column in enumerate(columns):
        name = task_id(column.name, protocol)
        raw = sorted(output["samples"][name], key=lambda s: s["doc_id"])
        aggregate = output["results"][name]
        n = len(raw)
        weights = bootstrap_weights(n, seed + index)
        for metric in names:
            values = np.array([float(s[metric]) for s in raw])
            replicates[metric].append(weights @ values / n)
            sums[metric].append(float(values.sum()))
            low, high = percentile_interval(replicates[metric][-1])
            stderr = aggregate.get(f"{metric}_stderr,{filter_key}")
            metrics[f"{column.name}.{metric}"] = MetricValue(
                value=float(aggregate[f"{metric},{filter_key}"]), ci_low=low, ci_high=high, n=n,
                stderr=float(stderr) if isinstance(stderr, int | float) else None)
        sizes.append(n)
        counts[f"{column.name}.items"] = n
        if protocol == "cot":
            counts[f"{column.name}.no_answer"] = int(round(sums["no_answer"][-1]))
        for sample in raw:
            digest.update(f"{name}:{sample['doc_hash']}\n".encode())
            samples.append(_sample(column, protocol, tasks[column.name], sample))
    total = sum(sizes)

    def pooled(metric: str) -> MetricValue:  # over all documents; replicates resample within each task
        replicate = sum(r * size for r, size in zip(replicates[metric], sizes, strict=True)) / total
        low, high = percentile_interval(replicate)
        return MetricValue(value=sum(sums[metric]) / total, ci_low=low, ci_high=high, n=total)

    for metric in ["acc", "acc_norm"] if protocol == "loglik" else ["acc"]:
        suffix = "" if metric == "acc" else f"_{metric}"
        per_task = [metrics[f"{c.name}.{metric}"].value for c in columns]
        low, high = percentile_interval(np.mean(replicates[metric], axis=0))
        metrics[f"avg{suffix}"] = MetricValue(value=float(np.mean(per_task)), ci_low=low, ci_high=high, n=total)
        metrics[f"micro_avg{suffix}"] = pooled(metric)
    if protocol == "cot":
        metrics["no_answer"] = pooled("no_answer")
        counts["no_answer"] = int(round(sum(sums["no_answer"])))
    counts = {"items": total, "tasks": len(columns), **counts}
    track = TrackResult(metrics=metrics, by_category={}, by_specialty={}, counts=counts)
    return track, samples, digest.hexdigest()[:16], total


def _sample(column: Column, protocol: str, task, sample: dict[str, Any]) -> UltraMedicalSample:
    """One evaluated document (an lm-eval sample) in our samples.jsonl: the prompt, gold, prediction and scores."""
    doc = sample["doc"]
    common: dict[str, Any] = {"track": TRACK, "protocol": protocol, "task": column.name, "doc_id": sample["doc_id"],
                              "prompt": _prompt(sample), "doc": doc}
    if protocol == "loglik":
        choices = task.doc_to_choice(doc)
        target = sample["target"]
        scores = [float(r[0]) for r in sample["filtered_resps"]]
        return UltraMedicalSample(**common, gold=choices[target] if isinstance(target, int) else target,
                                  loglikelihoods=scores, prediction=choices[int(np.argmax(scores))],
                                  acc=sample["acc"], acc_norm=sample["acc_norm"])
    from promedical.bench.ultramedical.prompts import NO_ANSWER

    filtered = sample["filtered_resps"]
    extracted = filtered[0] if isinstance(filtered, list) and filtered else filtered
    response = sample["resps"][0][0] if sample.get("resps") and sample["resps"][0] else None
    return UltraMedicalSample(**common, gold=sample["target"], response=response, acc=sample["acc"],
                              no_answer=sample["no_answer"], prediction=None if extracted == NO_ANSWER else extracted)


def _prompt(sample: dict[str, Any]) -> str | None:
    arguments = sample.get("arguments")
    while isinstance(arguments, dict | list | tuple) and arguments:
        arguments = next(iter(arguments.values())) if isinstance(arguments, dict) else arguments[0]
    return arguments if isinstance(arguments, str) else None


def template_hash(config: UltraMedicalConfig) -> str:
    """Hash of everything that shapes a prompt or a score: the task YAMLs, prompts.py and, for the cot
    protocol, the chat-template arguments (thinking)."""
    digest = hashlib.sha256()
    for path in sorted([*TASK_DIR.glob("*.yaml"), TASK_DIR / "prompts.py"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    if config.protocol == "cot":
        digest.update(json.dumps(chat_template_kwargs(config.enable_thinking), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _identity(model: str) -> str:
    from promedical.bench.models.loading import model_identity

    return model_identity(model)




LM_EVAL_RESULTS_FILE = "lm_eval_results.json"
LM_EVAL_SAMPLES_FILE = "lm_eval_samples.jsonl"


def _write_lm_eval_output(run_dir: Path, output: dict[str, Any]) -> None:
    """lm-eval's own output, as lm-eval would write it: the results dict, and its per-document samples."""
    from lm_eval.utils import handle_non_serializable

    summary = {k: v for k, v in output.items() if k != "samples"}
    write_text_atomic(run_dir / LM_EVAL_RESULTS_FILE,
                      [json.dumps(summary, indent=2, default=handle_non_serializable, ensure_ascii=False) + "\n"])
    lines = (json.dumps({"task": name, **sample}, default=handle_non_serializable, ensure_ascii=False) + "\n"
             for name, task_samples in output.get("samples", {}).items() for sample in task_samples)
    write_text_atomic(run_dir / LM_EVAL_SAMPLES_FILE, lines)


def reported_rows() -> dict[str, Any]:
    """UltraMedical's reported results (percent), with their source: data for the leaderboard."""
    return json.loads(REPORTED_FILE.read_text(encoding="utf-8"))
