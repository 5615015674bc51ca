"""Bundled data: valid, as described in its data card, and shaped as the README and data cards describe."""

import itertools
import re
from importlib import resources
from pathlib import Path

import pytest

from promedical.bench.datasets import load_bench
from promedical.bench.schema import CATEGORIES, SPECIALTIES

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(str(resources.files("promedical.bench.data")))
BUNDLED = sorted(DATA_DIR.glob("*.jsonl"))


@pytest.fixture(scope="module", params=["sample", "calibration"])
def sample(request):
    return load_bench(request.param)


def test_there_is_bundled_data():
    assert [p.name for p in BUNDLED] == ["promedical_bench_calibration.jsonl", "promedical_bench_sample.jsonl",
                                          "promedical_bench_test.jsonl"]


@pytest.mark.parametrize("first, second", [("sample", "calibration"), ("sample", "test"), ("calibration", "test")])
def test_bundled_sets_are_disjoint(first, second):
    one, other = load_bench(first), load_bench(second)
    assert not {i.id for i in one} & {i.id for i in other}
    assert not {i.messages[-1].content for i in one} & {i.messages[-1].content for i in other}


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_file_validates_and_has_an_honest_card(cli, path):
    result = cli("validate", str(path))
    assert result.code == 0, result.stderr
    card = (ROOT / "data_cards" / f"{path.stem}.md").read_text()
    stated = int(re.search(r"^- Items: (\d+)$", card, re.M).group(1))
    assert stated == len(load_bench(path)), "the card states the item count"


def test_sample_shape(sample):
    assert len(sample) >= 20
    assert {i.category for i in sample} == set(CATEGORIES)
    assert {i.specialty for i in sample} <= set(SPECIALTIES) and len({i.specialty for i in sample}) >= 20
    for item in sample:
        assert 4 <= len(item.rubric) <= 8, item.id
        assert {c.type for c in item.rubric} == {"proficiency", "excellence", "safety"}, item.id
        assert 2 <= len(item.responses) <= 3, item.id


def test_sample_labels_are_complete_and_consistent(sample):
    for item in sample:
        met = {(p.response, p.criterion): p.met for p in item.labels.pointwise}
        assert set(met) == {(r.id, c.id) for r in item.responses for c in item.rubric}, item.id
        pairs = {(p.criterion, frozenset((p.a, p.b))): p for p in item.labels.pairwise}
        assert set(pairs) == {(c.id, frozenset((a.id, b.id))) for c in item.rubric
                              for a, b in itertools.combinations(item.responses, 2)}, item.id
        for pair in item.labels.pairwise:
            a, b = met[(pair.a, pair.criterion)], met[(pair.b, pair.criterion)]
            if a != b:
                assert pair.preferred == ("a" if a else "b"), (item.id, pair)


def test_sample_contains_safety_violations(sample):
    safety = {(i.id, c.id) for i in sample for c in i.rubric if c.type == "safety"}
    violating_items = {i.id for i in sample for p in i.labels.pointwise if (i.id, p.criterion) in safety and not p.met}
    assert len(violating_items) >= len(sample) // 2
