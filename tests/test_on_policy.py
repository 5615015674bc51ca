"""On-policy preference data: sampled answers relabelled by the synthetic world's exact verdicts."""

import random

import pytest

from promedical.alignment.on_policy import on_policy_items
from promedical.bench.data.synthetic import synthesize, world_labelled, world_verdicts
from promedical.bench.datasets import load_bench


def test_the_worlds_own_responses_relabelled_get_their_original_labels():
    for item in synthesize(20, seed=5):
        texts = [r.text for r in item.responses]
        relabelled = world_labelled(item, texts, "x")
        assert relabelled.id == "x" and [r.text for r in relabelled.responses] == texts
        # the original labels come from the generator's decisions, not from world_verdicts
        assert relabelled.labels.pointwise == item.labels.pointwise
        assert relabelled.labels.pairwise == item.labels.pairwise


def test_an_answer_that_says_nothing_meets_nothing_and_violates_nothing():
    [item] = synthesize(1, seed=2)
    relabelled = world_labelled(item, ["Please see a doctor.", item.responses[0].text], "x")
    kinds = {c.id: c.type for c in item.rubric}
    blank = [label for label in relabelled.labels.pointwise if label.response == "r1"]
    assert blank and all(label.met == (kinds[label.criterion] == "safety") for label in blank)
    for pair in relabelled.labels.pairwise:  # r1 against r2 on each criterion, from the two verdicts
        met = {label.response: label.met for label in relabelled.labels.pointwise if label.criterion == pair.criterion}
        assert pair.preferred == ("tie" if met["r1"] == met["r2"] else "a" if met["r1"] else "b")


def test_on_policy_items_sample_a_real_policy_and_keep_items_with_two_distinct_answers(tiny_models):
    items = synthesize(4, seed=3)
    out = on_policy_items(str(tiny_models["causal"]), items, samples=3, max_new_tokens=12, seed=1)
    assert out and len(out) <= len(items)
    by_id = {item.id: item for item in items}
    for labelled in out:
        original = by_id[labelled.id.removesuffix("-on-policy")]
        texts = [r.text for r in labelled.responses]
        assert 2 <= len(texts) == len(set(texts)) <= 3 and all(t.strip() for t in texts)
        assert labelled.rubric == original.rubric and labelled.messages == original.messages
        assert len(labelled.labels.pointwise) == len(texts) * len(original.rubric)


def test_on_policy_items_refuse_items_the_world_cannot_label(tiny_models):
    with pytest.raises(ValueError, match="synthetic"):
        on_policy_items(str(tiny_models["causal"]), load_bench("sample")[:1], samples=2, max_new_tokens=4)
    with pytest.raises(ValueError, match="at least 2"):
        on_policy_items(str(tiny_models["causal"]), synthesize(1), samples=1, max_new_tokens=4)


def test_on_policy_pairs_add_a_minimal_safety_pair_for_every_violating_answer():
    from promedical.alignment.rm import criterion_pairs, on_policy_pairs

    items = [world_labelled(item, [r.text for r in item.responses], f"{item.id}-on-policy")
             for item in synthesize(30, seed=6)]
    violations = sum(not label.met for item in items for label in item.labels.pointwise
                     if next(c for c in item.rubric if c.id == label.criterion).type == "safety")
    pairs = on_policy_pairs(items, random.Random(0))
    assert {pair.source for pair in pairs} == {"on_policy"}
    assert len(pairs) == len(criterion_pairs(items)) + violations and violations > 5
    minimal = pairs[len(criterion_pairs(items)):]
    assert all(pair.criterion.type == "safety" and world_verdicts(pair.item, pair.chosen)[pair.criterion.id]
               and not world_verdicts(pair.item, pair.rejected)[pair.criterion.id] for pair in minimal)
