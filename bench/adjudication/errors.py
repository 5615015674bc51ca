"""The one error type of the adjudication workflow: a refusal with one line per problem."""

from __future__ import annotations

from collections.abc import Sequence

from promedical.bench.datasets import BenchDataError

MAX_PROBLEM_LINES = 100


class AdjudicationError(BenchDataError):
    """Refused input: ``problems`` holds one line per problem (``str()`` joins them with newlines)."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        ValueError.__init__(self, "\n".join(self.problems))
        self.path, self.line, self.field, self.more = "", None, None, len(self.problems) - 1
        self.problem = self.problems[0] if self.problems else ""


def cap(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEM_LINES:
        return problems
    return problems[:MAX_PROBLEM_LINES] + [f"... and {len(problems) - MAX_PROBLEM_LINES} more problems"]
