"""The generation stage's interface: what a policy answers (:func:`conversation`), how it decodes
(:class:`Decoding`), and the :class:`Generator` protocol every backend in :mod:`promedical.bench.models`
implements. Interfaces only: no backend is imported here.

A generator answers bench items: one string per item, or ``None`` when an API request failed for good (or,
with thinking on, when the model never finished thinking).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from promedical.bench.prompts import chat_template_kwargs
from promedical.bench.schema import BenchItem

Conversation = list[dict[str, str]]


def conversation(item: BenchItem) -> Conversation:
    """The messages a policy answers: the item's conversation as role/content dicts."""
    return [m.model_dump() for m in item.messages]


#: Where a Qwen3-style model's reasoning ends; with thinking on, the answer is what follows the last one.
THINK_END = "</think>"


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 512
    temperature: float = 0.0
    seed: int = 0
    enable_thinking: bool = False

    def as_dict(self) -> dict[str, float | int | bool]:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": self.seed,
                "enable_thinking": self.enable_thinking}

    def chat_template_kwargs(self) -> dict[str, Any]:
        return chat_template_kwargs(self.enable_thinking)

    def chat_id(self) -> str:
        """The chat-template arguments as they enter a generator's identity (and so its cache keys)."""
        return "chat=" + json.dumps(self.chat_template_kwargs(), sort_keys=True)

    def answer(self, text: str) -> str | None:
        """The graded answer in a generated text: with thinking on, what follows the reasoning, or ``None``
        when the reasoning never ended (the answer was cut off by ``max_new_tokens``)."""
        if not self.enable_thinking:
            return text.strip()
        if THINK_END not in text:
            return None
        return text.rsplit(THINK_END, 1)[1].strip()


class Generator(Protocol):
    spec: str
    identity: str

    def generate(self, items: Sequence[BenchItem]) -> list[str | None]: ...

    def release(self) -> None:
        """Free the model's memory once every answer is generated, before a judge on the same device grades."""
