"""The judging stage's interface: what a judge is asked (:class:`PointwiseQuery`, :class:`PairwiseQuery`), what
it answers (:class:`Verdict`), and the :class:`Judge` protocol every backend in :mod:`promedical.bench.models`
implements. Interfaces only: no backend is imported here.

Every verdict is JSON-serialisable (it is cached and written to samples.jsonl) and may be ``unknown``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from promedical.bench.errors import PromedicalError
from promedical.bench.prompts import render_pairwise, render_pointwise
from promedical.bench.schema import BenchItem, Criterion

PointwiseDecision = Literal["met", "not_met", "unknown"]
PairwiseDecision = Literal["a", "b", "tie", "unknown"]
#: A pairwise margin this close to zero is a tie.
TIE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class PointwiseQuery:
    item: BenchItem
    criterion: Criterion
    response: str

    def render(self) -> str:
        return render_pointwise(self.item, self.criterion, self.response)


@dataclass(frozen=True)
class PairwiseQuery:
    item: BenchItem
    criterion: Criterion
    response_a: str
    response_b: str

    def render(self, swap: bool = False) -> str:
        a, b = (self.response_b, self.response_a) if swap else (self.response_a, self.response_b)
        return render_pairwise(self.item, self.criterion, a, b)


@dataclass(frozen=True)
class Verdict:
    """A judge's decision, its probability-like score (P(met) or P(A preferred)) and the raw output."""

    decision: PointwiseDecision | PairwiseDecision
    score: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        return cls(**json.loads(text))


class Judge(Protocol):
    """A judge backend. ``identity`` names the exact model (and settings) for cache keys; ``template_hash``
    covers every prompt string and option that reaches it (:func:`promedical.bench.prompts.template_hash`).

    A judge that knows only some items (``world``) also has ``grades(item) -> bool`` and ``grades_only`` (what
    it knows, in words): a run refuses a bench it can grade none of, before any model work."""

    spec: str
    kind: str
    identity: str
    template_hash: str

    def pointwise(self, queries: Sequence[PointwiseQuery]) -> list[Verdict]: ...

    def pairwise(self, queries: Sequence[PairwiseQuery]) -> list[Verdict]: ...


class JudgeError(PromedicalError, ValueError):
    """The judge (or generator) cannot be built from what the user gave (bad spec, missing model...)."""


def pair_decision(margin: float) -> PairwiseDecision:
    """The pairwise decision for a margin of a over b (a score difference, or P(a preferred) - 0.5)."""
    return "tie" if abs(margin) <= TIE_TOLERANCE else ("a" if margin > 0 else "b")
