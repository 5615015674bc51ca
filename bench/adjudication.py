"""Blinded expert adjudication: rating packets out, filled packets in, disagreements to a senior adjudicator,
final labels into a bench file.

The workflow (``docs/adjudication.md`` walks through it with the commands):

1. :func:`export_study` turns the policy answers of one or more runs (or a bench file's own candidate
   responses) into **units** — pointwise: does this response meet this criterion; pairwise: which of two
   responses better meets it — assigns each unit to ``overlap`` of the K raters (balanced, seeded), and
   writes one packet per rater as ``.xlsx`` and ``.csv`` plus a **key file** for the study lead.
2. Packets are blind: no model name, path, run id or response id appears in them; each rater gets the rows
   in a different random order; pairwise sides are randomised per row; row ids are opaque. The key maps rows
   back to units and holds an HMAC-SHA256 (per-study secret) over each row's identity and content.
3. :func:`import_study` reads the filled packets, refuses anything that does not match the key (one line per
   problem, nothing written), and writes unblinded long-format ratings, agreement statistics and a
   disagreement queue — a new packet for a senior adjudicator, with its own key.
4. Importing the adjudicator's packet with that key resolves every unit into final labels in bench format;
   :func:`merge_labels` writes them into a bench file.

Design choices: a unit is *agreed* when all its ratings agree and there are at
least ``min_ratings`` (default 2) of them; anything else goes to the adjudicator. Cell text is compared after
normalising line endings and trimming surrounding whitespace (spreadsheet programs change both). The design
(assignment, row order, sides) is reproducible from the seed; the study id and HMAC secret are fresh random
values for every export, so two exports never accept each other's packets.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from promedical.bench.agreement import (
    PAIRWISE_SCALE,
    POINTWISE_SCALE,
    AgreementEstimate,
    LongRating,
    classification_agreement,
    long_agreement,
    read_long,
)
from promedical.bench.datasets import BenchDataError, load_bench, resolve_source
from promedical.bench.instances import labelled_instances
from promedical.bench.io import dump_item, replace_atomically, write_jsonl_atomic, write_text_atomic
from promedical.bench.results import RESULTS_FILE, SAMPLES_FILE, read_results, read_samples
from promedical.bench.schema import CRITERION_TYPES, BenchItem, FieldProblem, Labels
from promedical.bench.statistics import N_BOOTSTRAP

log = logging.getLogger(__name__)

KEY_FORMAT = "promedical-bench adjudication key"
KEY_VERSION = 1
KEY_FILE = "key.json"
QUEUE_KEY_FILE = "adjudication-key.json"
FINAL_LABELS_FILE = "final-labels.jsonl"
SHEET = "ratings"
TASKS = ("pointwise", "pairwise")
PACKET_COLUMNS = ("packet_id", "row_id", "task", "prompt", "criterion", "criterion_type", "response_a", "response_b",
                  "rating", "comment")
#: The adjudicator's packet adds the (anonymous) first-round ratings, read-only, before ``rating``.
QUEUE_COLUMNS = PACKET_COLUMNS[:8] + ("previous_ratings",) + PACKET_COLUMNS[8:]
#: Cells a rater must not change; each is covered by the row's HMAC.
READ_ONLY = ("task", "prompt", "criterion", "criterion_type", "response_a", "response_b", "previous_ratings")
RATINGS = {"pointwise": ("met", "not_met"), "pairwise": ("A", "B", "tie")}
#: Excel's limit on the characters in one cell.
MAX_CELL_CHARS = 32767
MAX_PROBLEM_LINES = 100
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")  # what openpyxl refuses in a cell

#: Model families whose names in a response would unblind it, matched as words: distinctive names in any case,
#: names that are also ordinary words ("llama", "palm", "mistral") only as the model's spelling.
MODEL_NAMES = (
    "ChatGPT", "GPT-?[0-9][A-Za-z0-9.]*", "OpenAI", "Anthropic", "Gemini", "MedGemma", "Qwen[0-9.]*", "Tongyi",
    "DeepSeek", "Mixtral", "BioMistral", "Baichuan", "ChatGLM", "InternLM", "Meditron", "iFlytek", "Xunfei",
    "HuatuoGPT", "ProMedical",
)
MODEL_NAMES_CASED = ("Claude", "Gemma", "Bard", "PaLM", "Med-PaLM", "LLaMA", "Llama", "Llama-?[0-9.]+", "Meta AI",
                     "Mistral", "Phi-[0-9.]+", "GLM-[0-9.]+", "ERNIE", "Kimi", "Grok", "Vicuna")
_MODEL_NAME_RE = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(MODEL_NAMES) + r")(?![A-Za-z])", re.IGNORECASE)
_MODEL_NAME_CASED_RE = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(MODEL_NAMES_CASED) + r")(?![A-Za-z])")


class AdjudicationError(BenchDataError):
    """Refused input: ``problems`` holds one line per problem (``str()`` joins them with newlines). The
    command line prints each on its own ``error:`` line and, when there are several, a closing count."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        self.path, self.line, self.field, self.more = "", None, None, len(self.problems) - 1
        self.problem = self.problems[0] if self.problems else ""
        Exception.__init__(self, "\n".join(self.problems))

    def message(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        return f"refused ({len(self.problems)} problems); nothing was written"

    def report(self) -> list[str]:
        return [self.message()] if len(self.problems) == 1 else [*self.problems, self.message()]


# --------------------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class SourceResponse:
    """A candidate response: ``id`` is unique within its item (for runs: the model id)."""

    id: str
    text: str
    model: str | None
    run_id: str | None = None


@dataclass
class Source:
    """What a study rates: items (rubric and conversation, without responses or labels) and the responses."""

    kind: str
    items: dict[str, BenchItem]
    responses: dict[str, list[SourceResponse]]
    description: dict[str, Any]
    identifiers: set[str] = field(default_factory=set)
    skipped: Counter = field(default_factory=Counter)


def _signature(item: BenchItem) -> tuple:
    return item.prompt, tuple((c.id, c.type, c.text) for c in item.rubric)


def _bare(item: BenchItem) -> BenchItem:
    return item.model_copy(update={"responses": [], "labels": None})


def _read_run(run_dir: Path):  # noqa: ANN202 - (RunResults, samples)
    if not (run_dir / RESULTS_FILE).is_file():
        raise AdjudicationError([f"{run_dir}: not a run directory (no {RESULTS_FILE})"])
    try:
        results = read_results(run_dir)
    except (ValidationError, ValueError) as error:
        first = str(error).splitlines()[0]
        raise AdjudicationError([f"{run_dir / RESULTS_FILE}: not a valid results file: {first}"]) from None
    try:
        samples = read_samples(run_dir)
    except FileNotFoundError:
        raise AdjudicationError([f"{run_dir}: no {SAMPLES_FILE}"]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdjudicationError([f"{run_dir / SAMPLES_FILE}: not valid JSONL: {error}"]) from None
    return results, samples


def _run_bench_items(results) -> dict[str, BenchItem] | None:  # noqa: ANN001 - RunResults
    """The run's own bench items when its bench can still be loaded locally with the same content hash."""
    from promedical.bench.runner import bench_content_hash

    try:
        resolved = resolve_source(results.bench.name)
        if isinstance(resolved, str):  # a Hugging Face id: not fetched for this
            return None
        items = load_bench(resolved)[: results.bench.items]
    except BenchDataError:
        return None
    if bench_content_hash(items) != results.bench.content_hash:
        return None
    return {item.id: _bare(item) for item in items}


def _rebuild_item(sample: dict[str, Any]) -> BenchItem:
    """A bench item from a policy sample: the prompt as one user message; the criteria (equal proficiency
    weights, as the sample does not carry weights)."""
    return BenchItem.model_validate({
        "id": sample["item_id"], "category": sample["category"], "specialty": sample["specialty"],
        "messages": [{"role": "user", "content": sample["prompt"]}],
        "rubric": [{"id": j["criterion_id"], "type": j["criterion_type"], "text": j["criterion"]}
                   for j in sample["judgements"]],
    })


def load_runs(run_dirs: Sequence[str | Path]) -> Source:
    """The policy answers of one or more runs of different models on the same bench. Each answer becomes a
    response whose id is its run's model id. Items come from the run's bench when it still loads with the
    same content hash, otherwise they are rebuilt from the samples (see :func:`_rebuild_item`)."""
    if not run_dirs:
        raise AdjudicationError(["give at least one --run RUN_DIR (or --bench PATH)"])
    items: dict[str, BenchItem] = {}
    from_bench: set[str] = set()
    origin: dict[str, str] = {}
    responses: dict[str, list[SourceResponse]] = defaultdict(list)
    models: dict[str, str] = {}
    identifiers: set[str] = set()
    skipped: Counter = Counter()
    runs = []
    for run_dir in map(Path, run_dirs):
        results, samples = _read_run(run_dir)
        model = results.model.id
        if model in models:
            raise AdjudicationError([f"{run_dir}: model {model!r} is also the model of {models[model]}; "
                                     "export one run per model"])
        models[model] = str(run_dir)
        policy = [s for s in samples if s.get("track") == "policy"]
        if not policy:
            raise AdjudicationError([f"{run_dir}: no policy-track answers (run it with --track policy or all)"])
        bench_items = _run_bench_items(results)
        identifiers |= {model, results.model.identity, results.run_id, run_dir.name, str(run_dir),
                        str(run_dir.resolve())}
        for track in results.tracks.values():
            if track.judge is not None:
                identifiers |= {track.judge.id, track.judge.identity}
        for number, sample in enumerate(policy, start=1):
            item_id = str(sample.get("item_id"))
            try:
                item = bench_items.get(item_id) if bench_items else None
                item = item or _rebuild_item(sample)
            except (KeyError, TypeError, ValidationError, FieldProblem) as error:
                first = str(error).splitlines()[0]
                raise AdjudicationError([f"{run_dir / SAMPLES_FILE}: policy sample {number}: cannot rebuild its "
                                         f"item: {first}"]) from None
            if item_id in items and _signature(items[item_id]) != _signature(item):
                raise AdjudicationError([f"{run_dir}: item {item_id!r} has a different prompt or rubric than in "
                                         f"{origin[item_id]}; export runs made on the same bench"])
            if item_id not in items or (bench_items and item_id not in from_bench):
                items[item_id] = item
                origin[item_id] = str(run_dir)
                if bench_items:
                    from_bench.add(item_id)
            answer = sample.get("answer")
            if answer is None:
                skipped["generation_failures"] += 1
                continue
            responses[item_id].append(SourceResponse(model, str(answer), model, results.run_id))
        runs.append({"path": str(run_dir), "run_id": results.run_id, "model": model, "bench": results.bench.name,
                     "bench_hash": results.bench.content_hash, "items_from": "bench" if bench_items else "samples"})
    identifiers.discard("")
    return Source("runs", items, dict(responses), {"type": "runs", "runs": runs}, identifiers, skipped)


def load_bench_responses(path: str | Path) -> Source:
    """A bench file's own candidate responses (items without responses are skipped and counted)."""
    loaded = load_bench(path)
    items, responses, identifiers, skipped = {}, {}, set(), Counter()
    for item in loaded:
        if not item.responses:
            skipped["items_without_responses"] += 1
            continue
        items[item.id] = _bare(item)
        responses[item.id] = [SourceResponse(r.id, r.text, r.model) for r in item.responses]
        identifiers |= {r.model for r in item.responses if r.model}
    if not items:
        raise AdjudicationError([f"{path}: no item has candidate responses to rate"])
    from promedical.bench.runner import bench_content_hash

    description = {"type": "bench", "path": str(path), "bench_hash": bench_content_hash(loaded)}
    return Source("bench", items, responses, description, identifiers, skipped)


# --------------------------------------------------------------------------------------------- units


@dataclass(frozen=True)
class Unit:
    """One thing to rate: a response against a criterion (pointwise) or two responses against it (pairwise,
    ``responses`` in canonical order a, b)."""

    id: str
    task: str
    item_id: str
    criterion_id: str
    criterion_type: str
    responses: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "item_id": self.item_id, "criterion_id": self.criterion_id,
                "criterion_type": self.criterion_type, "responses": list(self.responses)}

    @classmethod
    def from_dict(cls, unit_id: str, data: dict[str, Any]) -> Unit:
        return cls(unit_id, data["task"], data["item_id"], data["criterion_id"], data["criterion_type"],
                   tuple(data["responses"]))


def build_units(source: Source, tasks: Sequence[str] = TASKS, criterion_types: Sequence[str] | None = None
                ) -> list[Unit]:
    """Every pointwise unit (response × criterion) and every pairwise unit (pair of responses × criterion) of
    the source, in item, criterion and response order; pairwise only where an item has ≥ 2 responses."""
    types = set(criterion_types or CRITERION_TYPES)
    units = []
    for item_id, item in source.items.items():
        ids = [r.id for r in source.responses.get(item_id, [])]
        for criterion in item.rubric:
            if criterion.type not in types:
                continue
            if "pointwise" in tasks:
                units += [Unit("|".join(("pointwise", item_id, criterion.id, r)), "pointwise", item_id, criterion.id,
                               criterion.type, (r,)) for r in ids]
            if "pairwise" in tasks:
                units += [Unit("|".join(("pairwise", item_id, criterion.id, a, b)), "pairwise", item_id,
                               criterion.id, criterion.type, (a, b)) for a, b in combinations(ids, 2)]
    return units


def assign_raters(n_units: int, n_raters: int, overlap: int, rng: np.random.Generator) -> list[list[int]]:
    """For each unit, the ``overlap`` raters who rate it: units in random order each go to the least-loaded
    raters, preferring raters who have shared fewest units so far (so every rater pair overlaps about
    equally); loads differ by at most one. ``overlap == n_raters`` is the fully crossed design."""
    load = np.zeros(n_raters)
    shared = np.zeros((n_raters, n_raters))
    assignment: list[list[int]] = [[] for _ in range(n_units)]
    for unit in rng.permutation(n_units):
        chosen: list[int] = []
        for _ in range(overlap):
            tiebreak = rng.random(n_raters)
            best = min((r for r in range(n_raters) if r not in chosen),
                       key=lambda r: (load[r], sum(shared[r, c] for c in chosen), tiebreak[r]))
            chosen.append(best)
        for r in chosen:
            load[r] += 1
            for c in chosen:
                if c != r:
                    shared[r, c] += 1
        assignment[unit] = sorted(chosen)
    return assignment


# --------------------------------------------------------------------------------------------- cells


def _clean(text: str) -> str:
    """Cell text: line endings normalised, characters a spreadsheet cannot hold replaced by U+FFFD."""
    return _ILLEGAL.sub("\ufffd", text.replace("\r\n", "\n").replace("\r", "\n"))


def _canonical(text: Any) -> str:
    """What is compared and signed: line endings normalised and surrounding whitespace trimmed."""
    value = "" if text is None else str(text)
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _render_prompt(item: BenchItem) -> str:
    if len(item.messages) == 1:
        return _clean(item.prompt)
    return _clean("\n\n".join(f"[{m.role}]\n{m.content}" for m in item.messages))


def _row_mac(secret: bytes, study: str, packet: str, row_id: str, unit: str, swap: bool, cells: dict[str, str]
             ) -> str:
    message = json.dumps([study, packet, row_id, unit, swap, {k: _canonical(v) for k, v in sorted(cells.items())}],
                         ensure_ascii=False, separators=(",", ":"))
    return hmac.new(secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


def _token(secret: bytes, *parts: str, length: int = 12) -> str:
    return hmac.new(secret, "|".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()[:length]


@dataclass
class _Study:
    """The content of a key file, in memory."""

    kind: str
    study_id: str
    secret: bytes
    items: dict[str, dict[str, Any]]
    responses: dict[str, dict[str, dict[str, Any]]]
    display: dict[str, Any]
    units: dict[str, Unit]
    packets: dict[str, dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    def cells(self, unit: Unit, swap: bool, previous: str | None = None) -> dict[str, str]:
        shown = list(unit.responses[::-1] if swap else unit.responses)
        texts = [self.display["responses"][unit.item_id][r] for r in shown]
        cells = {"task": unit.task, "prompt": self.display["prompts"][unit.item_id],
                 "criterion": self.display["criteria"][unit.item_id][unit.criterion_id],
                 "criterion_type": unit.criterion_type, "response_a": texts[0],
                 "response_b": texts[1] if len(texts) > 1 else ""}
        if previous is not None:
            cells["previous_ratings"] = previous
        return cells

    def to_json(self) -> dict[str, Any]:
        return {"format": KEY_FORMAT, "version": KEY_VERSION, "kind": self.kind, "study_id": self.study_id,
                "secret": self.secret.hex(), **self.extra, "items": self.items, "responses": self.responses,
                "display": self.display, "units": {u.id: u.as_dict() for u in self.units.values()},
                "packets": self.packets}


def load_key(path: str | Path) -> _Study:
    """Read and check a key file written by :func:`export_study` or :func:`import_study`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdjudicationError([f"{path}: no such key file"]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdjudicationError([f"{path}: not a key file (invalid JSON: {error})"]) from None
    if not isinstance(data, dict) or data.get("format") != KEY_FORMAT:
        raise AdjudicationError([f"{path}: not a promedical-bench adjudication key file"])
    if data.get("version") != KEY_VERSION:
        raise AdjudicationError([f"{path}: key version {data.get('version')!r}; this version reads {KEY_VERSION}"])
    try:
        units = {uid: Unit.from_dict(uid, u) for uid, u in data["units"].items()}
        extra = {k: v for k, v in data.items() if k not in {"format", "version", "kind", "study_id", "secret", "items",
                                                           "responses", "display", "units", "packets"}}
        return _Study(data["kind"], data["study_id"], bytes.fromhex(data["secret"]), data["items"], data["responses"],
                      data["display"], units, data["packets"], extra)
    except (KeyError, TypeError, ValueError) as error:
        raise AdjudicationError([f"{path}: incomplete key file ({type(error).__name__}: {error})"]) from None


# --------------------------------------------------------------------------------------------- writing packets

_INSTRUCTIONS = {
    "ratings": [
        "How to fill in this packet",
        "",
        "Each row asks one question about one or two answers to a patient's or clinician's message (column prompt).",
        "task = pointwise: does response_a meet the criterion? Choose met or not_met in the rating column.",
        "task = pairwise: which response, response_a or response_b, better meets the criterion? Choose A, B or tie.",
        "criterion_type safety: the criterion is a requirement (e.g. 'Does not claim to be the user's physician');",
        "    choose not_met when the response violates it.",
        "Leave rating empty for a row you cannot judge; it is counted as not rated. comment is optional free text.",
        "",
        "Do not edit any other cell, add or delete rows, or copy rows between packets: the study lead's software",
        "checks every row against a signature when the packet comes back and refuses changed rows.",
        "The answers come from different systems in a random order; nothing in this packet says which is which.",
    ],
    "adjudication": [
        "How to fill in this adjudication packet",
        "",
        "Each row is a question on which the first-round raters disagreed (or which too few of them rated).",
        "previous_ratings shows their anonymous ratings and comments, in this row's A/B orientation.",
        "task = pointwise: choose met or not_met. task = pairwise: choose A, B or tie. Your rating is final.",
        "criterion_type safety: choose not_met when the response violates the requirement.",
        "Leave rating empty to leave a row unresolved. comment is optional.",
        "",
        "Do not edit any other cell, add or delete rows: changed rows are refused when the packet comes back.",
    ],
}
_WIDTHS = {"packet_id": 12, "row_id": 14, "task": 10, "prompt": 50, "criterion": 40, "criterion_type": 13,
           "response_a": 60, "response_b": 60, "previous_ratings": 30, "rating": 11, "comment": 30}


def write_packet_xlsx(path: Path, rows: Sequence[dict[str, str]], columns: Sequence[str], kind: str) -> None:
    """One packet as a workbook: a ``ratings`` sheet (frozen header, wrapped text, a dropdown restricting each
    rating cell to its task's values, every cell but rating and comment locked) and an instructions sheet."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, Protection
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    workbook = Workbook()
    workbook.properties.creator = "promedical-bench"
    workbook.properties.lastModifiedBy = "promedical-bench"
    sheet = workbook.active
    sheet.title = SHEET
    wrap = Alignment(wrap_text=True, vertical="top")
    for col, name in enumerate(columns, start=1):
        cell = sheet.cell(row=1, column=col, value=name)
        cell.font = Font(bold=True)
        sheet.column_dimensions[get_column_letter(col)].width = _WIDTHS.get(name, 15)
    validations = {}
    for task, values in RATINGS.items():
        validations[task] = DataValidation(type="list", formula1='"' + ",".join(values) + '"', allow_blank=True,
                                           showErrorMessage=True, errorTitle="Not an allowed rating",
                                           error=f"Choose {', '.join(values)}, or leave the cell empty.",
                                           promptTitle="rating", prompt=" / ".join(values), showInputMessage=True)
    editable = {"rating", "comment"}
    rating_col = get_column_letter(columns.index("rating") + 1)
    for r, row in enumerate(rows, start=2):
        for col, name in enumerate(columns, start=1):
            cell = sheet.cell(row=r, column=col)
            cell.value = row.get(name, "")
            cell.data_type = "s"  # text, never a formula, even when it starts with '='
            cell.alignment = wrap
            if name in editable:
                cell.protection = Protection(locked=False)
        validations[row["task"]].add(f"{rating_col}{r}")
    for validation in validations.values():
        if validation.sqref.ranges:
            sheet.add_data_validation(validation)
    sheet.freeze_panes = "A2"
    sheet.protection.sheet = True
    sheet.protection.formatColumns = False  # raters may widen columns and rows to read
    sheet.protection.formatRows = False
    notes = workbook.create_sheet("instructions")
    notes.column_dimensions["A"].width = 110
    for r, line in enumerate(_INSTRUCTIONS[kind], start=1):
        notes.cell(row=r, column=1, value=line).font = Font(bold=r == 1)
    notes.protection.sheet = True
    replace_atomically(path, workbook.save)


def packet_csv(rows: Sequence[dict[str, str]], columns: Sequence[str]) -> str:
    """One packet as CSV text (written with a UTF-8 byte-order mark so that spreadsheets detect UTF-8)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return "\ufeff" + buffer.getvalue()


def _stage(output_dir: Path) -> Path:
    """A fresh staging folder beside ``output_dir``; refuses an ``output_dir`` that holds anything."""
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise AdjudicationError([f"{output_dir}: already exists and is not empty; choose a new folder "
                                 "(an export never overwrites another study's key)"])
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.staging-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging


def _publish(staging: Path, output_dir: Path) -> None:
    if output_dir.exists():
        output_dir.rmdir()  # empty, checked by _stage
    os.replace(staging, output_dir)


# --------------------------------------------------------------------------------------------- export


@dataclass
class ExportResult:
    output_dir: Path
    key_path: Path
    packets: list[dict[str, Any]]
    units: Counter
    warnings: list[str]
    skipped: Counter
    pair_overlap: dict[str, int]


def _self_naming(source: Source) -> list[str]:
    """Warnings for responses that name a model (their own or a known family): blinding at risk."""
    warnings = []
    for item_id, responses in source.responses.items():
        for response in responses:
            model = response.model or ""
            own = {model, model.split(":", 1)[-1], Path(model.split(":", 1)[-1]).name}
            text = response.text.lower()
            names = {n for n in own if len(n) >= 5 and n.lower() in text}  # shorter ones: too many false alarms
            names |= {n for n in source.identifiers if len(n) >= 6 and n.lower() in text}
            names |= {m.group(0) for m in _MODEL_NAME_RE.finditer(response.text)}
            names |= {m.group(0) for m in _MODEL_NAME_CASED_RE.finditer(response.text)}
            if names:
                shown = ", ".join(repr(n) for n in sorted(names)[:3])
                who = f"model {response.model!r}" if response.model else f"response {response.id!r}"
                warnings.append(f"item {item_id!r}, {who}: the response names a model ({shown}); the packets keep "
                                "it as written, so review it before sending them out")
    return warnings


def export_study(source: Source, output_dir: str | Path, raters: int, *, overlap: int = 2, seed: int = 0,
                 tasks: Sequence[str] = TASKS, criterion_types: Sequence[str] | None = None,
                 max_units: int | None = None, rater_names: Sequence[str] | None = None) -> ExportResult:
    """Write one blinded packet per rater (``xlsx/NAME.xlsx`` and ``csv/NAME.csv``) and the key file
    (``key.json``, the study lead's: it maps rows back to models) into ``output_dir``, all or nothing.

    Each unit is rated by ``overlap`` raters (balanced, seeded); ``max_units`` draws a seeded random subset of
    units; a response that names a model is warned about (logged and returned), never rewritten."""
    output_dir = Path(output_dir)
    problems = []
    if raters < 2:
        problems.append(f"--raters {raters}: a study needs at least 2 raters")
    if not 2 <= overlap <= max(raters, 2):
        problems.append(f"--overlap {overlap}: must be between 2 and the number of raters ({raters})")
    names = list(rater_names) if rater_names else [f"rater-{i + 1}" for i in range(raters)]
    if len(names) != raters:
        problems.append(f"--rater-names gives {len(names)} names for {raters} raters")
    bad = [n for n in names if not _SAFE_NAME.match(n)]
    if bad:
        problems.append(f"rater name {bad[0]!r}: use letters, digits, '.', '_' or '-' (it names the packet files)")
    if len(set(names)) != len(names):
        problems.append("rater names must be unique")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        problems.append(f"tasks must be among {', '.join(TASKS)}")
    if problems:
        raise AdjudicationError(problems)
    units = build_units(source, tasks, criterion_types)
    if not units:
        raise AdjudicationError(["nothing to rate: no units for these tasks and criterion types (pairwise needs "
                                 "at least two responses per item: two runs, or a bench with several responses)"])
    rng = np.random.default_rng(seed)
    if max_units is not None and max_units < len(units):
        keep = np.sort(rng.choice(len(units), size=max_units, replace=False))
        units = [units[i] for i in keep]
    if len(units) * overlap < raters:
        raise AdjudicationError([f"{len(units)} unit(s) × overlap {overlap} cannot give each of {raters} raters a "
                                 "row; use fewer raters or more units"])

    used_items = dict.fromkeys(u.item_id for u in units)
    used_responses = defaultdict(set)
    for unit in units:
        used_responses[unit.item_id].update(unit.responses)
    display: dict[str, Any] = {"prompts": {}, "criteria": {}, "responses": {}}
    cleaned = 0
    for item_id in used_items:
        item = source.items[item_id]
        display["prompts"][item_id] = _render_prompt(item)
        display["criteria"][item_id] = {c.id: _clean(c.text) for c in item.rubric}
        display["responses"][item_id] = {r.id: _clean(r.text) for r in source.responses[item_id]
                                         if r.id in used_responses[item_id]}
        originals = [r.text.replace("\r\n", "\n").replace("\r", "\n") for r in source.responses[item_id]
                     if r.id in used_responses[item_id]]
        cleaned += sum(a != b for a, b in zip(originals, display["responses"][item_id].values(), strict=True))
        for label, text in [("prompt", display["prompts"][item_id]),
                            *[(f"criterion {k}", v) for k, v in display["criteria"][item_id].items()],
                            *[(f"response of {k!r}", v) for k, v in display["responses"][item_id].items()]]:
            if len(text) > MAX_CELL_CHARS:
                problems.append(f"item {item_id!r}: the {label} has {len(text)} characters, more than a spreadsheet "
                                f"cell holds ({MAX_CELL_CHARS})")
    if problems:
        raise AdjudicationError(problems)
    warnings = _self_naming(Source(source.kind, source.items,
                                   {i: [r for r in source.responses[i] if r.id in used_responses[i]]
                                    for i in used_items}, {}, source.identifiers))
    if cleaned:
        warnings.append(f"{cleaned} response(s) contained control characters a spreadsheet cannot hold; they are "
                        "shown as U+FFFD in the packets (the key keeps the original text)")

    study_id = secrets.token_hex(3)
    secret = secrets.token_bytes(32)
    assignment = assign_raters(len(units), raters, overlap, rng)
    study = _Study("ratings", study_id, secret,
                   items={i: json.loads(dump_item(source.items[i])) for i in used_items},
                   responses={i: {r.id: {"text": r.text, "model": r.model, "run_id": r.run_id}
                                  for r in source.responses[i] if r.id in used_responses[i]} for i in used_items},
                   display=display, units={u.id: u for u in units}, packets={},
                   extra={"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seed": seed,
                          "overlap": overlap, "raters": names, "source": source.description,
                          "warnings": warnings})
    per_rater: list[list[int]] = [[] for _ in range(raters)]
    for index, chosen in enumerate(assignment):
        for r in chosen:
            per_rater[r].append(index)
    packet_rows: dict[str, list[dict[str, str]]] = {}
    for r, name in enumerate(names):
        packet_id = f"{study_id}-R{r + 1}"
        rows, key_rows = [], {}
        for index in rng.permutation(per_rater[r]):
            unit = units[int(index)]
            swap = bool(unit.task == "pairwise" and rng.random() < 0.5)
            row_id = _token(secret, "row", packet_id, unit.id)
            cells = study.cells(unit, swap)
            key_rows[row_id] = {"unit": unit.id, "swap": swap,
                                "hmac": _row_mac(secret, study_id, packet_id, row_id, unit.id, swap, cells)}
            rows.append({"packet_id": packet_id, "row_id": row_id, **cells, "rating": "", "comment": ""})
        if len(key_rows) != len(rows):
            raise AssertionError("row id collision")  # 48-bit tokens: practically impossible
        study.packets[packet_id] = {"rater": name, "file": name, "rows": key_rows}
        packet_rows[packet_id] = rows

    staging = _stage(output_dir)
    try:
        (staging / "xlsx").mkdir()
        (staging / "csv").mkdir()
        for packet_id, rows in packet_rows.items():
            name = study.packets[packet_id]["file"]
            write_packet_xlsx(staging / "xlsx" / f"{name}.xlsx", rows, PACKET_COLUMNS, "ratings")
            write_text_atomic(staging / "csv" / f"{name}.csv", [packet_csv(rows, PACKET_COLUMNS)])
        write_text_atomic(staging / KEY_FILE, [json.dumps(study.to_json(), ensure_ascii=False, indent=1) + "\n"])
        os.chmod(staging / KEY_FILE, 0o600)  # it holds the study's secret
        _publish(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for warning in warnings:
        log.warning(warning)
    pair_overlap = Counter()
    for chosen in assignment:
        for a, b in combinations(chosen, 2):
            pair_overlap[f"{names[a]}+{names[b]}"] += 1
    packets = [{"rater": study.packets[p]["rater"], "packet_id": p, "rows": len(rows),
                "xlsx": str(output_dir / "xlsx" / f"{study.packets[p]['file']}.xlsx"),
                "csv": str(output_dir / "csv" / f"{study.packets[p]['file']}.csv")} for p, rows in packet_rows.items()]
    return ExportResult(output_dir, output_dir / KEY_FILE, packets, Counter(u.task for u in units), warnings,
                        source.skipped, dict(pair_overlap))


# --------------------------------------------------------------------------------------------- reading packets


_EXTRA = "\0extra"  # where read_packet_file puts text found right of the last column


@dataclass
class _FileRow:
    where: str
    values: dict[str, str]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def read_packet_file(path: Path) -> tuple[list[str], list[_FileRow]]:
    """The header and the non-empty rows of a packet file (``.xlsx``: its ``ratings`` sheet; ``.csv``).
    ``where`` is ``FILE:ROW`` with ROW the spreadsheet row number (header = 1). Raises
    :class:`AdjudicationError` when the file cannot be read at all."""
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook

        try:
            workbook = load_workbook(path, read_only=True, data_only=True)
        except Exception as error:  # zipfile, XML and openpyxl errors: an unreadable workbook
            raise AdjudicationError([f"{path}: not a readable .xlsx workbook ({type(error).__name__})"]) from None
        try:
            if SHEET not in workbook.sheetnames:
                raise AdjudicationError([f"{path}: no sheet named {SHEET!r}"])
            table = [[_text(v) for v in row] for row in workbook[SHEET].iter_rows(values_only=True)]
        finally:
            workbook.close()
    else:
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                table = [list(row) for row in csv.reader(handle)]
        except UnicodeDecodeError:
            raise AdjudicationError([f"{path}: not UTF-8 text (save the packet as CSV UTF-8)"]) from None
        except csv.Error as error:
            raise AdjudicationError([f"{path}: not a readable CSV file ({error})"]) from None
    if not table:
        raise AdjudicationError([f"{path}: empty file"])
    header = [h.strip() for h in table[0]]
    while header and not header[-1]:
        header.pop()
    rows = []
    for number, values in enumerate(table[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        extra = [v for v in values[len(header):] if v.strip()]
        record = {name: (values[i] if i < len(values) else "") for i, name in enumerate(header)}
        if extra:
            record[_EXTRA] = extra[0]
        rows.append(_FileRow(f"{path}:{number}", record))
    return header, rows


def _packet_files(packets_dir: Path) -> list[Path]:
    if not packets_dir.is_dir():
        raise AdjudicationError([f"{packets_dir}: no such folder"])
    files = sorted(p for p in packets_dir.iterdir() if p.is_file() and p.suffix in (".xlsx", ".csv")
                   and not p.name.startswith(("~$", ".")))
    if not files:
        raise AdjudicationError([f"{packets_dir}: no .xlsx or .csv packets in this folder (put the returned "
                                 "packets, one file per rater, directly in it)"])
    return files


@dataclass(frozen=True)
class Rating:
    """One validated packet row: ``value`` in canonical orientation (pairwise a/b/tie), "" when unrated."""

    packet_id: str
    rater: str
    row_id: str
    unit: str
    value: str
    comment: str
    shown: str  # the rating as written (A/B in the row's own orientation)


def _canonical_value(task: str, shown: str, swap: bool) -> str:
    if task == "pointwise" or shown in ("", "tie"):
        return shown
    side = shown.lower()
    return {"a": "b", "b": "a"}[side] if swap else side


def read_packets(packets_dir: str | Path, study: _Study, *, partial: bool = False) -> tuple[list[Rating], Counter]:
    """Read and check every packet in ``packets_dir`` against the key; returns the ratings (unrated rows
    included, with an empty value) and counts. Every problem found becomes one line of the
    :class:`AdjudicationError` raised at the end: unreadable files, wrong columns, packets not from this key's
    export, the same packet (rater) twice, unknown, missing, moved or duplicate row ids, edited read-only
    cells, ratings outside the allowed values, and (unless ``partial``) packets not returned."""
    columns = QUEUE_COLUMNS if study.kind == "adjudication" else PACKET_COLUMNS
    read_only = [c for c in READ_ONLY if c in columns]
    row_owner = {row_id: p for p, packet in study.packets.items() for row_id in packet["rows"]}
    problems: list[str] = []
    seen_packets: dict[str, Path] = {}
    ratings: list[Rating] = []
    counts: Counter = Counter()
    for path in _packet_files(Path(packets_dir)):
        try:
            header, rows = read_packet_file(path)
        except AdjudicationError as error:
            problems += error.problems
            continue
        missing = [c for c in columns if c not in header]
        unexpected = [c for c in header if c not in columns]
        if missing or unexpected or len(set(header)) != len(header):
            detail = (f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(unexpected)}"
                      if unexpected else "a column appears twice")
            problems.append(f"{path}:1: header: {detail} (a packet has exactly the columns {', '.join(columns)})")
            continue
        if not rows:
            problems.append(f"{path}: no rows")
            continue
        ids = Counter(r.values["packet_id"].strip() for r in rows)
        packet_id = ids.most_common(1)[0][0]
        if packet_id not in study.packets:
            ours = ", ".join(sorted(study.packets)[:4])
            problems.append(f"{path}: packet {packet_id!r} is not from this key's export (study {study.study_id}: "
                            f"packets {ours}{', ...' if len(study.packets) > 4 else ''})")
            continue
        packet = study.packets[packet_id]
        if packet_id in seen_packets:
            problems.append(f"{path}: packet {packet_id} (rater {packet['rater']}) was already read from "
                            f"{seen_packets[packet_id]}: the same rater twice; keep one of the two files")
            continue
        seen_packets[packet_id] = path
        seen_rows: dict[str, str] = {}
        for row in rows:
            values = row.values
            if _EXTRA in values:
                outside = values[_EXTRA][:40]
                problems.append(f"{row.where}: text outside the packet's columns ({outside!r})")
                continue
            row_packet, row_id = values["packet_id"].strip(), values["row_id"].strip()
            if row_packet != packet_id:
                problems.append(f"{row.where}: packet_id: {row_packet!r} in a file of packet {packet_id}; rows may "
                                "not move between packets")
                continue
            if not row_id:
                problems.append(f"{row.where}: row_id: empty")
                continue
            if row_id not in packet["rows"]:
                owner = row_owner.get(row_id)
                problems.append(f"{row.where}: row_id: {row_id!r} belongs to packet {owner} (rater "
                                f"{study.packets[owner]['rater']}), not {packet_id}" if owner else
                                f"{row.where}: row_id: unknown row id {row_id!r} (not from this key's export)")
                continue
            if row_id in seen_rows:
                problems.append(f"{row.where}: row_id: duplicate row id {row_id!r} (first at {seen_rows[row_id]})")
                continue
            seen_rows[row_id] = row.where
            entry = packet["rows"][row_id]
            unit = study.units[entry["unit"]]
            expected = study.cells(unit, entry["swap"], entry.get("previous"))
            edited = [c for c in read_only if _canonical(values[c]) != _canonical(expected[c])]
            for column in edited:
                problems.append(f"{row.where}: {column}: edited (a read-only cell; it must stay as exported)")
            if edited:
                continue
            cells = {c: values[c] for c in read_only}
            mac = _row_mac(study.secret, study.study_id, packet_id, row_id, unit.id, entry["swap"], cells)
            if not hmac.compare_digest(mac, entry["hmac"]):
                problems.append(f"{row.where}: row {row_id} fails its HMAC-SHA256 check: the key file does not "
                                "match this packet")
                continue
            shown = values["rating"].strip()
            allowed = RATINGS[unit.task]
            match = [v for v in allowed if v.lower() == shown.lower()]
            if shown and not match:
                problems.append(f"{row.where}: rating: {shown!r} is not one of {', '.join(allowed)} (or empty for "
                                "not rated)")
                continue
            shown = match[0] if match else ""
            counts["rated" if shown else "unrated"] += 1
            ratings.append(Rating(packet_id, packet["rater"], row_id, unit.id,
                                  _canonical_value(unit.task, shown, entry["swap"]), values["comment"].strip(), shown))
        absent = [r for r in packet["rows"] if r not in seen_rows]
        if absent:
            shown_ids = ", ".join(absent[:3]) + (", ..." if len(absent) > 3 else "")
            problems.append(f"{path}: packet {packet_id} is missing {len(absent)} row(s) ({shown_ids}); rows must not "
                            "be deleted (leave rating empty instead)")
    for packet_id, packet in study.packets.items():
        if packet_id not in seen_packets:
            if partial:
                counts["packets_not_returned"] += 1
            else:
                problems.append(f"{packets_dir}: no file for packet {packet_id} (rater {packet['rater']}); add it, "
                                "or pass --partial to import without it")
    if problems:
        raise AdjudicationError(_cap(problems))
    counts["packets"] = len(seen_packets)
    return ratings, counts


def _cap(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEM_LINES:
        return problems
    return problems[:MAX_PROBLEM_LINES] + [f"... and {len(problems) - MAX_PROBLEM_LINES} more problems"]


# --------------------------------------------------------------------------------------------- import

LONG_COLUMNS = ("unit", "rater", "value", "task", "criterion_type", "item_id", "criterion_id", "category", "specialty",
                "response_a", "response_b", "model_a", "model_b", "comment", "packet_id", "row_id")


def _long_rows(study: _Study, ratings: Iterable[Rating]) -> list[dict[str, str]]:
    rows = []
    for rating in ratings:
        if not rating.value:
            continue
        unit = study.units[rating.unit]
        item = study.items[unit.item_id]
        models = [study.responses[unit.item_id][r].get("model") or "" for r in unit.responses]
        rows.append({"unit": unit.id, "rater": rating.rater, "value": rating.value, "task": unit.task,
                     "criterion_type": unit.criterion_type, "item_id": unit.item_id,
                     "criterion_id": unit.criterion_id, "category": item["category"], "specialty": item["specialty"],
                     "response_a": unit.responses[0], "response_b": unit.responses[1] if len(unit.responses) > 1
                     else "", "model_a": models[0], "model_b": models[1] if len(models) > 1 else "",
                     "comment": rating.comment, "packet_id": rating.packet_id, "row_id": rating.row_id})
    return rows


def write_long(path: Path, rows: Sequence[dict[str, str]]) -> None:
    """Long-format ratings as CSV or JSONL (by the suffix), atomically."""
    if path.suffix == ".jsonl":
        write_text_atomic(path, (json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(LONG_COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, [buffer.getvalue()])


@dataclass
class ImportResult:
    kind: str
    counts: Counter
    outputs: dict[str, Path]
    agreement: dict[str, Any] | None = None
    queued: int = 0


def _previous(task: str, swap: bool, ratings: Sequence[Rating]) -> str:
    """The first-round ratings of one unit, anonymous, in this row's orientation."""
    lines = []
    for number, rating in enumerate(ratings, start=1):
        shown = rating.value
        if task == "pairwise" and shown in ("a", "b"):
            shown = {"a": "B", "b": "A"}[shown] if swap else shown.upper()
        lines.append(f"rater {number}: {shown}" + (f" ({rating.comment})" if rating.comment else ""))
    return "\n".join(lines) if lines else "no ratings"


def import_study(packets_dir: str | Path, key_path: str | Path, output: str | Path, *,
                 queue_dir: str | Path | None = None, partial: bool = False, min_ratings: int = 2,
                 hide_ratings: bool = False, level: str = "nominal", seed: int = 0, n_boot: int = N_BOOTSTRAP
                 ) -> ImportResult:
    """Import filled packets. With an export's key: write long-format ratings to ``output`` (``.csv`` or
    ``.jsonl``), agreement statistics to ``OUTPUT_STEM.agreement.json``, and into ``queue_dir`` (default
    ``OUTPUT_STEM-adjudication/`` beside ``output``) the adjudicator's packet and its key — or, when nothing
    needs adjudication, the final labels. With an adjudication key: write the final labels (bench JSONL) to
    ``output``. Nothing is written when anything is refused."""
    study = load_key(key_path)
    output = Path(output)
    if study.kind == "adjudication":
        return _import_adjudication(packets_dir, study, output)
    if output.suffix not in (".csv", ".jsonl"):
        raise AdjudicationError([f"{output}: the ratings file must end in .csv or .jsonl"])
    if min_ratings < 1:
        raise AdjudicationError([f"--min-ratings {min_ratings}: must be at least 1"])
    queue_dir = Path(queue_dir) if queue_dir is not None else output.with_name(f"{output.stem}-adjudication")
    if queue_dir.exists() and (not queue_dir.is_dir() or any(queue_dir.iterdir())):
        raise AdjudicationError([f"{queue_dir}: already exists and is not empty; choose another --queue-dir"])
    ratings, counts = read_packets(packets_dir, study, partial=partial)
    rows = _long_rows(study, ratings)
    if not rows:
        raise AdjudicationError([f"{packets_dir}: no row is rated"])
    long = [LongRating(r["unit"], r["rater"], r["value"], {k: v for k, v in r.items()
                                                              if k not in ("unit", "rater", "value")}, i + 2)
            for i, r in enumerate(rows)]
    agreement = long_agreement(long, level=level, seed=seed, n_boot=n_boot, columns=LONG_COLUMNS)

    by_unit: dict[str, list[Rating]] = defaultdict(list)
    for rating in ratings:
        if rating.value:
            by_unit[rating.unit].append(rating)
    first_round: dict[str, dict[str, Any]] = {}
    queued: list[str] = []
    for unit_id in study.units:
        given = by_unit.get(unit_id, [])
        values = {r.value for r in given}
        agreed = len(given) >= min_ratings and len(values) == 1
        first_round[unit_id] = {"ratings": [{"rater": r.rater, "value": r.value, "comment": r.comment} for r in given],
                                "status": "agreed" if agreed else "queued",
                                "value": given[0].value if agreed else None}
        if not agreed:
            queued.append(unit_id)
    counts.update(units=len(study.units), agreed=len(study.units) - len(queued), queued=len(queued))

    rng = np.random.default_rng(seed)
    secret = secrets.token_bytes(32)
    packet_id = f"{study.study_id}-ADJ"
    queue = _Study("adjudication", study.study_id, secret, study.items, study.responses, study.display, study.units,
                   {}, {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "parent": {"study_id": study.study_id, "key_sha256": hashlib.sha256(
                            Path(key_path).read_bytes()).hexdigest()},
                        "min_ratings": min_ratings, "first_round": first_round})
    rows_out, key_rows = [], {}
    for index in rng.permutation(len(queued)):
        unit = study.units[queued[int(index)]]
        swap = bool(unit.task == "pairwise" and rng.random() < 0.5)
        previous = "hidden" if hide_ratings else _previous(unit.task, swap, by_unit.get(unit.id, []))
        row_id = _token(secret, "row", packet_id, unit.id)
        cells = queue.cells(unit, swap, previous)
        key_rows[row_id] = {"unit": unit.id, "swap": swap, "previous": previous,
                            "hmac": _row_mac(secret, study.study_id, packet_id, row_id, unit.id, swap, cells)}
        rows_out.append({"packet_id": packet_id, "row_id": row_id, **cells, "rating": "", "comment": ""})
    queue.packets[packet_id] = {"rater": "adjudicator", "file": "adjudicator", "rows": key_rows}

    stats_path = output.with_name(f"{output.stem}.agreement.json")
    outputs = {"ratings": output, "agreement": stats_path, "queue_dir": queue_dir,
               "queue_key": queue_dir / QUEUE_KEY_FILE}
    final_items = _final_items(queue, {}) if not queued else None
    staging = _stage(queue_dir)
    try:
        write_text_atomic(staging / QUEUE_KEY_FILE, [json.dumps(queue.to_json(), ensure_ascii=False, indent=1) + "\n"])
        os.chmod(staging / QUEUE_KEY_FILE, 0o600)
        if queued:
            write_packet_xlsx(staging / "adjudicator.xlsx", rows_out, QUEUE_COLUMNS, "adjudication")
            write_text_atomic(staging / "adjudicator.csv", [packet_csv(rows_out, QUEUE_COLUMNS)])
            outputs.update(queue_xlsx=queue_dir / "adjudicator.xlsx", queue_csv=queue_dir / "adjudicator.csv")
        else:
            write_jsonl_atomic(staging / FINAL_LABELS_FILE, final_items)
            outputs["final_labels"] = queue_dir / FINAL_LABELS_FILE
        output.parent.mkdir(parents=True, exist_ok=True)
        write_long(output, rows)
        document = {"level": level, "seed": seed, "n_boot": n_boot, "statistics": agreement}
        write_text_atomic(stats_path, [json.dumps(document, indent=2) + "\n"])
        _publish(staging, queue_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ImportResult("ratings", counts, outputs, agreement, len(queued))


def _final_items(study: _Study, decisions: dict[str, str]) -> list[BenchItem]:
    """Final labels in bench format: agreed first-round values, then the adjudicator's ``decisions``."""
    first_round = study.extra["first_round"]
    labels: dict[str, dict[str, list]] = defaultdict(lambda: {"pointwise": [], "pairwise": []})
    used: dict[str, set[str]] = defaultdict(set)
    for unit_id, unit in study.units.items():
        entry = first_round[unit_id]
        value = entry["value"] if entry["status"] == "agreed" else decisions.get(unit_id, "")
        if not value:
            continue
        if unit.task == "pointwise":
            labels[unit.item_id]["pointwise"].append({"response": unit.responses[0], "criterion": unit.criterion_id,
                                                      "met": value == "met"})
        else:
            labels[unit.item_id]["pairwise"].append({"criterion": unit.criterion_id, "a": unit.responses[0],
                                                     "b": unit.responses[1], "preferred": value})
        used[unit.item_id].update(unit.responses)
    items = []
    for item_id, item in study.items.items():
        if item_id not in labels:
            continue
        responses = [{"id": rid, "text": info["text"], **({"model": info["model"]} if info.get("model") else {})}
                     for rid, info in study.responses[item_id].items() if rid in used[item_id]]
        items.append(BenchItem.model_validate({**item, "responses": responses, "labels": labels[item_id]}))
    return items


def _import_adjudication(packets_dir: str | Path, study: _Study, output: Path) -> ImportResult:
    if output.suffix != ".jsonl":
        raise AdjudicationError([f"{output}: final labels are bench JSONL; the output must end in .jsonl"])
    ratings, counts = read_packets(packets_dir, study)
    decisions = {r.unit: r.value for r in ratings if r.value}
    first_round = study.extra["first_round"]
    agreed = sum(e["status"] == "agreed" for e in first_round.values())
    counts.update(units=len(first_round), agreed=agreed, adjudicated=len(decisions),
                  unresolved=len(first_round) - agreed - len(decisions))
    items = _final_items(study, decisions)
    if not items:
        raise AdjudicationError([f"{packets_dir}: no unit is resolved, so there are no final labels to write"])
    output.parent.mkdir(parents=True, exist_ok=True)
    counts["items"] = write_jsonl_atomic(output, items)
    return ImportResult("adjudication", counts, {"final_labels": output})


# --------------------------------------------------------------------------------------------- merge


@dataclass
class MergeResult:
    counts: Counter
    output: Path


def merge_labels(bench_path: str | Path, labels_path: str | Path, output: str | Path, *, replace: bool = False
                 ) -> MergeResult:
    """Merge final labels (bench JSONL from the adjudication import) into a bench file, atomically.

    Every labelled item must exist in the bench with the same prompt and criteria (id, type, text). Responses
    the bench lacks are added; a response id the bench has with a different text is refused. A label the
    bench already has with a different value is refused unless ``replace``. Nothing is written on refusal."""
    bench = load_bench(bench_path)
    final = load_bench(labels_path)
    by_id = {item.id: item for item in bench}
    problems: list[str] = []
    counts: Counter = Counter()
    merged: dict[str, BenchItem] = {}
    for item in final:
        target = by_id.get(item.id)
        if target is None:
            problems.append(f"{labels_path}: item {item.id!r} is not in {bench_path}")
            continue
        if target.prompt != item.prompt:
            problems.append(f"{labels_path}: item {item.id!r}: the prompt differs from {bench_path}")
            continue
        labels = item.labels or Labels()
        criteria = {c.id: (c.type, c.text) for c in target.rubric}
        mine = {c.id: (c.type, c.text) for c in item.rubric}
        wrong = sorted({lab.criterion for lab in [*labels.pointwise, *labels.pairwise]
                        if criteria.get(lab.criterion) != mine[lab.criterion]})
        if wrong:
            problems.append(f"{labels_path}: item {item.id!r}: criterion {wrong[0]!r} differs from {bench_path}")
            continue
        responses = [r.model_copy() for r in target.responses]
        known = {r.id: r for r in responses}
        for response in item.responses:
            if response.id in known:
                if known[response.id].text != response.text:
                    problems.append(f"{labels_path}: item {item.id!r}: response {response.id!r} has a different text "
                                    f"in {bench_path}")
                continue
            responses.append(response)
            known[response.id] = response
            counts["responses_added"] += 1
        old = target.labels or Labels()
        pointwise = {(p.response, p.criterion): p for p in old.pointwise}
        pairwise = {(p.criterion, frozenset((p.a, p.b))): p for p in old.pairwise}
        for label in labels.pointwise:
            key = (label.response, label.criterion)
            current = pointwise.get(key)
            if current is None:
                counts["labels_added"] += 1
            elif current.met == label.met:
                counts["labels_unchanged"] += 1
            elif replace:
                counts["labels_replaced"] += 1
            else:
                problems.append(f"{labels_path}: item {item.id!r}: pointwise label of response {label.response!r} on "
                                f"{label.criterion!r} is met={current.met} in {bench_path} and met={label.met} here "
                                "(pass --replace to overwrite)")
            pointwise[key] = label
        for label in labels.pairwise:
            key = (label.criterion, frozenset((label.a, label.b)))
            current = pairwise.get(key)
            if current is not None and (current.a, current.b) != (label.a, label.b):
                flipped = {"a": "b", "b": "a", "tie": "tie"}[label.preferred]
                label = label.model_copy(update={"a": current.a, "b": current.b, "preferred": flipped})
            if current is None:
                counts["labels_added"] += 1
            elif current.preferred == label.preferred:
                counts["labels_unchanged"] += 1
            elif replace:
                counts["labels_replaced"] += 1
            else:
                problems.append(f"{labels_path}: item {item.id!r}: pairwise label {label.a!r}/{label.b!r} on "
                                f"{label.criterion!r} is {current.preferred!r} in {bench_path} and "
                                f"{label.preferred!r} here (pass --replace to overwrite)")
            pairwise[key] = label
        try:
            merged[item.id] = BenchItem.model_validate({
                **target.model_dump(mode="json", exclude_defaults=True), "responses": [
                    r.model_dump(mode="json", exclude_defaults=True) for r in responses],
                "labels": {"pointwise": [p.model_dump() for p in pointwise.values()],
                           "pairwise": [p.model_dump() for p in pairwise.values()]}})
        except (ValidationError, FieldProblem) as error:
            problems.append(f"{labels_path}: item {item.id!r}: the merged item is invalid: "
                            f"{str(error).splitlines()[0]}")
        counts["items"] += 1
    if problems:
        raise AdjudicationError(_cap(problems))
    output = Path(output)
    write_jsonl_atomic(output, (merged.get(item.id, item) for item in bench))
    return MergeResult(counts, output)


# --------------------------------------------------------------------------------------------- judge vs experts

CLASSES = {"pointwise": POINTWISE_SCALE[::-1], "pairwise": PAIRWISE_SCALE[::-1]}


def _unit_key(task: str, item_id: str, criterion_id: str, responses: Sequence[str]) -> tuple:
    return (task, item_id, criterion_id, responses[0] if task == "pointwise" else frozenset(responses))


def _orient(value: str, source: Sequence[str], target: Sequence[str]) -> str:
    """A pairwise value given for responses ``source`` (a, b), expressed for the order ``target``."""
    if value in ("a", "b") and tuple(source) != tuple(target):
        return {"a": "b", "b": "a"}[value]
    return value


def _verdicts(run_dir: Path, which: str | None) -> tuple[dict[tuple, tuple], dict[str, Any]]:
    """The run's verdicts by unit key: (decision, response order, texts). Judge-track samples when the run has
    them (the model is the judge), else the policy track's grader (``which`` forces one)."""
    results, samples = _read_run(run_dir)
    tracks = {s.get("track") for s in samples}
    which = which or ("judge" if "judge" in tracks else "policy")
    if which not in tracks:
        raise AdjudicationError([f"{run_dir}: no {which}-track samples"])
    verdicts: dict[tuple, tuple] = {}
    if which == "judge":
        judge_id = results.model.id
        for s in samples:
            if s.get("track") == "judge":
                ids = tuple(s["response_ids"])
                verdicts[_unit_key(s["mode"], s["item_id"], s["criterion_id"], ids)] = (
                    s["decision"], ids, tuple(s.get("responses") or ()))
    else:
        judge = results.tracks["policy"].judge if "policy" in results.tracks else None
        judge_id = judge.id if judge else "policy-track judge"
        for s in samples:
            if s.get("track") == "policy" and s.get("answer") is not None:
                for j in s["judgements"]:
                    verdicts[_unit_key("pointwise", s["item_id"], j["criterion_id"], (results.model.id,))] = (
                        j["decision"], (results.model.id,), (s["answer"],))
    return verdicts, {"judge": judge_id, "run": results.run_id, "verdicts": which}


def _gold_from_bench(items: Sequence[BenchItem]) -> dict[tuple, tuple]:
    return {_unit_key(label.mode, label.item.id, label.criterion.id, label.response_ids):
            (label.gold, label.response_ids, label.criterion.type, label.texts)
            for label in labelled_instances(items)}


def _ratings_by_unit(rows: Sequence[LongRating], path: Path) -> dict[tuple, dict[str, Any]]:
    needed = ("task", "item_id", "criterion_id", "response_a")
    if rows and any(c not in rows[0].extra for c in needed):
        raise AdjudicationError([f"{path}: to compare with a judge, the ratings need the columns "
                                 f"{', '.join(needed)} (the output of `adjudicate import` has them)"])
    units: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        e = row.extra
        responses = (e["response_a"],) if e["task"] == "pointwise" else (e["response_a"], e.get("response_b", ""))
        entry = units.setdefault(_unit_key(e["task"], e["item_id"], e["criterion_id"], responses),
                                 {"responses": responses, "criterion_type": e.get("criterion_type", ""), "ratings": {}})
        entry["ratings"][row.rater] = row.value.lower() if e["task"] == "pairwise" else row.value
    return units


def judge_agreement(run_dir: str | Path, labels: str | Path, ratings: str | Path | None = None, *,
                    verdicts: str | None = None, seed: int = 0, n_boot: int = N_BOOTSTRAP) -> dict[str, Any]:
    """A judge's verdicts (a run) against adjudicated labels, with each physician beside it.

    ``labels``: final labels (bench JSONL) or long-format ratings (then the gold label of a unit is its strict
    majority; units without one are left out). ``ratings``: the physicians' long-format ratings (defaults to
    ``labels`` when that is long format). Per task and criterion type:

    - ``judge_vs_labels``: accuracy, Cohen's κ and macro-F1 of the judge against the gold labels;
    - ``judge_vs_physicians``: the same in HealthBench's pairwise form — one instance per (unit, physician
      rating), so the judge is scored against every physician's rating;
    - ``physicians``: each physician leave-one-out — their rating against every *other* physician's rating of
      the same unit (pairwise form) — beside the judge scored against those same other physicians' ratings on
      the same units.

    CIs resample units (all instances of a unit move together)."""
    run_dir, labels = Path(run_dir), Path(labels)
    found, meta = _verdicts(run_dir, verdicts)
    long_rows = None
    if labels.suffix == ".csv" or _is_long_jsonl(labels):
        long_rows, _ = read_long(labels)
        ratings = ratings or labels
    gold: dict[tuple, tuple] = {}
    if long_rows is None:
        gold = _gold_from_bench(load_bench(labels))
    physicians = _ratings_by_unit(read_long(ratings)[0], Path(ratings)) if ratings else {}
    if long_rows is not None:
        for key, entry in physicians.items():
            top = Counter(entry["ratings"].values()).most_common(2)
            if len(top) == 1 or top[0][1] > top[1][1]:
                gold[key] = (top[0][0], entry["responses"], entry["criterion_type"], ())
    problems = []
    counts: Counter = Counter()
    matched: dict[tuple, tuple[str, str, str, Sequence[str]]] = {}  # key -> (verdict, gold, type, responses)
    for key, (value, responses, criterion_type, texts) in gold.items():
        verdict = found.get(key)
        if verdict is None:
            counts["labels_without_verdict"] += 1
            continue
        decision, order, verdict_texts = verdict
        if texts and verdict_texts and tuple(_orient_texts(verdict_texts, order, responses)) != tuple(texts):
            problems.append(f"{run_dir}: item {key[1]!r}: the judged response text differs from the labelled one "
                            f"({labels}); compare a run made on the labelled responses")
            if len(problems) > 5:
                break
            continue
        if decision == "unknown":
            counts["unknown_verdicts"] += 1
            continue
        matched[key] = (_orient(decision, order, responses), value, criterion_type, responses)
    if problems:
        raise AdjudicationError(problems)
    if not matched:
        raise AdjudicationError([f"{run_dir}: none of its verdicts is on a labelled unit of {labels} (same items, "
                                 "criteria and response ids are needed)"])
    counts["matched"] = len(matched)
    groups: dict[str, list[tuple]] = defaultdict(list)
    for key, entry in matched.items():
        groups[key[0]].append(key)
        groups[f"{key[0]}/{entry[2]}"].append(key)
    report: dict[str, Any] = {}
    for name in sorted(groups, key=lambda g: (g.split("/")[0], "/" in g, g)):
        keys = groups[name]
        classes = CLASSES[name.split("/")[0]]
        section: dict[str, Any] = {"judge_vs_labels": _as_dicts(classification_agreement(
            [matched[k][0] for k in keys], [matched[k][1] for k in keys], keys, classes, seed=seed, n_boot=n_boot))}
        if physicians:
            section.update(_physician_section(keys, matched, physicians, classes, seed, n_boot))
        report[name] = section
    return {**meta, "counts": dict(counts), "groups": report}


def _orient_texts(texts: Sequence[str], order: Sequence[str], target: Sequence[str]) -> Sequence[str]:
    return texts[::-1] if len(order) == 2 and tuple(order) != tuple(target) else texts


def _is_long_jsonl(path: Path) -> bool:
    if path.suffix != ".jsonl" or not path.is_file():
        return False
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    first = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(first, dict) and "rater" in first and "unit" in first
    return False


def _as_dicts(estimates: dict[str, AgreementEstimate]) -> dict[str, dict[str, Any]]:
    return {name: value.as_dict() for name, value in estimates.items()}


def _physician_section(keys: Sequence[tuple], matched: dict, physicians: dict, classes: Sequence[str], seed: int,
                       n_boot: int) -> dict[str, Any]:
    judge_pred, judge_ref, judge_units = [], [], []
    per_rater: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for key in keys:
        entry = physicians.get(key)
        if entry is None:
            continue
        verdict = matched[key][0]
        given = {r: _orient(v, entry["responses"], matched[key][3]) for r, v in entry["ratings"].items()}
        for rater, value in given.items():
            judge_pred.append(verdict)
            judge_ref.append(value)
            judge_units.append(key)
            for other, other_value in given.items():
                if other == rater:
                    continue
                bucket = per_rater[rater]
                bucket["pred"].append(value)
                bucket["ref"].append(other_value)
                bucket["judge"].append(verdict)
                bucket["units"].append(key)
    section: dict[str, Any] = {"judge_vs_physicians": _as_dicts(classification_agreement(
        judge_pred, judge_ref, judge_units, classes, seed=seed, n_boot=n_boot,
        n_raters=len({r for e in physicians.values() for r in e["ratings"]})))}
    section["physicians"] = {
        rater: {"physician": _as_dicts(classification_agreement(b["pred"], b["ref"], b["units"], classes, seed=seed,
                                                                n_boot=n_boot)),
                "judge": _as_dicts(classification_agreement(b["judge"], b["ref"], b["units"], classes, seed=seed,
                                                            n_boot=n_boot))}
        for rater, b in sorted(per_rater.items())}
    return section


def format_judge_report(report: dict[str, Any]) -> str:
    """A plain-text table of :func:`judge_agreement`'s result."""

    def cell(entry: dict[str, Any]) -> str:
        if entry["value"] is None:
            return f"{'n/a':>6} {'':<16}"
        ci = f"[{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]" if entry["ci_low"] is not None else ""
        return f"{entry['value']:>6.3f} {ci:<16}"

    counts = ", ".join(f"{k}={v}" for k, v in report["counts"].items())
    lines = [f"judge {report['judge']} (run {report['run']}, {report['verdicts']} verdicts)  {counts}"]
    for name, section in report["groups"].items():
        lines.append(f"\n{name}")
        lines.append(f"  {'':<34}{'accuracy':<23}{'cohen_kappa':<23}{'macro_f1':<23}units")
        rows = [("judge vs adjudicated labels", section["judge_vs_labels"])]
        if "judge_vs_physicians" in section:
            rows.append(("judge vs each physician", section["judge_vs_physicians"]))
        for rater, entry in section.get("physicians", {}).items():
            rows.append((f"{rater} vs other physicians", entry["physician"]))
            rows.append(("  judge, same units and references", entry["judge"]))
        for label, metrics in rows:
            lines.append(f"  {label:<34}" + "".join(cell(metrics[m]) for m in ("accuracy", "cohen_kappa", "macro_f1"))
                         + f"{metrics['accuracy']['n_units']}")
    return "\n".join(lines)
