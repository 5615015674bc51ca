"""Blinded adjudication end to end on real runs: export → simulated physicians fill real .xlsx/.csv packets →
import → agreement → adjudication → final labels → merge; every corruption refused; no model identifier in
any packet; judge vs experts."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from promedical.bench import agreement, statistics
from promedical.bench.adjudication.packets import PACKET_COLUMNS, SHEET, export_study
from promedical.bench.adjudication.ratings import _canonical_value, read_packet_file
from promedical.bench.adjudication.sources import load_bench_responses, load_runs
from promedical.bench.adjudication.units import TASKS
from promedical.bench.cli import adjudicate as adjudication_cli
from promedical.bench.cli import main
from promedical.bench.datasets import load_bench, resolve_source
from promedical.bench.results import read_samples
from promedical.bench.runner import RunConfig, run
from tests.conftest import run_cli
from tests.openai_server import OpenAIServer, Policy, deterministic_answer

MODELS = {"openai:alpha-med-7b": "Short answer.", "openai:beta-clinic-13b": "Detailed answer."}
JUDGE = "openai:judge-xr9"
RATERS = ("rater-1", "rater-2", "rater-3")
FORMATS = {"rater-1": "xlsx", "rater-2": "csv", "rater-3": "xlsx"}  # physicians return either format
N_BOOT = "300"


def _answer(style: str):
    def answer(messages):
        reply = deterministic_answer(messages)
        return reply if isinstance(reply, dict) else f"{style} {reply[:160]}"
    return answer


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    """Two real policy-track runs (two models, API policy and API judge on a local server), 3 items each."""
    root = tmp_path_factory.mktemp("runs")
    dirs = []
    with pytest.MonkeyPatch.context() as patch:
        for model, style in MODELS.items():
            with OpenAIServer(Policy(answer=_answer(style))) as server:
                patch.setenv("OPENAI_BASE_URL", server.base_url)
                outcome = run(RunConfig(model=model, track="policy", judge=JUDGE, output_dir=root, limit=3,
                                        progress=False))
            dirs.append(outcome.run_dir)
    return dirs


def _cli(capsys, *args: str):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def study(runs, tmp_path_factory) -> Path:
    """The export, through the real console entry point (a subprocess)."""
    out = tmp_path_factory.mktemp("study") / "study"
    result = run_cli("adjudicate", "export", "--run", str(runs[0]), str(runs[1]), "--raters", "3",
                     "--output-dir", str(out), "--seed", "0")
    assert result.code == 0, result.stderr
    assert "45 units (15 pairwise, 30 pointwise)" in result.stdout
    return out


@pytest.fixture(scope="module")
def other_study(runs, tmp_path_factory) -> Path:
    """A second export of the same runs with the same seed: another study."""
    out = tmp_path_factory.mktemp("other") / "study"
    export_study(load_runs(runs), out, 3, seed=0)
    return out


# --------------------------------------------------------------------------------------------- simulated raters


def _digest(*parts: str) -> int:
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8], 16)


def _preferred(criterion: str, first: str, second: str) -> str | None:
    """The response text a physician prefers on a criterion (None: a tie); the same whichever side it is on."""
    texts = sorted([first.strip(), second.strip()])
    if _digest(criterion, "tie") % 5 == 0:
        return None
    return max(texts, key=lambda t: _digest(criterion, t))


def _judgement(rater: str, task: str, criterion: str, response_a: str, response_b: str) -> str | None | bool:
    """What a rater thinks, from the row's content only: met (bool) for pointwise, the preferred text for pairwise.
    Each rater departs from the shared 'truth' on about one row in four."""
    texts = sorted([response_a.strip(), response_b.strip()])
    noisy = _digest(rater, criterion, *texts) % 4 == 0
    if task == "pointwise":
        met = _digest(criterion, response_a.strip()) % 3 != 0
        return (not met) if noisy else met
    preferred = _preferred(criterion, response_a, response_b)
    if noisy:
        preferred = texts[_digest(rater, "side", *texts) % 2] if preferred is None else None
    return preferred


def _shown_rating(rater: str, row: dict[str, str]) -> str:
    """The rating the rater writes into the row, in the row's own A/B orientation."""
    view = _judgement(rater, row["task"], row["criterion"], row["response_a"], row["response_b"])
    if row["task"] == "pointwise":
        return "met" if view else "not_met"
    return "tie" if view is None else ("A" if view == row["response_a"].strip() else "B")


