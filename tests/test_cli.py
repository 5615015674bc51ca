import json
from importlib import resources
from pathlib import Path

import pytest

from promedical.bench.datasets import BUNDLED, load_bench
from promedical.bench.io import write_text_atomic
from tests.conftest import DATA

COMMANDS = [[], ["validate"], ["data"], ["data", "stats"], ["data", "convert"], ["data", "synth"], ["list"]]


def test_version(cli):
    result = cli("--version")
    assert result.code == 0 and result.stdout.startswith("promedical-bench, version ")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_on_every_command(cli, command):
    result = cli(*command, "--help")
    assert result.code == 0
    assert "Usage: promedical-bench" in result.stdout
    assert len(result.stdout.split("\n\n")) >= 2, "every command explains itself"


def test_usage_error_is_one_line_and_exit_2(cli):
    result = cli("data", "synth", "--instructions", "0", "--output", "x.jsonl")
    assert result.code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: Invalid value for '--instructions'")
    assert cli("no-such-command").code == 2


def test_debug_shows_the_traceback(cli):
    path = DATA / "bad" / "weights_sum_07.jsonl"
    plain, debug = cli("validate", str(path)), cli("--debug", "validate", str(path))
    assert plain.code == debug.code == 2
    assert "Traceback" not in plain.stderr and "Traceback (most recent call last)" in debug.stderr


def test_convert_healthbench_then_validate_and_stats(cli, tmp_path):
    output = tmp_path / "hb.jsonl"
    result = cli("data", "convert", str(DATA / "good" / "healthbench.jsonl"), "--format", "healthbench",
                 "--output", str(output))
    assert result.code == 0, result.stderr
    assert cli("validate", str(output)).code == 0
    stats = json.loads(cli("data", "stats", str(output), "--json").stdout)
    assert stats["items"] == 1
    assert stats["criteria"] == {"total": 4, "proficiency": 3, "excellence": 0, "safety": 1}


def test_stats_text_report(cli):
    result = cli("data", "stats", str(DATA / "good" / "valid.jsonl"))
    assert result.code == 0
    assert "criteria: 8 (4 proficiency, 2 excellence, 2 safety)" in result.stdout
    assert "labels: 16 pointwise (8 met, 2 safety violations), 8 pairwise (0 ties)" in result.stdout


SAMPLE_FILE = Path(str(resources.files("promedical.bench.data") / BUNDLED["sample"]))


@pytest.mark.parametrize("command", [
    ["data", "synth", "--instructions", "2"],
    ["data", "convert", "sample"],
    ["adjudicate", "merge", "--bench", "sample", "--labels", str(SAMPLE_FILE)],
], ids=lambda c: " ".join(c[:2]))
def test_output_into_a_missing_nested_folder_creates_it(cli, tmp_path, command):
    output = tmp_path / "new" / "dir" / "x.jsonl"
    result = cli(*command, "--output", str(output))
    assert result.code == 0, result.stderr
    assert load_bench(output) and [p.name for p in output.parent.iterdir()] == ["x.jsonl"]


def test_a_failed_write_leaves_neither_file_nor_created_folders(tmp_path):
    def chunks():
        yield "partial"
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_text_atomic(tmp_path / "new" / "dir" / "x.txt", chunks())
    assert list(tmp_path.iterdir()) == []


def test_counts_are_pluralised(cli, tmp_path):
    one = cli("data", "synth", "--instructions", "1", "--output", str(tmp_path / "one.jsonl"))
    assert one.stdout == f"wrote 1 train item (seed 0) to {tmp_path / 'one.jsonl'}\n"
    assert cli("validate", str(tmp_path / "one.jsonl")).stdout.startswith(f"OK {tmp_path / 'one.jsonl'}: 1 item, ")
    converted = cli("data", "convert", str(tmp_path / "one.jsonl"), "--output", str(tmp_path / "copy.jsonl"))
    assert converted.stdout == f"wrote 1 item to {tmp_path / 'copy.jsonl'}\n"
    two = cli("data", "convert", "sample", "--output", str(tmp_path / "sample.jsonl"))
    assert two.stdout == f"wrote {len(load_bench('sample'))} items to {tmp_path / 'sample.jsonl'}\n"


def test_tiny_model_prints_one_line_and_no_blank_ones(cli, tmp_path):
    result = cli("tiny-model", "--output", str(tmp_path / "tiny"))
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "" not in lines and lines[-1] == f"wrote a tiny causal checkpoint to {tmp_path / 'tiny'}"


def test_ultramedical_help_says_model_is_required(cli):
    help_text = " ".join(cli("ultramedical", "--help").stdout.split())
    assert "[required unless --fetch-data]" in help_text
