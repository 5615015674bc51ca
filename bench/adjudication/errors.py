"""The one error type of the adjudication workflow: a refusal with one line per problem."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from promedical.bench.datasets import BenchDataError

MAX_PROBLEM_LINES = 100
#: With a listing file, the command line shows only this many problems and says where the rest are.
SHOWN_PROBLEMS = 5


class AdjudicationError(BenchDataError):
    """Refused input: ``problems`` holds one line per problem (``str()`` joins them with newlines). The
    command line prints each on its own ``error:`` line and, when there are several, a closing count; when
    ``listing`` names a file holding them all, only the first :data:`SHOWN_PROBLEMS` and where the rest are."""

    def __init__(self, problems: Sequence[str], listing: Path | None = None):
        self.problems, self.listing = list(problems), listing
        self.path, self.line, self.field, self.more = "", None, None, len(self.problems) - 1
        self.problem = self.problems[0] if self.problems else ""
        Exception.__init__(self, "\n".join(self.problems))

    def message(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        if self.listing is not None:
            return (f"refused ({len(self.problems)} problems, the first {SHOWN_PROBLEMS} above; all of them are in "
                    f"{self.listing}); nothing else was written")
        return f"refused ({len(self.problems)} problems); nothing was written"

    def report(self) -> list[str]:
        if len(self.problems) == 1:
            return [self.message()]
        shown = self.problems[:SHOWN_PROBLEMS] if self.listing is not None else self.problems
        return [*shown, self.message()]


def cap(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEM_LINES:
        return problems
    return problems[:MAX_PROBLEM_LINES] + [f"... and {len(problems) - MAX_PROBLEM_LINES} more problems"]
