"""Reading returned packets and checking them against the key; the unblinded long-format ratings."""

from __future__ import annotations

import csv
import hmac
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promedical.bench.adjudication.errors import AdjudicationError, cap
from promedical.bench.adjudication.keys import Study, canonical, row_mac
from promedical.bench.adjudication.packets import PACKET_COLUMNS, QUEUE_COLUMNS, RATINGS, READ_ONLY, SHEET
from promedical.bench.io import write_text_atomic

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


def read_packets(packets_dir: str | Path, study: Study, *, partial: bool = False) -> tuple[list[Rating], Counter]:
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
            edited = [c for c in read_only if canonical(values[c]) != canonical(expected[c])]
            for column in edited:
                problems.append(f"{row.where}: {column}: edited (a read-only cell; it must stay as exported)")
            if edited:
                continue
            cells = {c: values[c] for c in read_only}
            mac = row_mac(study.secret, study.study_id, packet_id, row_id, unit.id, entry["swap"], cells)
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
        raise AdjudicationError(cap(problems))
    counts["packets"] = len(seen_packets)
    return ratings, counts


# --------------------------------------------------------------------------------------------- long format

LONG_COLUMNS = ("unit", "rater", "value", "task", "criterion_type", "item_id", "criterion_id", "category", "specialty",
                "response_a", "response_b", "model_a", "model_b", "comment", "packet_id", "row_id")


def long_rows(study: Study, ratings: Iterable[Rating]) -> list[dict[str, str]]:
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