def _read_rows(path: Path) -> list[dict[str, str]]:
    header, rows = read_packet_file(path)
    return [r.values for r in rows]


def _fill_xlsx(source: Path, target: Path, decide) -> None:
    """Open the workbook and type ratings into the rating cells, as a person would, then save it."""
    workbook = openpyxl.load_workbook(source)
    sheet = workbook[SHEET]
    header = [c.value for c in sheet[1]]
    for r in range(2, sheet.max_row + 1):
        row = {name: ("" if sheet.cell(r, i + 1).value is None else str(sheet.cell(r, i + 1).value))
               for i, name in enumerate(header)}
        rating = decide(row)
        if rating is not None:
            sheet.cell(r, header.index("rating") + 1).value = rating
    workbook.save(target)


def _write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> None:
    header = header or list(rows[0])
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _fill_csv(source: Path, target: Path, decide) -> None:
    with source.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        rating = decide(row)
        if rating is not None:
            row["rating"] = rating
    _write_csv(target, rows)


@pytest.fixture(scope="module")
def filled(study, tmp_path_factory) -> Path:
    """Every rater fills their packet (rater-2 in the CSV); rater-3 leaves their first two rows unrated."""
    out = tmp_path_factory.mktemp("filled")
    for rater in RATERS:
        skipped = []

        def decide(row, rater=rater, skipped=skipped):
            if rater == "rater-3" and len(skipped) < 2:
                skipped.append(row["row_id"])
                return None
            return _shown_rating(rater, row)

        fmt = FORMATS[rater]
        (_fill_xlsx if fmt == "xlsx" else _fill_csv)(study / fmt / f"{rater}.{fmt}", out / f"{rater}.{fmt}", decide)
    return out


def _key(path: Path) -> dict:
    return json.loads(path.read_text())


def _intended(key: dict) -> dict[tuple[str, str], str]:
    """What each rater meant for each unit, in canonical orientation, computed from the key's unit content (not
    from the packets) — the direct computation the import must reproduce."""
    display = key["display"]
    expected = {}
    for packet in key["packets"].values():
        rater = packet["rater"]
        for entry in packet["rows"].values():
            unit = key["units"][entry["unit"]]
            texts = [display["responses"][unit["item_id"]][r] for r in unit["responses"]]
            criterion = display["criteria"][unit["item_id"]][unit["criterion_id"]]
            view = _judgement(rater, unit["task"], criterion, texts[0], texts[1] if len(texts) > 1 else "")
            if unit["task"] == "pointwise":
                value = "met" if view else "not_met"
            else:
                value = "tie" if view is None else ("a" if view == texts[0].strip() else "b")
            expected[entry["unit"], rater] = value
    return expected


@pytest.fixture(scope="module")
def imported(filled, study, tmp_path_factory):
    out = tmp_path_factory.mktemp("imported")
    code = main(["adjudicate", "import", "--packets", str(filled), "--key", str(study / "key.json"),
                 "--output", str(out / "ratings.csv"), "--n-boot", N_BOOT, "--seed", "4"])
    assert code == 0
    return out


# --------------------------------------------------------------------------------------------- export


def test_packets_are_real_locked_spreadsheets_with_dropdowns(study):
    key = _key(study / "key.json")
    assert oct((study / "key.json").stat().st_mode & 0o777) == "0o600"
    for rater in RATERS:
        workbook = openpyxl.load_workbook(study / "xlsx" / f"{rater}.xlsx")
        sheet = workbook[SHEET]
        header = [c.value for c in sheet[1]]
        assert tuple(header) == PACKET_COLUMNS
        assert sheet.freeze_panes == "A2"
        assert sheet.protection.sheet
        formulas = {}
        for validation in sheet.data_validations.dataValidation:
            for cell_range in validation.sqref.ranges:
                assert cell_range.min_col == cell_range.max_col == header.index("rating") + 1
                for r in range(cell_range.min_row, cell_range.max_row + 1):
                    formulas[r] = validation.formula1
        for r in range(2, sheet.max_row + 1):
            row = {name: sheet.cell(r, i + 1) for i, name in enumerate(header)}
            assert row["prompt"].alignment.wrap_text and row["response_a"].alignment.wrap_text
            assert row["prompt"].protection.locked and row["response_a"].protection.locked
            assert not row["rating"].protection.locked and not row["comment"].protection.locked
            expected = '"met,not_met"' if row["task"].value == "pointwise" else '"A,B,tie"'
            assert formulas[r] == expected
        assert "instructions" in workbook.sheetnames
        csv_rows = _read_rows(study / "csv" / f"{rater}.csv")
        xlsx_rows = _read_rows(study / "xlsx" / f"{rater}.xlsx")
        assert csv_rows == xlsx_rows and len(csv_rows) == 30
        assert all(len(r["row_id"]) == 12 and set(r["row_id"]) <= set("0123456789abcdef") for r in csv_rows)
    # The design: every unit rated by exactly 2 of the 3 raters, loads balanced, every pair of raters overlapping.
    rated_by: dict[str, list[str]] = {}
    for packet in key["packets"].values():
        for entry in packet["rows"].values():
            rated_by.setdefault(entry["unit"], []).append(packet["rater"])
    assert len(rated_by) == 45 and all(len(r) == 2 for r in rated_by.values())
    swaps = [e["swap"] for p in key["packets"].values() for e in p["rows"].values()
             if key["units"][e["unit"]]["task"] == "pairwise"]
    assert any(swaps) and not all(swaps)  # pairwise sides randomised per row
    orders = [[e["unit"] for e in p["rows"].values()] for p in key["packets"].values()]
    shared = [u for u in orders[0] if u in orders[1]]
    assert shared != [u for u in orders[1] if u in orders[0]]  # a different random order per rater


