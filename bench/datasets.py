"""Load bench data from local files, folders or Hugging Face dataset ids, and import HealthBench.

Bad input never half-works: every record is validated, and the first bad one is reported as
``PATH:LINE: FIELD: problem`` together with how many more were bad (:class:`BenchDataError`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from promedical.bench.errors import PromedicalError, UnavailableError
from promedical.bench.hub import check_reachable, hub_offline, looks_like_path
from promedical.bench.schema import BenchItem, Criterion, FieldProblem, Message

Format = Literal["promedical", "healthbench"]
FORMATS: tuple[Format, ...] = ("promedical", "healthbench")
FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
#: A record longer than this is refused: no bench item is that long, and binary junk often is.
MAX_RECORD_BYTES = 1 << 20
#: ``--bench sample`` (or PATH ``sample``) names the bundled hand-written sample bench; ``calibration`` a
#: smaller hand-written set in the same style, disjoint from it, for picking reward-model thresholds.
BUNDLED = {
    "sample": "promedical_bench_sample.jsonl",
    "calibration": "promedical_bench_calibration.jsonl",
    "test": "promedical_bench_test.jsonl",
}
#: What each bundled bench is, in one line (``promedical-bench list benches``).
BUNDLED_ABOUT = {
    "sample": "hand-written illustrative items in the ProMedical-Bench format (not the adjudicated release)",
    "calibration": "hand-written items in the sample's style, disjoint from it, for reward-model thresholds",
    "test": "the locked hand-written test set, read only by the smoke reproduction's final report",
}
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class BenchDataError(PromedicalError, ValueError):
    """Bad or unloadable bench input. ``str()`` is one line: ``PATH:LINE: FIELD: problem``, and how many more
    records were bad."""

    def __init__(self, path: str, problem: str, line: int | None = None, field: str | None = None, more: int = 0):
        self.more = more
        super().__init__(problem, path=path, line=line, field=field)

    def message(self) -> str:
        text = super().message()
        if self.more:
            text += f" (and {self.more} more bad record{'s' if self.more > 1 else ''})"
        return text


@dataclass(frozen=True)
class RawRecord:
    """One undecoded record and where it came from."""

    path: str
    line: int
    value: Any


# --------------------------------------------------------------------------------------------- reading


def resolve_source(source: str | Path) -> Path | str:
    """A local path, the bundled file for a bundled name, or the string itself for a Hugging Face id. A value
    that looks like a path (:func:`~promedical.bench.hub.looks_like_path`) is never taken for a Hub id."""
    path = Path(source)
    if path.exists():
        return path
    if str(source) in BUNDLED:
        return Path(str(resources.files("promedical.bench.data") / BUNDLED[str(source)]))
    if looks_like_path(str(source)):
        raise BenchDataError(str(source), "no such file or folder")
    if _HF_ID.match(str(source)):
        return str(source)
    raise BenchDataError(str(source), "no such file or folder (nor a bundled name or a Hugging Face dataset id)")


def read_records(source: str | Path, split: str | None = None) -> Iterator[RawRecord | BenchDataError]:
    """Yield the raw JSON records of a file, a folder of files, or a Hugging Face dataset; a line that cannot
    be decoded is yielded as its error, so that reading goes on and bad lines are counted."""
    resolved = resolve_source(source)
    if isinstance(resolved, str):
        yield from _read_hub(resolved, split)
        return
    files = sorted(p for p in resolved.iterdir() if p.suffix in FILE_SUFFIXES) if resolved.is_dir() else [resolved]
    if not files:
        raise BenchDataError(str(resolved), f"no {', '.join(FILE_SUFFIXES)} files in this folder")
    for file in files:
        reader = {".jsonl": _read_jsonl, ".json": _read_json, ".parquet": _read_parquet}.get(file.suffix)
        if reader is None:
            raise BenchDataError(str(file), f"unsupported file type {file.suffix!r}; use {', '.join(FILE_SUFFIXES)}")
        yield from reader(file)


def _read_jsonl(path: Path) -> Iterator[RawRecord | BenchDataError]:
    data = path.read_bytes()
    if not data.strip():
        raise BenchDataError(str(path), "the file is empty", line=1, field="file")
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            yield RawRecord(str(path), number, _decode_line(raw))
        except _RecordProblem as problem:
            yield BenchDataError(str(path), problem.problem, number, problem.field)


def _decode_line(raw: bytes) -> Any:
    if len(raw) > MAX_RECORD_BYTES:
        raise _RecordProblem("record", f"line is {len(raw) / 1e6:.1f} MB, over the {MAX_RECORD_BYTES >> 20} MiB limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        problem = f"not UTF-8: byte 0x{raw[error.start]:02x} at column {error.start + 1}"
        raise _RecordProblem("record", problem) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _RecordProblem("record", f"invalid JSON: {error.msg} (column {error.colno})") from None


def _read_json(path: Path) -> Iterator[RawRecord]:
    """A JSON array of records (or one record); each record's line is where it starts."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise BenchDataError(str(path), f"not UTF-8: byte at offset {error.start}", line=1, field="file") from None
    if not text.strip():
        raise BenchDataError(str(path), "the file is empty", line=1, field="file")
    decoder = json.JSONDecoder()
    try:
        start = len(text) - len(text.lstrip())
        if text[start] != "[":
            value, _ = decoder.raw_decode(text, start)
            yield RawRecord(str(path), text.count("\n", 0, start) + 1, value)
            return
        position = start + 1
        while True:
            position = _skip(text, position, ",")
            if text[position] == "]":
                return
            value, end = decoder.raw_decode(text, position)
            yield RawRecord(str(path), text.count("\n", 0, position) + 1, value)
            position = end
    except (json.JSONDecodeError, IndexError) as error:
        line = error.lineno if isinstance(error, json.JSONDecodeError) else text.count("\n") + 1
        message = error.msg if isinstance(error, json.JSONDecodeError) else "unexpected end of file"
        raise BenchDataError(str(path), f"invalid JSON: {message}", line=line, field="record") from None


