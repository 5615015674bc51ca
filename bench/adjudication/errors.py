"""The one error type of the adjudication workflow: a refusal with one line per problem."""

from __future__ import annotations

from collections.abc import Sequence

from promedical.bench.datasets import BenchDataError

MAX_PROBLEM_LINES = 100


class AdjudicationError(BenchDataError):
    """Refused input: ``problems`` holds one line per problem (``str()`` joins them with newlines). The
    command line prints each on its own ``error:`` line and, when there are several, a closing count."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        self.path, self.line, self.field, self.more = "", None, None, len(self.problems) - 1
        self.problem = self.problems[0] if self.problems else ""
        Exception.__init__(self, "\n".join(self.problems))

    def message(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        return f"refused ({len(self.problems)} problems); nothing was written"

    def report(self) -> list[str]:
        return [self.message()] if len(self.problems) == 1 else [*self.problems, self.message()]


def cap(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEM_LINES:
        return problems
    return problems[:MAX_PROBLEM_LINES] + [f"... and {len(problems) - MAX_PROBLEM_LINES} more problems"]