def _packet_texts(folder: Path) -> dict[str, str]:
    """Everything in every packet: the csv text and every part of every xlsx (cells, shared strings,
    properties, sheet names, validations)."""
    texts = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".csv":
            texts[str(path)] = path.read_text(encoding="utf-8-sig")
        elif path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    texts[f"{path}!{name}"] = archive.read(name).decode("utf-8", "replace")
    return texts


def test_no_model_identifier_appears_anywhere_in_any_packet(study, runs, imported):
    key = _key(study / "key.json")
    identifiers = set()
    for run_dir in runs:
        results = json.loads((run_dir / "results.json").read_text())
        identifiers |= {results["model"]["id"], results["model"]["id"].split(":")[1], results["model"]["identity"],
                        results["run_id"], run_dir.name, str(run_dir), results["tracks"]["policy"]["judge"]["id"]}
    identifiers |= {"alpha-med", "beta-clinic", "judge-xr9"}
    assert {r["model"] for r in key["source"]["runs"]} == set(MODELS)
    folders = [study / "xlsx", study / "csv", imported / "ratings-adjudication"]
    texts = {}
    for folder in folders:
        texts.update(_packet_texts(folder))
    packets = texts
    assert len([k for k in packets if k.endswith(".csv")]) == 4  # 3 raters + the adjudicator
    for where, text in packets.items():
        lowered = text.lower()
        for identifier in identifiers:
            assert identifier.lower() not in lowered, f"{identifier!r} in {where}"
    # The key, by contrast, is unblinded: it holds the mapping.
    assert "openai:alpha-med-7b" in (study / "key.json").read_text()


def test_the_design_is_seeded_and_each_export_is_its_own_study(study, other_study):
    ours, theirs = _key(study / "key.json"), _key(other_study / "key.json")
    design = [[(e["unit"], e["swap"]) for e in p["rows"].values()] for p in ours["packets"].values()]
    assert design == [[(e["unit"], e["swap"]) for e in p["rows"].values()] for p in theirs["packets"].values()]
    assert ours["study_id"] != theirs["study_id"] and ours["secret"] != theirs["secret"]
    assert not set(ours["packets"]) & set(theirs["packets"])


def test_export_refusals_write_nothing(capsys, runs, tmp_path):
    target = tmp_path / "study"
    cases = [
        (["--run", runs[0], "--run", runs[0], "--raters", "3"], "is also the model of"),
        (["--run", runs[0], "--raters", "3", "--overlap", "4"], "--overlap 4: must be between 2 and"),
        (["--run", runs[0], "--raters", "2", "--rater-names", "a,b,c"], "gives 3 names for 2 raters"),
        (["--run", runs[0], "--bench", "sample", "--raters", "3"], "give --run RUN_DIR... or --bench PATH"),
        (["--run", tmp_path, "--raters", "3"], "not a run directory"),
        (["--run", runs[0], "--raters", "3", "--max-units", "1"], "cannot give each of 3 raters a row"),
    ]
    for args, message in cases:
        code, _, err = _cli(capsys, "adjudicate", "export", *args, "--output-dir", target)
        assert code == 2 and message in err, (args, err)
        assert not target.exists()
    target.mkdir()
    (target / "keep.txt").write_text("another study")
    code, _, err = _cli(capsys, "adjudicate", "export", "--run", runs[0], "--raters", "2", "--output-dir", target)
    assert code == 2 and "already exists and is not empty" in err
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]  # no staging folder left behind