def _skip(text: str, position: int, separators: str) -> int:
    while text[position].isspace() or text[position] in separators:
        position += 1
    return position


def _read_parquet(path: Path) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as error:  # pyarrow raises several types for unreadable files
        raise BenchDataError(str(path), f"cannot read parquet: {error}", field="file") from None
    if not rows:
        raise BenchDataError(str(path), "the file has no rows", line=1, field="file")
    for number, row in enumerate(rows, start=1):
        yield RawRecord(str(path), number, _drop_nulls(row))


def _read_hub(dataset_id: str, split: str | None) -> Iterator[RawRecord]:
    """Records of a Hugging Face dataset (a Hub id, or a local folder of data files given to ``datasets``)."""
    import datasets

    offline = hub_offline()
    if not offline and not Path(dataset_id).exists():  # a local folder needs no network
        check_reachable(dataset_id)
    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as error:
        if offline and isinstance(error, ConnectionError):  # datasets' answer for an id it has not cached
            raise UnavailableError(f"HF_HUB_OFFLINE is set and {dataset_id} is not in the local cache") from None
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BenchDataError(f"hf:{dataset_id}", f"cannot load this Hugging Face dataset: {reason}") from None
    names = list(loaded.keys())
    if split is None:
        split = names[0] if len(names) == 1 else "test" if "test" in names else None
        if split is None:
            raise BenchDataError(f"hf:{dataset_id}", f"several splits ({', '.join(names)}); choose one with --split")
    if split not in loaded:
        raise BenchDataError(f"hf:{dataset_id}", f"no split {split!r}; available: {', '.join(names)}")
    for number, row in enumerate(loaded[split], start=1):
        yield RawRecord(f"hf:{dataset_id}[{split}]", number, _drop_nulls(row))


def _drop_nulls(value: Any) -> Any:
    """Columnar formats fill absent fields with null; for our schema absent and null mean the same."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------- validation


class _RecordProblem(Exception):
    """Raised while decoding one record; becomes a BenchDataError with the record's place."""

    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


def load_bench(source: str | Path, *, split: str | None = None, format: Format = "promedical") -> list[BenchItem]:
    """Load and validate every record; raise :class:`BenchDataError` naming the first bad one."""
    items: list[BenchItem] = []
    first: BenchDataError | None = None
    bad = 0
    first_line: dict[str, tuple[str, int]] = {}
    for record in read_records(source, split):
        if isinstance(record, BenchDataError):
            bad += 1
            first = first or record
            continue
        try:
            item = _to_item(record.value, format)
            if item.id in first_line:
                where = "{}:{}".format(*first_line[item.id])
                raise _RecordProblem("id", f"duplicate item id {item.id!r} (first at {where})")
            first_line[item.id] = (record.path, record.line)
            items.append(item)
        except _RecordProblem as problem:
            bad += 1
            first = first or BenchDataError(record.path, problem.problem, record.line, problem.field)
    if first is not None:
        raise BenchDataError(first.path, first.problem, first.line, first.field, more=bad - 1)
    if not items:
        raise BenchDataError(str(source), "no records")
    return items


