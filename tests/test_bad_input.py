"""Every malformed file in tests/data/bad is refused: exit 2, one line naming PATH:LINE: FIELD, nothing written."""

import json
from pathlib import Path

import pytest

from promedical.bench.datasets import MAX_RECORD_BYTES, BenchDataError, load_bench
from tests.conftest import DATA

BAD = DATA / "bad"

# file -> (line, field, words of the problem)
EXPECTED = {
    "empty.jsonl": (1, "file", "empty"),
    "truncated.jsonl": (2, "record", "invalid JSON"),
    "non_utf8.jsonl": (2, "record", "not UTF-8: byte 0xff"),
    "wrong_types.jsonl": (2, "rubric[0].weight", "expected a number"),
    "missing_rubric.jsonl": (2, "rubric", "required field is missing"),
    "weights_sum_07.jsonl": (2, "rubric", "sum to 0.7"),
    "unknown_response_label.jsonl": (2, "labels.pointwise[2].response", "unknown response 'r9'"),
    "duplicate_criterion_ids.jsonl": (2, "rubric[1].id", "duplicate id 'c1'"),
    "duplicate_item_ids.jsonl": (2, "id", "duplicate item id 't-0001'"),
    "self_pair.jsonl": (2, "labels.pairwise[1].b", "two different responses"),
    "unknown_criterion_type.jsonl": (2, "rubric[2].type", "'style'"),
    "weight_on_safety.jsonl": (2, "rubric[3].weight", "only proficiency criteria"),
    "last_message_not_user.jsonl": (2, "messages[1].role", "the user's"),
    "bad_preference.jsonl": (2, "labels.pairwise[0].preferred", "'both'"),
    "unknown_field.jsonl": (2, "rubrics", "unknown field"),
    "not_an_object.jsonl": (2, "record", "JSON object"),
    "array_bad_second.json": (118, "labels.pairwise[0].criterion", "unknown criterion 'c42'"),
    "healthbench_no_positive.jsonl": (2, "rubrics", "no rubric item has positive points"),
}


def test_the_corpus_is_complete():
    assert {p.name for p in BAD.iterdir()} == set(EXPECTED)


@pytest.fixture(scope="module")
def huge_line(tmp_path_factory) -> Path:
    """A 2 MB line, made at test time to keep the repository small."""
    path = tmp_path_factory.mktemp("huge") / "huge_line.jsonl"
    path.write_text('{"id": "x", "category": "' + "a" * (2 * MAX_RECORD_BYTES) + '"}\n')
    return path


def _check_refused(cli, path: Path, line: int, field: str, words: str, tmp_path: Path, exact: bool = False):
    """``exact``: the problem is ``words`` and nothing else."""
    data_format = "healthbench" if "healthbench" in path.name else "promedical"
    output = tmp_path / "out.jsonl"
    for args in (["validate", str(path)], ["data", "convert", str(path), "--output", str(output)]):
        result = cli(*args, "--format", data_format)
        assert result.code == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: {path}:{line}: {field}: "), lines[0]
        assert words in lines[0]
        if exact:
            assert lines[0] == f"error: {path}:{line}: {field}: {words}"
        assert result.stdout == ""
    assert list(tmp_path.iterdir()) == [], "nothing may be written for bad input"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_is_refused(cli, name, tmp_path):
    _check_refused(cli, BAD / name, *EXPECTED[name], tmp_path)


def test_two_megabyte_line_is_refused(cli, huge_line, tmp_path):
    _check_refused(cli, huge_line, 1, "record", "2.1 MB, over the 1 MiB limit", tmp_path)


def _set(path: tuple[str | int, ...], value):
    def mutate(record: dict) -> None:
        target = record
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return mutate


# Clinical labels and rubric numbers are never coerced: name -> (source file, change to its record, field, problem)
UNCOERCED = {
    "met_yes": ("valid.jsonl", _set(("labels", "pointwise", 0, "met"), "yes"),
                "labels.pointwise[0].met", "expected a boolean"),
    "met_one": ("valid.jsonl", _set(("labels", "pointwise", 0, "met"), 1),
                "labels.pointwise[0].met", "expected a boolean"),
    "met_null": ("valid.jsonl", _set(("labels", "pointwise", 0, "met"), None),
                 "labels.pointwise[0].met", "expected a boolean"),
    "weight_string": ("valid.jsonl", _set(("rubric", 0, "weight"), "0.5"), "rubric[0].weight", "expected a number"),
    "weight_bool": ("valid.jsonl", _set(("rubric", 0, "weight"), True), "rubric[0].weight", "expected a number"),
    "points_string": ("valid.jsonl", _set(("rubric", 0, "points"), "5"), "rubric[0].points", "expected a number"),
    "healthbench_points_string": ("healthbench.jsonl", _set(("rubrics", 1, "points"), "5"),
                                  "rubrics[1].points", "expected a number"),
    "healthbench_points_bool": ("healthbench.jsonl", _set(("rubrics", 1, "points"), True),
                                "rubrics[1].points", "expected a number"),
}


@pytest.mark.parametrize("name", sorted(UNCOERCED))
def test_labels_and_numbers_are_not_coerced(cli, name, tmp_path_factory, tmp_path):
    """Line 1 is a good record, line 2 the same record with one value of the wrong JSON type."""
    source, mutate, field, problem = UNCOERCED[name]
    good = json.loads((DATA / "good" / source).read_text().splitlines()[0])
    bad = json.loads(json.dumps(good))
    mutate(bad)
    bad["prompt_id" if "prompt_id" in bad else "id"] += "-bad"
    path = tmp_path_factory.mktemp("uncoerced") / f"{name}.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    _check_refused(cli, path, 2, field, problem, tmp_path, exact=True)
    data_format = "healthbench" if source.startswith("healthbench") else "promedical"
    with pytest.raises(BenchDataError) as error:
        load_bench(path, format=data_format)
    assert str(error.value) == f"{path}:2: {field}: {problem}"


def test_integers_are_numbers(tmp_path):
    """Strict, but an integer is a number: integer weights and HealthBench points load as floats."""
    record = json.loads((DATA / "good" / "valid.jsonl").read_text().splitlines()[0])
    record["rubric"][0]["weight"], record["rubric"][1]["weight"], record["rubric"][0]["points"] = 1, 0, 3
    path = tmp_path / "integers.jsonl"
    path.write_text(json.dumps(record) + "\n")
    [item] = load_bench(path)
    assert (item.rubric[0].weight, item.rubric[1].weight, item.rubric[0].points) == (1.0, 0.0, 3.0)
    [imported] = load_bench(DATA / "good" / "healthbench.jsonl", format="healthbench")
    assert [c.points for c in imported.rubric] == [10, 5, 7, -6]


def test_error_counts_the_other_bad_records(tmp_path):
    lines = (DATA / "good" / "valid.jsonl").read_text().splitlines()
    path = tmp_path / "three_bad.jsonl"
    path.write_text("\n".join([lines[0], "{", "not json", lines[1].replace('"c1"', '"c9"', 1)]) + "\n")
    with pytest.raises(BenchDataError) as error:
        load_bench(path)
    assert str(error.value).startswith(f"{path}:2: record: invalid JSON")
    assert str(error.value).endswith("(and 2 more bad records)")
    assert error.value.line == 2 and error.value.more == 2


def test_missing_path_is_bad_input(cli, tmp_path):
    result = cli("validate", str(tmp_path / "nowhere.jsonl"))
    assert result.code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nowhere.jsonl'}: no such file or folder"