def test_bench_source_warns_about_self_naming_and_keeps_text(tmp_path, caplog):
    item = json.loads(Path(resolve_source("sample")).read_text().splitlines()[0])
    item["responses"] = [
        {"id": "resp-q", "text": "As Qwen, I would stop the ibuprofen.", "model": "qwen3-8b-local"},
        {"id": "resp-m", "text": "I am medbot-9000 and advise paracetamol.", "model": "medbot-9000"},
        {"id": "resp-p", "text": "Paracetamol is the safer choice here.", "model": "plain-model-z"},
    ]
    item.pop("labels", None)
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps(item) + "\n")
    with caplog.at_level("WARNING"):
        result = export_study(load_bench_responses(bench), tmp_path / "study", 2, tasks=("pointwise",))
    assert len(result.warnings) == 2
    assert "'Qwen'" in result.warnings[0] and "'medbot-9000'" in result.warnings[1]
    assert sum("names a model" in r.message for r in caplog.records) == 2
    packet = (tmp_path / "study" / "csv" / "rater-1.csv").read_text(encoding="utf-8-sig")
    assert "As Qwen, I would stop the ibuprofen." in packet  # warned, never silently rewritten
    for hidden in ("qwen3-8b-local", "plain-model-z", "resp-q", "resp-p"):
        assert hidden not in packet


# --------------------------------------------------------------------------------------------- import


def test_round_trip_statistics_equal_a_direct_computation(capsys, study, imported):
    key = _key(study / "key.json")
    expected = _intended(key)
    rows, _ = agreement.read_long(imported / "ratings.csv")
    got = {(r.unit, r.rater): r.value for r in rows}
    missing = set(expected) - set(got)
    assert len(missing) == 2 and all(rater == "rater-3" for _, rater in missing)
    assert all(got[k] == expected[k] for k in got)  # every value unblinded to the right side
    first = rows[0].extra
    assert first["model_a"] in MODELS and first["item_id"] and first["criterion_type"]
    pairwise = next(r for r in rows if r.extra["task"] == "pairwise")
    assert {pairwise.extra["model_a"], pairwise.extra["model_b"]} == set(MODELS)

    stats = json.loads((imported / "ratings.agreement.json").read_text())
    assert stats["seed"] == 4 and stats["level"] == "nominal"
    for task, scale in (("pointwise", agreement.POINTWISE_SCALE), ("pairwise", agreement.PAIRWISE_SCALE)):
        units = sorted({u for (u, _), v in expected.items() if key["units"][u]["task"] == task})
        matrix = np.full((len(units), 3), np.nan)
        for (unit, rater), value in expected.items():
            if unit in units and (unit, rater) not in missing:
                matrix[units.index(unit), RATERS.index(rater)] = scale.index(value)
        direct = agreement.agreement_report(matrix, categories=list(range(len(scale))), n_boot=0)
        for name, estimate in direct.items():
            reported = stats["statistics"][task][name]
            assert reported["value"] == pytest.approx(estimate.value, abs=1e-12), (task, name)
            assert (reported["n_units"], reported["n_raters"]) == (estimate.n_units, estimate.n_raters)
            assert reported["ci_low"] <= reported["value"] <= reported["ci_high"]
    # The agreement command on the written file gives the very same numbers, CIs included.
    code, out, err = _cli(capsys, "agreement", imported / "ratings.csv", "--json", "--seed", "4", "--n-boot", N_BOOT)
    assert code == 0, err
    assert json.loads(out) == stats["statistics"]
    assert set(stats["statistics"]) >= {"pointwise", "pairwise", "pointwise/safety", "pairwise/proficiency"}


