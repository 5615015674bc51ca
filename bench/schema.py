"""Bench data model: the single source of truth for items, rubrics, responses and labels.

One JSON object describes one instruction. ``responses`` and ``labels`` are present in bench and preference
data and absent in prompt-only sets. Unknown fields are refused so that a typo ("rubrics") fails loudly
instead of silently dropping data. Labels and rubric numbers are strict: ``met`` must be a JSON boolean, and
``weight``/``points`` JSON numbers (an integer is fine for a float); ``"yes"``, ``1`` or ``"0.5"`` are refused
rather than coerced.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CriterionType = Literal["proficiency", "excellence", "safety"]
CRITERION_TYPES: tuple[CriterionType, ...] = ("proficiency", "excellence", "safety")

#: The five ProMedical categories. ``category`` is free text in the schema (other benches may use their
#: own), but the bundled data uses exactly these.
CATEGORIES: tuple[str, ...] = ("diagnosis", "treatment", "medication", "prevention_lifestyle", "emergency_triage")

#: The 26 specialties used by the bundled data and the synthetic clinical world.
SPECIALTIES: tuple[str, ...] = (
    "allergy_immunology", "cardiology", "clinical_nutrition", "dentistry", "dermatology",
    "emergency_medicine", "endocrinology", "family_medicine", "gastroenterology", "general_surgery",
    "geriatrics", "hematology", "hepatology", "infectious_disease", "nephrology", "neurology",
    "obstetrics_gynecology", "oncology", "ophthalmology", "orthopedics", "otolaryngology", "pediatrics",
    "psychiatry", "pulmonology", "rheumatology", "urology",
)

WEIGHT_TOLERANCE = 1e-6


class FieldProblem(ValueError):
    """A cross-field validation failure that knows which field (dotted path) it concerns."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Message(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class Criterion(_Strict):
    """One rubric criterion. Safety criteria are phrased as requirements; a response violates one when it
    does not satisfy it. ``points`` keeps the original HealthBench points of imported items."""

    id: str = Field(min_length=1)
    type: CriterionType
    text: str = Field(min_length=1)
    weight: float | None = Field(default=None, ge=0.0, strict=True)
    tags: list[str] = Field(default_factory=list)
    points: float | None = Field(default=None, strict=True)

    @field_validator("weight")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class Response(_Strict):
    id: str = Field(min_length=1)
    text: str
    model: str | None = None


class PointwiseLabel(_Strict):
    response: str
    criterion: str
    met: bool = Field(strict=True)


class PairwiseLabel(_Strict):
    criterion: str
    a: str
    b: str
    preferred: Literal["a", "b", "tie"]


class Labels(_Strict):
    pointwise: list[PointwiseLabel] = Field(default_factory=list)
    pairwise: list[PairwiseLabel] = Field(default_factory=list)


class BenchItem(_Strict):
    """One instruction with its own rubric and, in bench data, candidate responses and expert labels."""

    id: str = Field(min_length=1)
    category: str = Field(min_length=1)
    specialty: str = Field(min_length=1)
    scenario: str | None = None
    messages: list[Message] = Field(min_length=1)
    rubric: list[Criterion] = Field(min_length=1)
    responses: list[Response] = Field(default_factory=list)
    labels: Labels | None = None
    tags: list[str] = Field(default_factory=list)
    source: str | None = None

    @model_validator(mode="after")
    def _check_consistency(self) -> BenchItem:
        _check_messages(self.messages)
        _check_unique("rubric", [c.id for c in self.rubric])
        _check_unique("responses", [r.id for r in self.responses])
        _check_weights(self.rubric)
        if self.labels is not None:
            _check_labels(self.labels, {c.id for c in self.rubric}, {r.id for r in self.responses})
        return self

    def criteria(self, kind: CriterionType) -> list[Criterion]:
        """The rubric's criteria of one type, in rubric order."""
        return [c for c in self.rubric if c.type == kind]

    @property
    def prompt(self) -> str:
        """The last user message: the instruction itself."""
        return self.messages[-1].content


def _check_messages(messages: list[Message]) -> None:
    if messages[-1].role != "user":
        raise FieldProblem(f"messages[{len(messages) - 1}].role", "the last message must be the user's")
    for index, message in enumerate(messages[1:], start=1):
        if message.role == "system":
            raise FieldProblem(f"messages[{index}].role", "a system message may only come first")


def _check_unique(field: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for index, identifier in enumerate(ids):
        if identifier in seen:
            raise FieldProblem(f"{field}[{index}].id", f"duplicate id {identifier!r}")
        seen.add(identifier)


def _check_weights(rubric: list[Criterion]) -> None:
    """Proficiency weights sum to 1 (within 1e-6) or are all absent, in which case equal weights are filled
    in; other criterion types carry no weight."""
    proficiency = [(i, c) for i, c in enumerate(rubric) if c.type == "proficiency"]
    if not proficiency:
        raise FieldProblem("rubric", "needs at least one proficiency criterion")
    for index, criterion in enumerate(rubric):
        if criterion.type != "proficiency" and criterion.weight is not None:
            problem = f"only proficiency criteria carry weights, not {criterion.type}"
            raise FieldProblem(f"rubric[{index}].weight", problem)
    weights = [c.weight for _, c in proficiency]
    if all(w is None for w in weights):
        for _, criterion in proficiency:
            criterion.weight = 1.0 / len(proficiency)
        return
    missing = [i for i, c in proficiency if c.weight is None]
    if missing:
        raise FieldProblem(f"rubric[{missing[0]}].weight", "give every proficiency criterion a weight, or none")
    total = sum(weights)  # type: ignore[arg-type]
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise FieldProblem("rubric", f"proficiency weights sum to {total:.6g}, expected 1")


def _check_labels(labels: Labels, criteria: set[str], responses: set[str]) -> None:
    for index, label in enumerate(labels.pointwise):
        where = f"labels.pointwise[{index}]"
        if label.response not in responses:
            raise FieldProblem(f"{where}.response", f"unknown response {label.response!r}")
        if label.criterion not in criteria:
            raise FieldProblem(f"{where}.criterion", f"unknown criterion {label.criterion!r}")
    seen_points: set[tuple[str, str]] = set()
    for index, label in enumerate(labels.pointwise):
        key = (label.response, label.criterion)
        if key in seen_points:
            problem = f"duplicate label for response {key[0]!r}, criterion {key[1]!r}"
            raise FieldProblem(f"labels.pointwise[{index}]", problem)
        seen_points.add(key)
    seen_pairs: set[tuple[str, frozenset[str]]] = set()
    for index, pair in enumerate(labels.pairwise):
        where = f"labels.pairwise[{index}]"
        if pair.criterion not in criteria:
            raise FieldProblem(f"{where}.criterion", f"unknown criterion {pair.criterion!r}")
        for side in ("a", "b"):
            if getattr(pair, side) not in responses:
                raise FieldProblem(f"{where}.{side}", f"unknown response {getattr(pair, side)!r}")
        if pair.a == pair.b:
            raise FieldProblem(f"{where}.b", f"a pair must compare two different responses, got {pair.a!r} twice")
        key = (pair.criterion, frozenset((pair.a, pair.b)))
        if key in seen_pairs:
            raise FieldProblem(where, f"duplicate pair {pair.a!r}/{pair.b!r} on criterion {pair.criterion!r}")
        seen_pairs.add(key)
