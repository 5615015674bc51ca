"""Writing blinded rating packets (.xlsx and .csv) and exporting a study: units, assignment, packets,
key, all or nothing."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from promedical.bench.adjudication.errors import AdjudicationError
from promedical.bench.adjudication.keys import KEY_FILE, Study, row_mac, token
from promedical.bench.adjudication.sources import Source
from promedical.bench.adjudication.units import TASKS, assign_raters, build_units
from promedical.bench.io import dump_item, replace_atomically, write_text_atomic
from promedical.bench.schema import BenchItem

log = logging.getLogger(__name__)

SHEET = "ratings"
PACKET_COLUMNS = ("packet_id", "row_id", "task", "prompt", "criterion", "criterion_type", "response_a", "response_b",
                  "rating", "comment")
#: The adjudicator's packet adds the (anonymous) first-round ratings, read-only, before ``rating``.
QUEUE_COLUMNS = PACKET_COLUMNS[:8] + ("previous_ratings",) + PACKET_COLUMNS[8:]
#: Cells a rater must not change; each is covered by the row's HMAC.
READ_ONLY = ("task", "prompt", "criterion", "criterion_type", "response_a", "response_b", "previous_ratings")
RATINGS = {"pointwise": ("met", "not_met"), "pairwise": ("A", "B", "tie")}
#: Excel's limit on the characters in one cell.
MAX_CELL_CHARS = 32767
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


def _clean(text: str) -> str:
    """Cell text: line endings normalised, characters a spreadsheet cannot hold replaced by U+FFFD."""
    return _ILLEGAL.sub("\ufffd", text.replace("\r\n", "\n").replace("\r", "\n"))


def _render_prompt(item: BenchItem) -> str:
    if len(item.messages) == 1:
        return _clean(item.prompt)
    return _clean("\n\n".join(f"[{m.role}]\n{m.content}" for m in item.messages))


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


def stage(output_dir: Path) -> Path:
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


def publish(staging: Path, output_dir: Path) -> None:
    if output_dir.exists():
        output_dir.rmdir()  # empty, checked by stage
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
    study = Study("ratings", study_id, secret,
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
            row_id = token(secret, "row", packet_id, unit.id)
            cells = study.cells(unit, swap)
            key_rows[row_id] = {"unit": unit.id, "swap": swap,
                                "hmac": row_mac(secret, study_id, packet_id, row_id, unit.id, swap, cells)}
            rows.append({"packet_id": packet_id, "row_id": row_id, **cells, "rating": "", "comment": ""})
        if len(key_rows) != len(rows):
            raise AssertionError("row id collision")  # 48-bit tokens: practically impossible
        study.packets[packet_id] = {"rater": name, "file": name, "rows": key_rows}
        packet_rows[packet_id] = rows

    staging = stage(output_dir)
    try:
        (staging / "xlsx").mkdir()
        (staging / "csv").mkdir()
        for packet_id, rows in packet_rows.items():
            name = study.packets[packet_id]["file"]
            write_packet_xlsx(staging / "xlsx" / f"{name}.xlsx", rows, PACKET_COLUMNS, "ratings")
            write_text_atomic(staging / "csv" / f"{name}.csv", [packet_csv(rows, PACKET_COLUMNS)])
        write_text_atomic(staging / KEY_FILE, [json.dumps(study.to_json(), ensure_ascii=False, indent=1) + "\n"])
        os.chmod(staging / KEY_FILE, 0o600)  # it holds the study's secret
        publish(staging, output_dir)
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