def _corrupt(name: str, folder: Path, study: Path, other: Path, tmp: Path) -> Path:
    """Apply one corruption to a copy of the filled packets; returns the key to import with."""
    key = study / "key.json"
    r1, r2, r3 = folder / "rater-1.xlsx", folder / "rater-2.csv", folder / "rater-3.xlsx"
    rows2 = _read_rows(r2)
    header = list(PACKET_COLUMNS)
    if name == "edited prompt (xlsx)":
        workbook = openpyxl.load_workbook(r1)
        cell = workbook[SHEET].cell(2, header.index("prompt") + 1)
        cell.value = cell.value + " Please answer briefly."
        workbook.save(r1)
    elif name == "edited criterion (csv)":
        rows2[3]["criterion"] = "Mentions nothing at all."
        _write_csv(r2, rows2)
    elif name == "edited response (xlsx)":
        workbook = openpyxl.load_workbook(r3)
        sheet = workbook[SHEET]
        target = next(r for r in range(2, sheet.max_row + 1) if sheet.cell(r, 3).value == "pairwise")
        sheet.cell(target, header.index("response_b") + 1).value = "A better answer."
        workbook.save(r3)
    elif name == "rating outside the allowed values":
        rows2[0]["rating"] = "maybe"
        _write_csv(r2, rows2)
    elif name == "pairwise rating on a pointwise row":
        row = next(r for r in rows2 if r["task"] == "pointwise")
        row["rating"] = "A"
        _write_csv(r2, rows2)
    elif name == "unknown row id":
        rows2[1]["row_id"] = "0123456789ab"
        _write_csv(r2, rows2)
    elif name == "duplicate row id":
        _write_csv(r2, rows2 + [dict(rows2[2])])
    elif name == "missing row":
        _write_csv(r2, rows2[:5] + rows2[6:])
    elif name == "row moved from another packet":
        moved = dict(_read_rows(r1)[0], packet_id=rows2[0]["packet_id"])
        _write_csv(r2, rows2 + [moved])
    elif name == "row from another export":
        foreign = dict(_read_rows(other / "csv" / "rater-2.csv")[0], packet_id=rows2[0]["packet_id"])
        _write_csv(r2, rows2 + [foreign])
    elif name == "packet from another study":
        r1.unlink()
        shutil.copy(other / "csv" / "rater-1.csv", folder / "rater-1.csv")
    elif name == "the same rater twice":
        shutil.copy(r1, folder / "rater-1 (returned again).xlsx")
    elif name == "packet not returned":
        r3.unlink()
    elif name == "renamed column":
        _write_csv(r2, [{("notes" if k == "comment" else k): v for k, v in r.items()} for r in rows2])
    elif name == "unreadable workbook":
        r1.write_bytes(b"PK\x03\x04 this is not a workbook")
    elif name == "key does not match (HMAC)":
        data = _key(key)
        packet = next(p for p in data["packets"].values() if p["rater"] == "rater-2")
        first = next(iter(packet["rows"].values()))
        first["hmac"] = "0" * 64
        key = tmp / "tampered-key.json"
        key.write_text(json.dumps(data))
    else:
        raise AssertionError(name)
    return key


