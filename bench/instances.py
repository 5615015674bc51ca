"""Labels → criterion-level instances: the one walk over a bench item's labels.

A pointwise instance is (item, criterion, one response) with gold "met" / "not_met"; a pairwise instance is
(item, criterion, two responses) with gold "a" / "b" / "tie". The judge track, reward-model training and
the judge-vs-physician reports all read labels through :func:`labelled_instances`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from promedical.bench.schema import BenchItem, Criterion


@dataclass(frozen=True)
class LabelledInstance:
    """One labelled criterion-level decision of a bench item."""

    mode: Literal["pointwise", "pairwise"]
    item: BenchItem
    criterion: Criterion
    response_ids: tuple[str, ...]
    gold: str

    @property
    def texts(self) -> tuple[str, ...]:
        """The responses' texts, in ``response_ids`` order."""
        by_id = {r.id: r.text for r in self.item.responses}
        return tuple(by_id[r] for r in self.response_ids)


def labelled_instances(items: Sequence[BenchItem]) -> Iterator[LabelledInstance]:
    """Every pointwise label, then every pairwise label (ties included), item by item, in file order."""
    for item in items:
        if item.labels is None:
            continue
        criteria = {c.id: c for c in item.rubric}
        for label in item.labels.pointwise:
            yield LabelledInstance("pointwise", item, criteria[label.criterion], (label.response,),
                                   "met" if label.met else "not_met")
        for pair in item.labels.pairwise:
            yield LabelledInstance("pairwise", item, criteria[pair.criterion], (pair.a, pair.b), pair.preferred)
