"""The synthetic world's ground truth as a judge (spec ``world``)."""

from __future__ import annotations

from collections.abc import Sequence

from promedical.bench.judging import PairwiseQuery, PointwiseQuery, Verdict
from promedical.bench.models.loading import model_identity
from promedical.bench.prompts import TEMPLATE_HASH
from promedical.bench.schema import BenchItem, Criterion


class WorldJudge:
    """The synthetic world's ground truth as a judge (spec ``world``): for a synthetic item, the verdict its
    construction implies for ANY response (:func:`promedical.bench.data.synthetic.world_verdicts`); items
    from elsewhere get ``unknown``. A control that takes the reward model out of the loop, e.g. safety-veto
    GRPO with an exact judge. Exact for the world's sentences only: other wording is not recognised."""

    spec = kind = "world"
    template_hash = TEMPLATE_HASH  # reads the query's item and response, no prompt
    grades_only = "synthetic-world prompts (from `promedical-bench data synth`)"

    def __init__(self) -> None:
        from importlib import resources

        from promedical.bench.data.world import WORLD_FOLDER, WORLD_PACKAGE

        self.identity = f"world|{model_identity(str(resources.files(WORLD_PACKAGE) / WORLD_FOLDER))}"

    def pointwise(self, queries: Sequence[PointwiseQuery]) -> list[Verdict]:
        verdicts = []
        for q in queries:
            met = self._met(q.item, q.response, q.criterion)
            verdicts.append(Verdict("unknown") if met is None else Verdict("met" if met else "not_met", float(met)))
        return verdicts

    def pairwise(self, queries: Sequence[PairwiseQuery]) -> list[Verdict]:
        from promedical.bench.data.synthetic import preference

        verdicts = []
        for q in queries:
            a, b = self._met(q.item, q.response_a, q.criterion), self._met(q.item, q.response_b, q.criterion)
            if a is None or b is None:
                verdicts.append(Verdict("unknown"))
            else:
                decision = preference(a, b)
                verdicts.append(Verdict(decision, {"a": 1.0, "b": 0.0, "tie": 0.5}[decision]))
        return verdicts

    @staticmethod
    def grades(item: BenchItem) -> bool:
        """Whether ``item`` is a synthetic-world item (every other item gets ``unknown``)."""
        from promedical.bench.data.synthetic import is_synthetic

        return is_synthetic(item)

    @staticmethod
    def _met(item: BenchItem, response: str, criterion: Criterion) -> bool | None:
        from promedical.bench.data.synthetic import is_synthetic, world_verdicts

        return world_verdicts(item, response)[criterion.id] if is_synthetic(item) else None
