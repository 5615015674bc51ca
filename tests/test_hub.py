"""Local paths versus Hugging Face Hub ids: a mistyped path fails at once as a missing folder, and a Hub id
that cannot be fetched fails in one line, never after the Hub client's retries."""

import time

import pytest

from promedical.bench.hub import looks_like_path


@pytest.mark.parametrize("value, path_like", [
    ("models/nope", True),  # its first part, models/, is a folder here
    ("./tiny", True), ("../tiny", True), ("/abs/model", True), ("~/model", True), (".hidden", True),
    ("a/b/c", True), ("a\\b", True), ("bench.jsonl", True), ("org/data.parquet", True), ("model.safetensors", True),
    ("Qwen/Qwen3-8B", False), ("Qwen/Qwen2.5-7B-Instruct", False), ("gpt2", False), ("sample", False),
])
def test_the_path_rule(tmp_path, monkeypatch, value, path_like):
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert looks_like_path(value) is path_like


def _timed(cli, *args, **kwargs):
    start = time.monotonic()
    result = cli(*args, **kwargs)
    return result, time.monotonic() - start


@pytest.mark.parametrize("args, line", [
    (["run", "--model", "models/nope"], "error: models/nope: no such folder"),
    (["run", "--model", "{causal}", "--track", "policy", "--judge", "rm:models/nope"],
     "error: models/nope: no such folder"),
    (["ultramedical", "--model", "models/nope", "--data-dir", "bundled"], "error: models/nope: no such folder"),
    (["validate", "data/nope.jsonl"], "error: data/nope.jsonl: no such file or folder"),
    (["run", "--model", "models/tiny", "--bench", "benches/nope"], "error: benches/nope: no such file or folder"),
], ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_a_missing_local_path_fails_at_once_as_a_missing_folder(cli, tmp_path, tiny_models, args, line):
    for folder in ("models/tiny", "data", "benches"):
        (tmp_path / folder).mkdir(parents=True)
    args = [a.format(**tiny_models) for a in args]
    # Online as far as the libraries know, towards a Hub that is not there: asking it would be another error.
    result, seconds = _timed(cli, *args, cwd=tmp_path, env={"HF_HUB_OFFLINE": None, "HF_DATASETS_OFFLINE": None,
                                                              "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert result.code == 2 and result.stderr.splitlines() == [line], result.stderr
    assert seconds < 5, "no retries"


@pytest.mark.parametrize("command", [["run", "--model"], ["validate"], ["ultramedical", "--data-dir", "bundled",
                                                                        "--model"]])
def test_hf_hub_offline_and_an_id_not_in_the_cache_is_one_line(cli, tmp_path, command):
    result, seconds = _timed(cli, *command, "org/does-not-exist", cwd=tmp_path, env={"HF_HOME": str(tmp_path)})
    assert result.code == 1
    assert result.stderr.splitlines() == ["error: HF_HUB_OFFLINE is set and org/does-not-exist is not in the "
                                          "local cache"], result.stderr
    assert seconds < 5


@pytest.mark.parametrize("command", [["run", "--model"], ["validate"]])
def test_an_unreachable_hub_is_one_line_without_retries(cli, tmp_path, command):
    endpoint = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused
    result, seconds = _timed(cli, *command, "org/does-not-exist", cwd=tmp_path,
                             env={"HF_HUB_OFFLINE": None, "HF_DATASETS_OFFLINE": None, "HF_ENDPOINT": endpoint,
                                  "HF_HOME": str(tmp_path)})
    assert result.code == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: cannot reach {endpoint} to fetch org/does-not-exist (ConnectError")
    assert "set HF_HUB_OFFLINE=1" in result.stderr and seconds < 5
