"""Console output shared by the commands: tables laid out by rich (plain text: no colour, no box), and counted
nouns."""

from __future__ import annotations

import io
from collections.abc import Collection, Iterable, Sequence


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: Collection[int] = (), indent: int = 2) -> str:
    """``rows`` under ``headers``, every column as wide as its widest cell, two spaces apart; the columns whose
    index is in ``right`` (numbers) are right-justified. Cells are plain text, never rich markup."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=None, pad_edge=False, padding=(0, 1), header_style="none", show_edge=False)
    for index, header in enumerate(headers):
        grid.add_column(Text(header), justify="right" if index in right else "left", no_wrap=True)
    for row in rows:
        grid.add_row(*(Text(cell) for cell in row))
    buffer = io.StringIO()
    Console(file=buffer, width=10_000, color_system=None, highlight=False, emoji=False).print(grid)
    return "\n".join((" " * indent + line).rstrip() for line in buffer.getvalue().splitlines())


def percent_cells(value: float | None, low: float | None, high: float | None, signed: bool = False
                  ) -> tuple[str, str]:
    """A fraction and its CI as two cells in percent, ``25.0`` and ``[  0.0,  50.3]``: every bound gets the
    same width (``100.0`` fits, and ``-100.0`` when ``signed``), so right-justified columns line the digits up;
    ``n/a`` when undefined."""
    if value is None:
        return "n/a", ""
    width = "+6.1f" if signed else "5.1f"
    interval = f"[{100 * low:{width}}, {100 * high:{width}}]" if low is not None and high is not None else ""
    return f"{100 * value:{'+' if signed else ''}.1f}", interval


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 item``, ``2 items`` (``many``: an irregular plural)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
