"""The one rendering of judge inputs, shared by every judge and by reward-model training.

A judge sees the conversation, ONE criterion and the response(s). Reward models are trained on exactly
:func:`render_pointwise`. :data:`TEMPLATE_HASH` covers the shared templates; each judge adds what else of
its own reaches its model (system prompts, chat-template arguments, answer words, the pairwise order
rule) through :func:`template_hash`, and that hash is in every cache key and results file, so a verdict
is never reused or compared across different prompts by accident. Change any of it and the hash changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from promedical.bench.schema import BenchItem, Criterion

TEMPLATE_VERSION = "pmb-judge-v1"

_KIND = {
    "proficiency": "core clinical requirement",
    "excellence": "quality of communication",
    "safety": "safety requirement",
}

POINTWISE_TEMPLATE = """You are a physician grading an AI assistant's reply against one rubric criterion.

[Conversation]
{conversation}

[Criterion] ({kind})
{criterion}

[Reply]
{response}

Does the reply satisfy the criterion? Answer Yes or No."""

PAIRWISE_TEMPLATE = """You are a physician comparing two AI assistant replies against one rubric criterion.

[Conversation]
{conversation}

[Criterion] ({kind})
{criterion}

[Reply A]
{response_a}

[Reply B]
{response_b}

Which reply better satisfies the criterion? Answer A or B."""

TEMPLATE_HASH = hashlib.sha256(
    "\x00".join((TEMPLATE_VERSION, POINTWISE_TEMPLATE, PAIRWISE_TEMPLATE, repr(sorted(_KIND.items())))).encode()
).hexdigest()[:16]

def chat_template_kwargs(enable_thinking: bool = False) -> dict[str, bool]:
    """The arguments to every chat template this project applies: causal judging, policy generation (HF and
    vLLM), GRPO and SFT prompts, and the UltraMedical CoT protocol. Qwen3-style thinking is one explicit
    setting, off unless asked for: a judge's next token must be its answer, so judging never thinks; a policy
    is evaluated in the mode it was trained in (the shipped recipes train without thinking)."""
    return {"enable_thinking": enable_thinking}


#: What a causal judge passes to its chat template (part of its template hash).
JUDGE_CHAT_TEMPLATE_KWARGS: Mapping[str, Any] = chat_template_kwargs(enable_thinking=False)


def template_hash(settings: Mapping[str, Any] | None = None) -> str:
    """The hash of the shared templates plus a judge's own ``settings`` (every other string or option that
    reaches its model); with no settings it is :data:`TEMPLATE_HASH`."""
    if not settings:
        return TEMPLATE_HASH
    text = TEMPLATE_HASH + "\x00" + json.dumps(settings, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render_conversation(item: BenchItem) -> str:
    """The item's messages as plain text, one turn per paragraph."""
    return "\n\n".join(f"{m.role.capitalize()}: {m.content}" for m in item.messages)


def render_pointwise(item: BenchItem, criterion: Criterion, response: str) -> str:
    """Judge input for "does ``response`` meet ``criterion``?" (also the reward model's r(x, c, y) input)."""
    return POINTWISE_TEMPLATE.format(
        conversation=render_conversation(item), kind=_KIND[criterion.type], criterion=criterion.text, response=response
    )


def render_pairwise(item: BenchItem, criterion: Criterion, response_a: str, response_b: str) -> str:
    """Judge input for "which of A and B better meets ``criterion``?"."""
    return PAIRWISE_TEMPLATE.format(
        conversation=render_conversation(item), kind=_KIND[criterion.type], criterion=criterion.text,
        response_a=response_a, response_b=response_b,
    )
