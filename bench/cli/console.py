"""Console output shared by the commands: counted nouns."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 item``, ``2 items`` (``many``: an irregular plural)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
