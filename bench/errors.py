"""The one base class of the errors the command line turns into a one-line message and an exit code.

Every refusal (bad bench data, a judge that cannot be built, an unusable API, ratings that cannot be
analysed, ...) derives from :class:`PromedicalError`; ``promedical-bench``'s ``main`` maps them all in one
place: it prints each line of :meth:`PromedicalError.report` after ``error:`` and exits with the class's
``exit_code``. This module imports nothing heavy, so the command line can load it at start-up.
"""

from __future__ import annotations

from typing import ClassVar

#: Exit codes of ``promedical-bench``: success, any failure not due to the input, bad input or usage.
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class PromedicalError(Exception):
    """A refusal that knows where it comes from: ``str()`` is :meth:`message`, ``PATH:LINE: FIELD: problem``
    with the parts that are absent (None) left out. ``exit_code``: what ``promedical-bench`` exits with."""

    exit_code: ClassVar[int] = EXIT_BAD_INPUT

    def __init__(self, problem: str, path: str | None = None, line: int | None = None, field: str | None = None):
        self.problem, self.path, self.line, self.field = problem, path, line, field
        super().__init__(self.message())

    def message(self) -> str:
        """One line: ``PATH:LINE: FIELD: problem`` (``PATH: problem``, ``problem``, ... when parts are absent)."""
        place = [str(part) for part in (self.path, self.line) if part is not None]
        where = ":".join(place) if place else None
        return ": ".join(part for part in (where, self.field, self.problem) if part is not None)

    def report(self) -> list[str]:
        """The lines the command line prints, each after ``error:``; by default the one :meth:`message`."""
        return [self.message()]


class UnavailableError(PromedicalError):
    """Something the command needs cannot be used at all (an unreachable server, a refused key): a runtime
    failure, not bad input, so ``promedical-bench`` exits 1."""

    exit_code: ClassVar[int] = EXIT_FAILURE
