"""The synthetic clinical world: table coverage, determinism, disjoint splits, labels true by construction."""

import collections
import hashlib
import random

import pytest

from promedical.bench.data.synthetic import (
    safety_counterfactuals,
    split_scenarios,
    synthesize,
    world_labelled,
    world_verdicts,
)
from promedical.bench.data.world import load_world
from promedical.bench.schema import CATEGORIES, SPECIALTIES


@pytest.fixture(scope="module")
def world():
    return load_world()


def test_scenario_table_covers_every_specialty_and_category(world):
    scenarios, _ = world
    assert len(scenarios) >= 80
    assert {s.specialty for s in scenarios} == set(SPECIALTIES)
    assert {s.category for s in scenarios} == set(CATEGORIES)


def test_every_sentence_has_one_role_within_its_scenario(world):
    scenarios, common = world
    for scenario in scenarios:
        sentences = [t for spec in scenario.proficiency + scenario.excellence for t in spec.met + spec.not_met]
        sentences += [t for spec in scenario.safety for t in spec.safe + spec.violation] + list(scenario.distractors)
        repeated = [t for t, n in collections.Counter(sentences).items() if n > 1]
        assert not repeated, (scenario.id, repeated)
    neutral = set(common.openers + common.closers + common.fillers)
    scored = {t for spec in common.excellence for t in spec.met + spec.not_met}
    scored |= {t for spec in common.safety for t in spec.safe + spec.violation}
    assert not neutral & scored


def test_split_is_disjoint_and_covers_the_specialties():
    splits = split_scenarios()
    train, heldout = ({s.id for s in splits[name]} for name in ("train", "heldout"))
    assert train and heldout and not train & heldout
    assert len({s.specialty for s in splits["heldout"]}) >= 20
    assert len(heldout) <= len(train) / 2


def test_heldout_items_come_only_from_heldout_scenarios():
    heldout = {s.id for s in split_scenarios()["heldout"]}
    for split in ("train", "heldout"):
        sources = {item.source.removeprefix("synthetic:") for item in synthesize(300, seed=5, split=split)}
        assert (sources <= heldout) if split == "heldout" else not (sources & heldout)


def test_heldout_prompts_are_reserved_from_training():
    reserved = {s.id: s.presentations[-1] for s in split_scenarios()["train"]}

    def prompts(split):
        return {(i.source.removeprefix("synthetic:"), i.messages[0].content) for i in synthesize(300, 5, split)}

    assert prompts("heldout_prompts") == set(reserved.items())  # 300 items cover every training scenario
    assert not prompts("train") & set(reserved.items())


def test_same_seed_same_bytes_and_prefix_stability(cli, tmp_path):
    paths = [tmp_path / f"{name}.jsonl" for name in ("a", "b", "c", "small")]
    for path, (n, seed) in zip(paths, [(400, 7), (400, 7), (400, 8), (50, 7)], strict=True):
        assert cli("data", "synth", "--instructions", str(n), "--seed", str(seed), "--output", str(path)).code == 0
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert digest[0] == digest[1] and digest[0] != digest[2]
    assert paths[0].read_text().startswith(paths[3].read_text())
    assert cli("validate", str(paths[0])).code == 0


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_labels_are_true_by_construction(world, split):
    scenarios, common = world
    by_id = {s.id: s for s in scenarios}
    for item in synthesize(400, seed=11, split=split):
        scenario = by_id[item.source.removeprefix("synthetic:")]
        specs = scenario.proficiency + scenario.excellence + scenario.safety + common.excellence + common.safety
        for criterion in item.rubric:  # world_verdicts finds each criterion's spec by its wording: unambiguous
            assert sum(criterion.text in spec.criterion for spec in specs) == 1, (scenario.id, criterion.text)
        assert 4 <= len(item.rubric) <= 8 and {c.type for c in item.rubric} == {"proficiency", "excellence", "safety"}
        truth = {r.id: world_verdicts(item, r.text) for r in item.responses}
        for label in item.labels.pointwise:
            assert truth[label.response][label.criterion] == label.met, (item.id, label)
        met = {(p.response, p.criterion): p.met for p in item.labels.pointwise}
        for pair in item.labels.pairwise:
            a, b = met[(pair.a, pair.criterion)], met[(pair.b, pair.criterion)]
            assert pair.preferred == ("tie" if a == b else "a" if a else "b")


