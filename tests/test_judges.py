"""Judge backends against references computed here with plain transformers, and the ``table:`` backend."""

import json

import pytest

from promedical.bench.datasets import BenchDataError, load_bench
from promedical.bench.judging import PairwiseQuery, PointwiseQuery
from promedical.bench.models.causal import CausalLMJudge
from promedical.bench.models.table import TableJudge
from promedical.bench.prompts import render_pairwise, render_pointwise
from tests.conftest import DATA


def _next_token_probabilities(model_dir, prompt: str, words: tuple[str, str]) -> tuple[float, float]:
    """P(first word), P(second word) as the next token after the chat-formatted prompt, by hand."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True, enable_thinking=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        probabilities = torch.softmax(model(ids).logits[0, -1].float(), dim=-1)
    out = []
    for word in words:  # the word's first token, with and without a leading space
        tokens = {tokenizer.encode(variant, add_special_tokens=False)[0] for variant in (word, " " + word)}
        out.append(float(sum(probabilities[t] for t in tokens)))
    return out[0], out[1]


def test_causal_judge_scores_are_the_next_token_probabilities(tiny_models):
    """Pointwise: P(Yes) / (P(Yes) + P(No)). Pairwise: P(a preferred) averaged over both presentations —
    P(A) with a shown first and P(B) with a shown second — so position bias cancels."""
    item = load_bench("sample")[0]
    criterion, a, b = item.rubric[0], item.responses[0].text, item.responses[1].text
    judge = CausalLMJudge(str(tiny_models["causal"]))
    [point] = judge.pointwise([PointwiseQuery(item, criterion, a)])
    p_yes, p_no = _next_token_probabilities(tiny_models["causal"], render_pointwise(item, criterion, a), ("Yes", "No"))
    assert point.score == pytest.approx(p_yes / (p_yes + p_no), rel=1e-4)

    [pair] = judge.pairwise([PairwiseQuery(item, criterion, a, b)])
    a_first = _next_token_probabilities(tiny_models["causal"], render_pairwise(item, criterion, a, b), ("A", "B"))
    a_second = _next_token_probabilities(tiny_models["causal"], render_pairwise(item, criterion, b, a), ("A", "B"))
    expected = (a_first[0] / sum(a_first) + a_second[1] / sum(a_second)) / 2
    assert abs(expected - 0.5) > 1e-4  # the tiny model has a preference, so a swapped average would differ
    assert pair.score == pytest.approx(expected, rel=1e-4)
    assert pair.decision == ("a" if expected > 0.5 else "b")


def test_table_judge_mirrors_a_pair_asked_the_other_way_round():
    judge = TableJudge(DATA / "oracle" / "judge_a.jsonl")
    item = next(i for i in load_bench(DATA / "oracle" / "bench.jsonl") if i.id == "o1")
    texts = {r.id: r.text for r in item.responses}
    criteria = {c.id: c for c in item.rubric}
    forward, backward, unseen = judge.pairwise([
        PairwiseQuery(item, criteria["e1"], texts["r1"], texts["r2"]),  # the row says "b"
        PairwiseQuery(item, criteria["e1"], texts["r2"], texts["r1"]),
        PairwiseQuery(item, criteria["e1"], texts["r1"], texts["r3"]),  # no row
    ])
    assert (forward.decision, backward.decision, unseen.decision) == ("b", "a", "unknown")


@pytest.mark.parametrize("row, field, words", [
    ({"item": "o1", "criterion": "c1", "response": "r1", "decision": "yes"}, "decision", "'met' or 'not_met'"),
    ({"item": "o1", "criterion": "c1", "response": "r1", "decision": True}, "decision", "'met' or 'not_met'"),
    ({"item": "o1", "criterion": "c1", "a": "r1", "decision": "a"}, "b", "Field required"),
    ({"item": "o1", "answer": 3}, "answer", "valid string"),
    ({"item": "o1", "criterion": "c1", "response": "r1", "decision": "met", "extra": 1}, "extra", "Extra inputs"),
])
def test_a_bad_table_row_is_refused_with_its_line_and_field(tmp_path, row, field, words):
    path = tmp_path / "table.jsonl"
    good = {"item": "o1", "criterion": "c2", "response": "r1", "decision": "met"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(BenchDataError) as error:
        TableJudge(path)
    assert str(error.value).startswith(f"{path}:2: {field}: ") and words in str(error.value)


def test_a_repeated_table_row_is_refused(tmp_path):
    path = tmp_path / "table.jsonl"
    row = json.dumps({"item": "o1", "criterion": "c2", "response": "r1", "decision": "met"})
    path.write_text(row + "\n" + row + "\n")
    with pytest.raises(BenchDataError, match=r":2: record: a second row"):
        TableJudge(path)
