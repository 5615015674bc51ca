"""Deterministic synthetic clinical world: bench-format items whose criterion satisfaction is known by
construction.

Each instruction comes from one curated scenario (:mod:`promedical.bench.data.world`). Its rubric is a
random subset of the scenario's criteria (plus generic ones), each in one of several wordings; each
candidate response is a shuffled set of sentences, one per criterion decision (a satisfying sentence, a
near miss, an omission, or a safety violation), plus on-topic distractors and neutral filler. Labels follow
from those decisions, so the data can train and test judges without human labelling.

Scenarios are split once, independently of the seed: in every specialty the scenario with the smallest
SHA-256 of its id is held out, so a ``heldout`` bench never shares a scenario with ``train`` data. The last
presentation (user message) of every training scenario is reserved for the ``heldout_prompts`` split:
unseen prompts about seen situations, where a small policy trained on ``train`` data can be evaluated. Item
``i`` depends only on (seed, split, i): the same seed gives the same bytes, and a smaller set is a prefix
of a larger one.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from promedical.bench.data.world import CommonPools, CriterionSpec, SafetySpec, Scenario, load_world
from promedical.bench.schema import BenchItem, Criterion, Labels, PairwiseLabel, PointwiseLabel, Response

Split = Literal["train", "heldout", "heldout_prompts"]
SPLITS: tuple[Split, ...] = ("train", "heldout", "heldout_prompts")

#: Probability that a response satisfies a proficiency / excellence criterion, and (by default) violates a
#: safety one.
P_MET_PROFICIENCY = 0.6
P_MET_EXCELLENCE = 0.5
P_VIOLATION = 0.25
#: Probability that a criterion left unmet is voiced as a near miss rather than simply omitted.
P_NEAR_MISS = 0.6
#: Probability that a satisfied safety criterion is stated explicitly rather than by omission.
P_EXPLICIT_SAFE = 0.4
#: Probability that a rubric includes a generic (scenario-independent) excellence or safety criterion.
P_COMMON = 0.35
#: An item's ``source`` is this prefix and its scenario id; how the world finds an item's sentences again.
SOURCE_PREFIX = "synthetic:"


def split_scenarios() -> dict[str, tuple[Scenario, ...]]:
    """The fixed train/held-out partition of the scenario table (one held-out scenario per specialty)."""
    scenarios, _ = load_world()
    by_specialty: dict[str, list[Scenario]] = {}
    for scenario in scenarios:
        by_specialty.setdefault(scenario.specialty, []).append(scenario)
    heldout = {
        min(group, key=lambda s: hashlib.sha256(s.id.encode()).hexdigest()).id
        for group in by_specialty.values()
        if len(group) >= 2
    }
    return {
        "train": tuple(s for s in scenarios if s.id not in heldout),
        "heldout": tuple(s for s in scenarios if s.id in heldout),
    }


def world_verdicts(item: BenchItem, text: str) -> dict[str, bool]:
    """Ground truth by construction for ANY text answering a synthetic item (e.g. a policy's answer): per
    criterion id, whether ``text`` meets it — a proficiency or excellence criterion when the text contains
    one of its satisfying sentences, a safety criterion when it contains none of its violating sentences.
    Text in other words is not recognised, so this is exact for sentences of the world and blind beyond."""
    _, specs = _rubric_specs(item)
    verdicts = {}
    for criterion_id, spec in specs.items():
        verdicts[criterion_id] = (not any(v in text for v in spec.violation) if isinstance(spec, SafetySpec)
                                  else any(m in text for m in spec.met))
    return verdicts


def world_labelled(item: BenchItem, texts: list[str], item_id: str) -> BenchItem:
    """``item`` (synthetic) with ``texts`` as its candidate responses, labelled by :func:`world_verdicts`:
    pointwise per criterion, and pairwise for every two responses — e.g. a policy's own sampled answers as
    reward-model training data, the analogue of the paper's candidate responses labelled against rubrics."""
    responses = [Response(id=f"r{k + 1}", text=text) for k, text in enumerate(texts)]
    labels = _labels(responses, item.rubric, [world_verdicts(item, text) for text in texts])
    return BenchItem.model_validate({**item.model_dump(), "id": item_id, "responses": responses, "labels": labels})


def _labels(responses: list[Response], criteria: list[Criterion], met: list[dict[str, bool]]) -> Labels:
    """Pointwise labels per response and criterion (``met[k][criterion id]`` for response k), and a pairwise
    label for every two responses on every criterion, following from the two pointwise verdicts."""
    pointwise = [PointwiseLabel(response=r.id, criterion=c.id, met=m[c.id])
                 for r, m in zip(responses, met, strict=True) for c in criteria]
    pairwise = [PairwiseLabel(criterion=c.id, a=ra.id, b=rb.id, preferred=preference(ma[c.id], mb[c.id]))
                for c in criteria for (ra, ma), (rb, mb) in itertools.combinations(zip(responses, met, strict=True), 2)]
    return Labels(pointwise=pointwise, pairwise=pairwise)


def safety_counterfactuals(item: BenchItem, rng: random.Random) -> list[tuple[Criterion, str, str]]:
    """Minimal pairs for the safety criteria of a synthetic item: for every response that violates one,
    (criterion, the same response with its violating sentence replaced by one of the criterion's safe
    sentences or an on-topic distractor, the violating response). The two texts differ in that one sentence
    only, so nothing but the violation tells them apart: not length, not the other criteria's sentences.
    A policy's answer may hold a criterion's violating sentences more than once, or several of them: every
    one is replaced, so the "safe" text does not violate the criterion."""
    scenario, specs = _rubric_specs(item)
    criteria = {c.id: c for c in item.rubric}
    texts = {r.id: r.text for r in item.responses}
    out = []
    for label in item.labels.pointwise if item.labels else []:
        criterion, spec = criteria[label.criterion], specs[label.criterion]
        if criterion.type != "safety" or label.met:
            continue
        violating = safe = texts[label.response]
        for sentence in (v for v in spec.violation if v in violating):
            replacement = rng.choice(spec.safe) if rng.random() < 0.5 else rng.choice(scenario.distractors)
            safe = safe.replace(sentence, replacement)
        out.append((criterion, safe, violating))
    return out


def is_synthetic(item: BenchItem) -> bool:
    """Whether ``item`` comes from the synthetic world (so its sentences can be looked up)."""
    return (item.source or "").startswith(SOURCE_PREFIX)


def _rubric_specs(item: BenchItem) -> tuple[Scenario, dict[str, CriterionSpec | SafetySpec]]:
    """The scenario of a synthetic item and, per rubric criterion id, the spec its wording came from."""
    scenarios, common = load_world()
    scenario = next(s for s in scenarios if SOURCE_PREFIX + s.id == item.source)
    specs = scenario.proficiency + scenario.excellence + scenario.safety + common.excellence + common.safety
    return scenario, {c.id: next(s for s in specs if c.text in s.criterion) for c in item.rubric}


def synthesize(n_instructions: int, seed: int = 0, split: Split = "train",
               violation_rate: float = P_VIOLATION) -> list[BenchItem]:
    """``n_instructions`` labelled bench items drawn from the scenarios of ``split``; each response violates
    each of its safety criteria with probability ``violation_rate``."""
    return list(iter_synthetic(n_instructions, seed, split, violation_rate))


def iter_synthetic(n_instructions: int, seed: int = 0, split: Split = "train",
                   violation_rate: float = P_VIOLATION) -> Iterator[BenchItem]:
    if n_instructions < 0:
        raise ValueError("n_instructions must be >= 0")
    if not 0.0 <= violation_rate <= 1.0:
        raise ValueError(f"violation_rate must be in [0, 1], got {violation_rate}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    scenarios = list(split_scenarios()["heldout" if split == "heldout" else "train"])
    if not scenarios:
        raise RuntimeError(f"the scenario table has no {split} scenarios")
    _, common = load_world()
    random.Random(f"order:{seed}:{split}").shuffle(scenarios)
    for index in range(n_instructions):
        rng = random.Random(f"item:{seed}:{split}:{index}")
        scenario = scenarios[index % len(scenarios)]
        prompts = {"train": scenario.presentations[:-1], "heldout_prompts": scenario.presentations[-1:],
                   "heldout": scenario.presentations}[split]
        yield _compose(scenario, prompts, common, rng, f"syn-{split}-s{seed}-{index:06d}", violation_rate)


@dataclass(frozen=True)
class _Chosen:
    """One rubric criterion of an item and the spec it was drawn from."""

    criterion: Criterion
    spec: CriterionSpec | SafetySpec


def _compose(scenario: Scenario, prompts: list[str], common: CommonPools, rng: random.Random,
             item_id: str, violation_rate: float) -> BenchItem:
    chosen = _choose_rubric(scenario, common, rng)
    decisions = _choose_decisions(chosen, rng, rng.choice((2, 3, 3)), violation_rate)
    responses = [
        Response(id=f"r{k + 1}", text=_write_response(chosen, met, scenario, common, rng))
        for k, met in enumerate(decisions)
    ]
    criteria = [c.criterion for c in chosen]
    labels = _labels(responses, criteria, [{c.id: m for c, m in zip(criteria, met, strict=True)} for met in decisions])
    return BenchItem(
        id=item_id,
        category=scenario.category,
        specialty=scenario.specialty,
        scenario=scenario.setting,
        messages=[{"role": "user", "content": rng.choice(prompts)}],
        rubric=[c.criterion for c in chosen],
        responses=responses,
        labels=labels,
        source=SOURCE_PREFIX + scenario.id,
    )


def _choose_rubric(scenario: Scenario, common: CommonPools, rng: random.Random) -> list[_Chosen]:
    """2–4 proficiency, 1–2 excellence and 1–2 safety criteria, each in a random wording."""
    proficiency = rng.sample(scenario.proficiency, rng.randint(2, min(4, len(scenario.proficiency))))
    excellence = rng.sample(scenario.excellence, 1)
    if rng.random() < P_COMMON:
        excellence.append(rng.choice(common.excellence))
    elif len(scenario.excellence) > 1 and rng.random() < 0.5:
        excellence = rng.sample(scenario.excellence, 2)
    safety = rng.sample(scenario.safety, 1)
    if rng.random() < P_COMMON:
        safety.append(rng.choice(common.safety))
    elif rng.random() < 0.4:
        safety = rng.sample(scenario.safety, 2)
    total_weight = sum(spec.weight for spec in proficiency)
    specs: list[tuple[str, CriterionSpec | SafetySpec, float | None]] = (
        [("proficiency", spec, spec.weight / total_weight) for spec in proficiency]
        + [("excellence", spec, None) for spec in excellence]
        + [("safety", spec, None) for spec in safety]
    )
    return [
        _Chosen(Criterion(id=f"c{k + 1}", type=kind, text=rng.choice(spec.criterion), weight=weight), spec)
        for k, (kind, spec, weight) in enumerate(specs)
    ]


def _choose_decisions(chosen: list[_Chosen], rng: random.Random, n_responses: int,
                      violation_rate: float) -> list[list[bool]]:
    """Per response, per criterion: met (for safety: not violated). Responses differ on some criterion."""
    def draw() -> list[bool]:
        return [
            rng.random() >= violation_rate if c.criterion.type == "safety"
            else rng.random() < (P_MET_PROFICIENCY if c.criterion.type == "proficiency" else P_MET_EXCELLENCE)
            for c in chosen
        ]

    decisions = [draw()]
    while len(decisions) < n_responses:
        candidate = draw()
        if candidate not in decisions:
            decisions.append(candidate)
    return decisions


def _write_response(chosen: list[_Chosen], met: list[bool], scenario: Scenario, common: CommonPools,
                    rng: random.Random) -> str:
    sentences: list[str] = []
    for choice, satisfied in zip(chosen, met, strict=True):
        spec = choice.spec
        if isinstance(spec, SafetySpec):
            if not satisfied:
                sentences.append(rng.choice(spec.violation))
            elif rng.random() < P_EXPLICIT_SAFE:
                sentences.append(rng.choice(spec.safe))
        elif satisfied:
            sentences.append(rng.choice(spec.met))
        elif rng.random() < P_NEAR_MISS:
            sentences.append(rng.choice(spec.not_met))
    sentences += rng.sample(scenario.distractors, rng.randint(0, min(3, len(scenario.distractors))))
    sentences += rng.sample(common.fillers, rng.randint(0, 1))
    rng.shuffle(sentences)
    opener, closer = rng.choice(common.openers), rng.choice(common.closers)
    return " ".join(s for s in (opener, *sentences, closer) if s) or rng.choice(scenario.distractors)


def preference(a_met: bool, b_met: bool) -> Literal["a", "b", "tie"]:
    """The pairwise label on one criterion from the two responses' pointwise verdicts."""
    return "tie" if a_met == b_met else ("a" if a_met else "b")
