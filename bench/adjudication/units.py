"""Units (what one rating is about) and the balanced, seeded assignment of units to raters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from promedical.bench.adjudication.sources import Source
from promedical.bench.schema import CRITERION_TYPES

TASKS = ("pointwise", "pairwise")


@dataclass(frozen=True)
class Unit:
    """One thing to rate: a response against a criterion (pointwise) or two responses against it (pairwise,
    ``responses`` in canonical order a, b)."""

    id: str
    task: str
    item_id: str
    criterion_id: str
    criterion_type: str
    responses: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "item_id": self.item_id, "criterion_id": self.criterion_id,
                "criterion_type": self.criterion_type, "responses": list(self.responses)}

    @classmethod
    def from_dict(cls, unit_id: str, data: dict[str, Any]) -> Unit:
        return cls(unit_id, data["task"], data["item_id"], data["criterion_id"], data["criterion_type"],
                   tuple(data["responses"]))


def build_units(source: Source, tasks: Sequence[str] = TASKS, criterion_types: Sequence[str] | None = None
                ) -> list[Unit]:
    """Every pointwise unit (response × criterion) and every pairwise unit (pair of responses × criterion) of
    the source, in item, criterion and response order; pairwise only where an item has ≥ 2 responses."""
    types = set(criterion_types or CRITERION_TYPES)
    units = []
    for item_id, item in source.items.items():
        ids = [r.id for r in source.responses.get(item_id, [])]
        for criterion in item.rubric:
            if criterion.type not in types:
                continue
            if "pointwise" in tasks:
                units += [Unit("|".join(("pointwise", item_id, criterion.id, r)), "pointwise", item_id, criterion.id,
                               criterion.type, (r,)) for r in ids]
            if "pairwise" in tasks:
                units += [Unit("|".join(("pairwise", item_id, criterion.id, a, b)), "pairwise", item_id,
                               criterion.id, criterion.type, (a, b)) for a, b in combinations(ids, 2)]
    return units


def assign_raters(n_units: int, n_raters: int, overlap: int, rng: np.random.Generator) -> list[list[int]]:
    """For each unit, the ``overlap`` raters who rate it: units in random order each go to the least-loaded
    raters, preferring raters who have shared fewest units so far (so every rater pair overlaps about
    equally); loads differ by at most one. ``overlap == n_raters`` is the fully crossed design."""
    load = np.zeros(n_raters)
    shared = np.zeros((n_raters, n_raters))
    assignment: list[list[int]] = [[] for _ in range(n_units)]
    for unit in rng.permutation(n_units):
        chosen: list[int] = []
        for _ in range(overlap):
            tiebreak = rng.random(n_raters)
            best = min((r for r in range(n_raters) if r not in chosen),
                       key=lambda r: (load[r], sum(shared[r, c] for c in chosen), tiebreak[r]))
            chosen.append(best)
        for r in chosen:
            load[r] += 1
            for c in chosen:
                if c != r:
                    shared[r, c] += 1
        assignment[unit] = sorted(chosen)
    return assignment