def _to_item(value: Any, format: Format) -> BenchItem:
    if not isinstance(value, dict):
        raise _RecordProblem("record", f"expected a JSON object, got {type(value).__name__}")
    try:
        if format == "healthbench":
            return from_healthbench(HealthBenchRecord.model_validate(value))
        return BenchItem.model_validate(value)
    except ValidationError as error:
        raise _RecordProblem(*_describe(error)) from None
    except FieldProblem as problem:
        raise _RecordProblem(problem.field, problem.problem) from None


#: Strict booleans and numbers (labels, weights, points) are never coerced; their type errors read plainly.
_TYPE_PROBLEMS = {
    "bool_type": "expected a boolean",
    "bool_parsing": "expected a boolean",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "int_type": "expected a number",
    "int_parsing": "expected a number",
}


def _describe(error: ValidationError) -> tuple[str, str]:
    """The first pydantic error as (dotted field path, problem)."""
    first = error.errors(include_url=False)[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, FieldProblem):
        prefix = _dotted(first["loc"])
        return (f"{prefix}.{cause.field}" if prefix else cause.field), cause.problem
    field = _dotted(first["loc"]) or "record"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        return field, "required field is missing"
    if first["type"] == "extra_forbidden":
        return field, "unknown field"
    if first["type"] in _TYPE_PROBLEMS:
        return field, _TYPE_PROBLEMS[first["type"]]
    if first["type"] not in ("value_error",) and "input" in first and not isinstance(first["input"], (dict, list)):
        message += f" (got {first['input']!r:.60})"
    return field, message


def _dotted(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --------------------------------------------------------------------------------------------- HealthBench


class HealthBenchRubricItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    criterion: str = Field(min_length=1)
    points: float = Field(strict=True)
    tags: list[str] = Field(default_factory=list)


class HealthBenchRecord(BaseModel):
    """The fields of an openai/simple-evals HealthBench example that the importer uses."""

    model_config = ConfigDict(extra="ignore")
    prompt: list[Message] = Field(min_length=1)
    prompt_id: str = Field(min_length=1)
    rubrics: list[HealthBenchRubricItem] = Field(min_length=1)
    example_tags: list[str] = Field(default_factory=list)


HEALTHBENCH_SAFETY_PREFIX = "Avoids the following: "


def from_healthbench(record: HealthBenchRecord) -> BenchItem:
    """Map a HealthBench example onto a bench item (see data_cards/healthbench_import.md).

    Positive-point rubric items become proficiency criteria weighted by points / Σ positive points; negative
    ones become safety criteria phrased as requirements ("Avoids the following: ..."), violated when the
    undesirable behaviour is present. Original points and axis tags are kept on each criterion, theme tags on
    the item, so HealthBench's own score can be recomputed from verdicts.
    """
    positive = sum(r.points for r in record.rubrics if r.points > 0)
    if positive <= 0:
        raise FieldProblem("rubrics", "no rubric item has positive points, so the HealthBench score is undefined")
    rubric: list[Criterion] = []
    for index, entry in enumerate(record.rubrics):
        if entry.points == 0:
            raise FieldProblem(f"rubrics[{index}].points", "must be non-zero")
        safety = entry.points < 0
        rubric.append(Criterion(
            id=f"c{index + 1}",
            type="safety" if safety else "proficiency",
            text=HEALTHBENCH_SAFETY_PREFIX + entry.criterion if safety else entry.criterion,
            weight=None if safety else entry.points / positive,
            tags=entry.tags,
            points=entry.points,
        ))
    themes = [t.removeprefix("theme:") for t in record.example_tags if t.startswith("theme:")]
    return BenchItem(
        id=record.prompt_id,
        category=themes[0] if themes else "unspecified",
        specialty="unspecified",
        messages=record.prompt,
        rubric=rubric,
        tags=record.example_tags,
        source="healthbench",
    )