CORRUPTIONS = {
    "edited prompt (xlsx)": "rater-1.xlsx:2: prompt: edited (a read-only cell",
    "edited criterion (csv)": "rater-2.csv:5: criterion: edited",
    "edited response (xlsx)": "response_b: edited",
    "rating outside the allowed values": "rater-2.csv:2: rating: 'maybe' is not one of ",
    "pairwise rating on a pointwise row": "rating: 'A' is not one of met, not_met",
    "unknown row id": "rater-2.csv:3: row_id: unknown row id '0123456789ab' (not from this key's export)",
    "duplicate row id": "row_id: duplicate row id",
    "missing row": "is missing 1 row(s)",
    "row moved from another packet": "(rater rater-1), not",
    "row from another export": "not from this key's export",
    "packet from another study": "rater-1.csv: packet",
    "the same rater twice": "the same rater twice",
    "packet not returned": "no file for packet",
    "renamed column": "rater-2.csv:1: header: missing comment",
    "unreadable workbook": "rater-1.xlsx: not a readable .xlsx workbook",
    "key does not match (HMAC)": "fails its HMAC-SHA256 check",
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_every_corruption_is_refused_with_exit_2_and_nothing_written(capsys, name, filled, study, other_study,
                                                                    tmp_path):
    folder = tmp_path / "packets"
    shutil.copytree(filled, folder)
    key = _corrupt(name, folder, study, other_study, tmp_path)
    out = tmp_path / "out"
    code, stdout, err = _cli(capsys, "adjudicate", "import", "--packets", folder, "--key", key, "--output",
                             out / "ratings.csv", "--n-boot", "0")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert all(line.startswith("error: ") for line in lines)
    assert any(CORRUPTIONS[name] in line for line in lines), err
    assert not out.exists()  # nothing written: no ratings, no statistics, no queue


def test_several_problems_give_one_line_each(capsys, filled, study, tmp_path):
    folder = tmp_path / "packets"
    shutil.copytree(filled, folder)
    rows = _read_rows(folder / "rater-2.csv")
    rows[0]["rating"] = "yes"
    rows[1]["prompt"] = "changed"
    _write_csv(folder / "rater-2.csv", rows[:-1])
    code, _, err = _cli(capsys, "adjudicate", "import", "--packets", folder, "--key", study / "key.json",
                        "--output", tmp_path / "r.csv")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 4, err
    assert "rating: 'yes'" in lines[0] and "prompt: edited" in lines[1] and "missing 1 row(s)" in lines[2]
    assert lines[3] == "error: refused (3 problems); nothing was written"


def test_the_real_console_script_refuses_an_edited_packet(filled, study, tmp_path):
    folder = tmp_path / "packets"
    shutil.copytree(filled, folder)
    rows = _read_rows(folder / "rater-2.csv")
    rows[0]["response_a"] = rows[0]["response_a"] + " (and see your GP)"
    _write_csv(folder / "rater-2.csv", rows)
    result = run_cli("adjudicate", "import", "--packets", str(folder), "--key", str(study / "key.json"),
                     "--output", str(tmp_path / "r.csv"))
    assert result.code == 2
    assert result.stderr.strip().startswith("error: ") and "response_a: edited" in result.stderr
    assert not (tmp_path / "r.csv").exists()


def test_partial_import_counts_the_missing_packet(capsys, filled, study, tmp_path):
    folder = tmp_path / "packets"
    shutil.copytree(filled, folder)
    (folder / "rater-3.xlsx").unlink()
    code, out, err = _cli(capsys, "adjudicate", "import", "--packets", folder, "--key", study / "key.json",
                          "--output", tmp_path / "r.jsonl", "--partial", "--n-boot", "0")
    assert code == 0, err
    assert "1 packet(s) not returned" in out
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert {r["rater"] for r in rows} == {"rater-1", "rater-2"}


# --------------------------------------------------------------------------------------------- adjudication


@pytest.fixture(scope="module")
def adjudicated(imported, study, tmp_path_factory):
    """The senior adjudicator fills the queue packet (xlsx), leaving one row unresolved; imported to final labels."""
    queue = imported / "ratings-adjudication"
    out = tmp_path_factory.mktemp("adjudicated")
    decided = []

    def decide(row):
        if not decided:
            decided.append(None)
            return None
        rating = _shown_rating("senior", row)
        decided.append((row["row_id"], rating))
        return rating

    (out / "returned").mkdir()
    _fill_xlsx(queue / "adjudicator.xlsx", out / "returned" / "adjudicator.xlsx", decide)
    code = main(["adjudicate", "import", "--packets", str(out / "returned"), "--key",
                 str(queue / "adjudication-key.json"), "--output", str(out / "final.jsonl")])
    assert code == 0
    return out, dict(d for d in decided if d)


def test_disagreements_go_to_the_adjudicator_and_resolve_into_bench_labels(study, imported, adjudicated):
    key = _key(study / "key.json")
    rows, _ = agreement.read_long(imported / "ratings.csv")
    given: dict[str, dict[str, str]] = {}
    for row in rows:
        given.setdefault(row.unit, {})[row.rater] = row.value
    disagreements = {u for u in key["units"] if len(given.get(u, {})) < 2 or len(set(given[u].values())) > 1}
    queue_key = _key(imported / "ratings-adjudication" / "adjudication-key.json")
    queue_rows = next(iter(queue_key["packets"].values()))["rows"]
    assert {e["unit"] for e in queue_rows.values()} == disagreements and disagreements
    # previous_ratings shows the first-round ratings in the row's own orientation.
    for entry in queue_rows.values():
        if key["units"][entry["unit"]]["task"] == "pairwise" and entry["previous"] != "no ratings":
            shown = [line.split(": ")[1].split(" ")[0] for line in entry["previous"].splitlines()]
            canonical = sorted({"A": "b", "B": "a"}[s] if entry["swap"] and s in "AB" else s.lower() for s in shown)
            assert canonical == sorted(given[entry["unit"]].values())

    out, decisions = adjudicated
    final = load_bench(out / "final.jsonl")
    labels = {}
    for item in final:
        for p in item.labels.pointwise:
            labels[f"pointwise|{item.id}|{p.criterion}|{p.response}"] = "met" if p.met else "not_met"
        for p in item.labels.pairwise:
            labels[f"pairwise|{item.id}|{p.criterion}|{p.a}|{p.b}"] = p.preferred
        assert {r.model for r in item.responses} == set(MODELS)
    for unit in key["units"]:
        if unit not in disagreements:
            assert labels[unit] == next(iter(given[unit].values()))
    resolved = {queue_rows[row_id]["unit"]: rating for row_id, rating in decisions.items()}
    for unit, shown in resolved.items():
        swap = next(e["swap"] for e in queue_rows.values() if e["unit"] == unit)
        assert labels[unit] == _canonical_value(key["units"][unit]["task"], shown, swap)
    assert len(labels) == len(key["units"]) - 1  # the one row the adjudicator left empty stays unresolved


def test_merge_writes_final_labels_into_a_bench_file(capsys, adjudicated, tmp_path):
    out, _ = adjudicated
    merged = tmp_path / "merged.jsonl"
    code, stdout, err = _cli(capsys, "adjudicate", "merge", "--bench", "sample", "--labels", out / "final.jsonl",
                             "--output", merged)
    assert code == 0, err
    final = {item.id: item for item in load_bench(out / "final.jsonl")}
    bench = {item.id: item for item in load_bench(merged)}
    assert len(bench) == len(load_bench("sample"))
    n_labels = 0
    for item_id, item in final.items():
        responses = {r.id: r for r in bench[item_id].responses}
        for response in item.responses:
            assert responses[response.id].text == response.text and responses[response.id].model == response.model
        points = {(p.response, p.criterion): p.met for p in bench[item_id].labels.pointwise}
        for p in item.labels.pointwise:
            assert points[(p.response, p.criterion)] == p.met
        n_labels += len(item.labels.pointwise) + len(item.labels.pairwise)
    assert f"labels added {n_labels}" in stdout and "responses added 6" in stdout
    # A contradicting label is refused (nothing written) unless --replace.
    flipped = tmp_path / "flipped.jsonl"
    items = [json.loads(line) for line in (out / "final.jsonl").read_text().splitlines()]
    items[0]["labels"]["pointwise"][0]["met"] = not items[0]["labels"]["pointwise"][0]["met"]
    flipped.write_text("".join(json.dumps(i) + "\n" for i in items))
    before = merged.read_bytes()
    code, _, err = _cli(capsys, "adjudicate", "merge", "--bench", merged, "--labels", flipped, "--output", merged)
    assert code == 2 and "pass --replace to overwrite" in err and merged.read_bytes() == before
    code, stdout, _ = _cli(capsys, "adjudicate", "merge", "--bench", merged, "--labels", flipped, "--output", merged,
                           "--replace")
    assert code == 0 and "labels replaced 1" in stdout
    # Unknown items are refused too.
    items[0]["id"] = "no-such-item"
    flipped.write_text(json.dumps(items[0]) + "\n")
    code, _, err = _cli(capsys, "adjudicate", "merge", "--bench", merged, "--labels", flipped, "--output",
                        tmp_path / "x.jsonl")
    assert code == 2 and "'no-such-item' is not in" in err and not (tmp_path / "x.jsonl").exists()


def test_many_merge_conflicts_are_summarised_with_the_full_list_in_a_file(capsys, tmp_path):
    flipped = tmp_path / "flipped.jsonl"
    items = [json.loads(line) for line in Path(resolve_source("sample")).read_text().splitlines()]
    for item in items:
        for label in item["labels"]["pointwise"]:
            label["met"] = not label["met"]
    flipped.write_text("".join(json.dumps(i) + "\n" for i in items))
    conflicts = sum(len(i["labels"]["pointwise"]) for i in items)
    output = tmp_path / "new" / "merged.jsonl"
    code, _, err = _cli(capsys, "adjudicate", "merge", "--bench", "sample", "--labels", flipped, "--output", output)
    listing = output.with_name("merged.jsonl.problems.txt")
    lines = err.splitlines()
    assert code == 2 and len(lines) == 6 and all("pass --replace to overwrite" in line for line in lines[:5])
    assert lines[-1] == (f"error: refused ({conflicts} problems, the first 5 above; all of them are in {listing}); "
                         "nothing else was written")
    assert len(listing.read_text().splitlines()) == conflicts and not output.exists()


def test_an_adjudication_packet_is_refused_with_the_ratings_key(capsys, imported, study, tmp_path):
    folder = tmp_path / "packets"
    folder.mkdir()
    shutil.copy(imported / "ratings-adjudication" / "adjudicator.csv", folder)
    code, _, err = _cli(capsys, "adjudicate", "import", "--packets", folder, "--key", study / "key.json",
                        "--output", tmp_path / "r.csv")
    assert code == 2 and "header" in err  # its extra previous_ratings column already gives it away


# --------------------------------------------------------------------------------------------- judge vs experts


def test_policy_grader_against_final_labels_and_physicians(capsys, runs, imported, adjudicated):
    out, _ = adjudicated
    code, stdout, err = _cli(capsys, "agreement", "--judge-run", runs[0], "--labels", out / "final.jsonl",
                             "--ratings", imported / "ratings.csv", "--json", "--n-boot", "200")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["judge"] == JUDGE and report["verdicts"] == "policy"
    model = next(iter(MODELS))
    verdicts = {(s.item_id, j.criterion_id): j.decision for s in read_samples(runs[0])
                if s.track == "policy" for j in s.judgements}
    gold = {(item.id, p.criterion): ("met" if p.met else "not_met") for item in load_bench(out / "final.jsonl")
            for p in item.labels.pointwise if p.response == model}
    correct = [verdicts[k] == v for k, v in gold.items()]
    section = report["groups"]["pointwise"]
    assert section["judge_vs_labels"]["accuracy"]["value"] == pytest.approx(np.mean(correct))
    assert section["judge_vs_labels"]["accuracy"]["n_units"] == len(gold)
    # Each physician leave-one-out: their rating against every other physician's rating of the same unit.
    rows, _ = agreement.read_long(imported / "ratings.csv")
    by_unit: dict[str, dict[str, str]] = {}
    for row in rows:
        labelled = (row.extra["item_id"], row.extra["criterion_id"]) in gold
        if row.extra["task"] == "pointwise" and row.extra["response_a"] == model and labelled:
            by_unit.setdefault(row.unit, {})[row.rater] = row.value
    for rater in RATERS:
        pairs = [(mine[rater], theirs) for mine in by_unit.values() if rater in mine
                 for other, theirs in mine.items() if other != rater]
        entry = section["physicians"][rater]
        assert entry["physician"]["accuracy"]["value"] == pytest.approx(np.mean([a == b for a, b in pairs]))
        assert entry["judge"]["accuracy"]["n_units"] == entry["physician"]["accuracy"]["n_units"]
    assert set(section["judge_vs_physicians"]) == {"accuracy", "cohen_kappa", "macro_f1"}
    code, text, _ = _cli(capsys, "agreement", "--judge-run", runs[0], "--labels", imported / "ratings.csv",
                         "--n-boot", "0")
    assert code == 0 and "rater-1 vs other physicians" in text and "judge vs adjudicated labels" in text


def test_a_judge_track_run_against_the_merged_bench(capsys, adjudicated, tmp_path, monkeypatch):
    out, _ = adjudicated
    merged = tmp_path / "merged.jsonl"
    assert main(["adjudicate", "merge", "--bench", "sample", "--labels", str(out / "final.jsonl"),
                 "--output", str(merged)]) == 0
    ids = [item.id for item in load_bench(out / "final.jsonl")]
    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join(line + "\n" for line in merged.read_text().splitlines()
                              if json.loads(line)["id"] in ids))
    with OpenAIServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        judged = run(RunConfig(model="openai:judge-under-test", bench=str(subset), output_dir=tmp_path / "runs",
                               progress=False)).run_dir
    capsys.readouterr()
    code, stdout, err = _cli(capsys, "agreement", "--judge-run", judged, "--labels", out / "final.jsonl", "--json",
                             "--n-boot", "100")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["verdicts"] == "judge" and report["judge"] == "openai:judge-under-test"
    assert {"pointwise", "pairwise"} <= set(report["groups"])
    assert "physicians" not in report["groups"]["pointwise"]  # no individual ratings given
    # A judge-only run has no policy answers to export.
    code, _, err = _cli(capsys, "adjudicate", "export", "--run", judged, "--raters", "2", "--output-dir",
                        tmp_path / "s")
    assert code == 2 and "no policy-track answers" in err


def test_cli_constants_mirror_the_modules():
    assert adjudication_cli.LEVELS == agreement.LEVELS
    assert adjudication_cli.TASKS == TASKS
    assert adjudication_cli.N_BOOTSTRAP == statistics.N_BOOTSTRAP
