"""The generation stage's interface: what a policy answers (:func:`conversation`), how it decodes
(:class:`Decoding`), and the :class:`Generator` protocol every backend in :mod:`promedical.bench.models`
implements. Interfaces only: no backend is imported here.

A generator answers bench items: one string per item, or ``None`` when an API request failed for good.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from promedical.bench.schema import BenchItem

Conversation = list[dict[str, str]]


def conversation(item: BenchItem) -> Conversation:
    """The messages a policy answers: the item's conversation as role/content dicts."""
    return [m.model_dump() for m in item.messages]


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 512
    temperature: float = 0.0
    seed: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": self.seed}


class Generator(Protocol):
    spec: str
    identity: str

    def generate(self, items: Sequence[BenchItem]) -> list[str | None]: ...
