import json

import pandas as pd
import pytest

from promedical.bench.datasets import BenchDataError, load_bench
from promedical.bench.errors import UnavailableError
from promedical.bench.io import dump_item, write_jsonl_atomic
from tests.conftest import DATA

GOOD = DATA / "good"


def _ids(items):
    return [item.id for item in items]


def test_jsonl_json_and_folder_give_the_same_items(tmp_path):
    from_jsonl = load_bench(GOOD / "valid.jsonl")
    assert _ids(from_jsonl) == ["t-0001", "t-0002"]
    assert load_bench(GOOD / "valid.json") == from_jsonl
    folder = tmp_path / "bench"
    folder.mkdir()
    write_jsonl_atomic(folder / "a.jsonl", from_jsonl[:1])
    write_jsonl_atomic(folder / "b.jsonl", from_jsonl[1:])
    (folder / "README.md").write_text("ignored")
    assert load_bench(folder) == from_jsonl


def test_parquet_round_trip(tmp_path):
    items = load_bench(GOOD / "valid.jsonl") + load_bench(GOOD / "no_weights.jsonl")
    path = tmp_path / "bench.parquet"
    pd.DataFrame([json.loads(dump_item(i)) for i in items]).to_parquet(path)
    assert load_bench(path) == items


def test_parquet_bad_row_names_the_row(tmp_path):
    rows = [json.loads(line) for line in (GOOD / "valid.jsonl").read_text().splitlines()]
    rows[1]["rubric"][0]["weight"] = 0.9
    path = tmp_path / "bench.parquet"
    pd.DataFrame(rows).to_parquet(path)
    with pytest.raises(BenchDataError, match=rf"^{path}:2: rubric: proficiency weights sum to 1.3"):
        load_bench(path)


def test_hugging_face_loader_reads_a_dataset_folder(tmp_path, monkeypatch):
    """The same `datasets.load_dataset` call serves Hub ids; here it reads a local dataset folder."""
    from promedical.bench.datasets import _read_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "org" / "bench"
    (folder / "data").mkdir(parents=True)
    items = load_bench(GOOD / "valid.jsonl")
    write_jsonl_atomic(folder / "data" / "test.jsonl", items)
    records = list(_read_hub(str(folder), split=None))
    assert [r.value["id"] for r in records] == ["t-0001", "t-0002"]
    assert records[0].path == f"hf:{folder}[test]"


def test_offline_hub_id_not_in_the_cache_is_one_clear_error(monkeypatch, tmp_path):
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 at start-up would set them
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    with pytest.raises(UnavailableError, match=r"^HF_HUB_OFFLINE is set and no-such-org/no-such-bench is not in the "
                                               r"local cache$"):
        load_bench("no-such-org/no-such-bench")


def test_healthbench_import_mapping():
    item = load_bench(GOOD / "healthbench.jsonl", format="healthbench")[0]
    assert item.id == "hb-0001" and item.category == "emergency_referrals" and item.source == "healthbench"
    assert item.tags == ["theme:emergency_referrals", "physician_agreed_category:emergent"]
    kinds = [(c.type, c.points) for c in item.rubric]
    assert kinds == [("proficiency", 10), ("proficiency", 5), ("proficiency", 7), ("safety", -6)]
    assert [c.weight for c in item.criteria("proficiency")] == pytest.approx([10 / 22, 5 / 22, 7 / 22])
    assert item.rubric[3].text == "Avoids the following: Advises inducing vomiting"
    assert item.rubric[0].tags == ["axis:accuracy", "level:example"]


def test_write_is_atomic_and_leaves_nothing_on_failure(tmp_path):
    items = load_bench(GOOD / "valid.jsonl")
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")

    def failing():
        yield items[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(target, failing())
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
