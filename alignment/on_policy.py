"""On-policy preference data: a policy's own sampled answers to training prompts, labelled by the synthetic
world's exact verdicts. A reward model trained only on the world's composed responses reads a policy's text
weakly (docs/alignment.md, "Measured"); trained on the warm-up policy's own answers too, it learns the text
that GRPO will later ask it to grade."""

from __future__ import annotations

from collections.abc import Sequence

from promedical.bench.data.synthetic import is_synthetic, world_labelled
from promedical.bench.generating import Decoding
from promedical.bench.models.hf import HFGenerator
from promedical.bench.models.loading import ModelOptions
from promedical.bench.schema import BenchItem


def on_policy_items(policy: str, items: Sequence[BenchItem], samples: int, max_new_tokens: int,
                    temperature: float = 1.0, seed: int = 0) -> list[BenchItem]:
    """Per synthetic item, ``samples`` answers sampled from ``policy`` at ``temperature``, deduplicated, as the
    item's candidate responses with world labels; items with fewer than two distinct answers are dropped (no
    pair to learn from)."""
    if samples < 2:
        raise ValueError(f"samples must be at least 2 (pairs are compared within an item), got {samples}")
    if not all(is_synthetic(item) for item in items):
        raise ValueError("on-policy labels come from the synthetic world: every item must be synthetic")
    generator = HFGenerator(policy, ModelOptions(), Decoding(max_new_tokens, temperature, seed))
    answers = generator.generate([item for item in items for _ in range(samples)])  # rows sample independently
    generator.release()
    out = []
    for index, item in enumerate(items):
        texts = list(dict.fromkeys(a for a in answers[index * samples:(index + 1) * samples] if a and a.strip()))
        if len(texts) >= 2:
            out.append(world_labelled(item, texts, f"{item.id}-on-policy"))
    return out