def test_world_judge_gives_the_labels_and_knows_only_synthetic_items():
    from promedical.bench.datasets import load_bench
    from promedical.bench.judging import PairwiseQuery, PointwiseQuery
    from promedical.bench.models.registry import build_judge

    judge = build_judge("world")
    items = synthesize(30, seed=5)
    texts = {(i.id, r.id): r.text for i in items for r in i.responses}
    criteria = {(i.id, c.id): c for i in items for c in i.rubric}
    by_id = {i.id: i for i in items}
    pointwise = [(by_id[i.id], label) for i in items for label in i.labels.pointwise]
    verdicts = judge.pointwise([PointwiseQuery(item, criteria[(item.id, label.criterion)],
                                               texts[(item.id, label.response)]) for item, label in pointwise])
    assert [v.decision for v in verdicts] == ["met" if label.met else "not_met" for _, label in pointwise]
    pairwise = [(by_id[i.id], label) for i in items for label in i.labels.pairwise]
    verdicts = judge.pairwise([PairwiseQuery(item, criteria[(item.id, label.criterion)], texts[(item.id, label.a)],
                                             texts[(item.id, label.b)]) for item, label in pairwise])
    assert [v.decision for v in verdicts] == [label.preferred for _, label in pairwise]
    hand_written = load_bench("sample")[0]
    query = PointwiseQuery(hand_written, hand_written.rubric[0], hand_written.responses[0].text)
    assert judge.pointwise([query])[0].decision == "unknown"


def test_safety_counterfactuals_swap_only_the_violating_sentence(world):
    scenarios, common = world
    by_id = {s.id: s for s in scenarios}
    items = synthesize(60, seed=4)
    rng = random.Random(0)
    violations = sum(not label.met for item in items for label in item.labels.pointwise
                     if next(c for c in item.rubric if c.id == label.criterion).type == "safety")
    found = 0
    for item in items:
        responses = {r.text for r in item.responses}
        for criterion, safe, violating in safety_counterfactuals(item, rng):
            found += 1
            assert criterion.type == "safety" and violating in responses and safe != violating
            scenario = by_id[item.source.removeprefix("synthetic:")]
            spec = next(spec for spec in scenario.safety + common.safety if criterion.text in spec.criterion)
            assert any(safe == violating.replace(sentence, swapped) for sentence in spec.violation
                       for swapped in spec.safe + scenario.distractors), "one sentence swapped for a neutral one"
            before, after = world_verdicts(item, violating), world_verdicts(item, safe)
            assert not before[criterion.id] and after[criterion.id]
            assert {k: v for k, v in after.items() if k != criterion.id} == \
                {k: v for k, v in before.items() if k != criterion.id}, "no other criterion changes"
    assert found == violations > 20


def test_safety_counterfactuals_replace_every_violating_sentence_of_a_policy_answer(world):
    # a policy's answer may say a violating sentence twice and another of the same criterion once: the
    # "safe" side of the pair must not violate the criterion at all
    scenarios, common = world
    item = next(i for i in synthesize(60, seed=4) if any(c.type == "safety" for c in i.rubric))
    criterion = next(c for c in item.rubric if c.type == "safety")
    scenario = next(s for s in scenarios if item.source == "synthetic:" + s.id)
    spec = next(spec for spec in scenario.safety + common.safety if criterion.text in spec.criterion)
    first, second = spec.violation[0], spec.violation[-1]
    answer = f"{first} {item.responses[0].text} {first} {second}"
    labelled = world_labelled(item, [answer, "Please see a doctor."], "x")
    [(_, safe, violating)] = [p for p in safety_counterfactuals(labelled, random.Random(0)) if p[0].id == criterion.id]
    assert violating == answer and first not in safe and second not in safe
    assert world_verdicts(item, safe)[criterion.id] and not world_verdicts(item, violating)[criterion.id]


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_violation_rate_sets_how_often_responses_violate(rate):
    items = synthesize(40, seed=3, violation_rate=rate)
    types = {(i.id, c.id): c.type for i in items for c in i.rubric}
    safety = [label.met for i in items for label in i.labels.pointwise if types[(i.id, label.criterion)] == "safety"]
    assert safety and all(met == (rate == 0.0) for met in safety)
    assert [i.rubric for i in items] == [i.rubric for i in synthesize(40, seed=3)], "same scenarios and rubrics"
    with pytest.raises(ValueError, match="violation_rate"):
        synthesize(1, violation_rate=1.5)


def test_balance_of_labels():
    items = synthesize(1000, seed=3)
    types = {(i.id, c.id): c.type for i in items for c in i.rubric}
    met = collections.defaultdict(list)
    for item in items:
        for label in item.labels.pointwise:
            met[types[(item.id, label.criterion)]].append(label.met)
    rates = {kind: sum(v) / len(v) for kind, v in met.items()}
    assert 0.45 < rates["proficiency"] < 0.75 and 0.35 < rates["excellence"] < 0.65
    assert 0.65 < rates["safety"] < 0.85  # about a quarter of safety decisions are violations
    assert {i.specialty for i in items} == set(SPECIALTIES)  # every specialty keeps training scenarios
