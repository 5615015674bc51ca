"""Causal LM judge (spec ``hf:PATH_OR_ID``): judged by prompting, P("Yes") vs P("No") after the question;
pairwise P("A") vs P("B"), averaged over both presentation orders to cancel position bias. No sampling."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from promedical.bench.judging import PairwiseQuery, PointwiseQuery, Verdict, pair_decision
from promedical.bench.models.loading import (
    ModelOptions,
    load_pretrained,
    load_tokenizer,
    model_identity,
    resolve_device,
    run_batched,
    torch_dtype,
)
from promedical.bench.prompts import JUDGE_CHAT_TEMPLATE_KWARGS, template_hash

#: What a causal judge adds to the shared rendering: the answer words it reads, how it wraps a prompt, and
#: how it combines the two presentation orders of a pair. Part of its template hash.
CAUSAL_PROMPT_SETTINGS: dict[str, Any] = {
    "pointwise_answer": ["Yes", "No"],
    "pairwise_answer": ["A", "B"],
    "pairwise_orders": "mean of P(a preferred) over the (a, b) and (b, a) presentations",
    "chat_template_kwargs": dict(JUDGE_CHAT_TEMPLATE_KWARGS),
    "without_chat_template_suffix": "\nAnswer:",
}


class CausalLMJudge:
    """Judge by next-token probabilities of a causal LM: one forward pass per rendered input. Weights load
    on first use, so a fully cached re-run never loads them."""

    kind = "causal"
    template_hash = template_hash(CAUSAL_PROMPT_SETTINGS)

    def __init__(self, path_or_id: str, options: ModelOptions = ModelOptions()):
        self.path_or_id = path_or_id
        self.spec = f"hf:{path_or_id}"
        self.options = options
        self.device = resolve_device(options.device)
        self.identity = f"{self.spec}|{model_identity(path_or_id)}|{options.dtype}"

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.path_or_id)

    @cached_property
    def model(self):
        from transformers import AutoModelForCausalLM

        dtype = torch_dtype(self.options.dtype, self.device)
        model = load_pretrained(AutoModelForCausalLM, self.path_or_id, dtype=dtype)
        return model.to(self.device).eval()

    @cached_property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def _token_ids(self, word: str) -> list[int]:
        """First token of the word with and without a leading space (tokenisers differ on which comes next)."""
        ids = {self.tokenizer.encode(variant, add_special_tokens=False)[0] for variant in (word, " " + word)}
        return sorted(ids)

    def format(self, prompt: str) -> str:
        """The model input for a rendered judge prompt: the chat template when there is one."""
        if self.has_chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True,
                **CAUSAL_PROMPT_SETTINGS["chat_template_kwargs"],
            )
        return prompt + CAUSAL_PROMPT_SETTINGS["without_chat_template_suffix"]

    def _choice_probabilities(self, prompts: list[str], first: str, second: str) -> list[tuple[float, float]]:
        """P(first), P(second) of the next token for each prompt (each word with or without a leading space).

        Prompts are tokenised once and batched in order of token count (least padding) and only the last
        position's logits are computed; results come back in the input order."""
        import torch

        first_ids, second_ids = self._token_ids(first), self._token_ids(second)
        texts = [self.format(p) for p in prompts]
        ids = self.tokenizer(texts, add_special_tokens=not self.has_chat_template)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))

        def forward(chunk: list[list[int]]) -> list[tuple[float, float]]:
            encoded = self.tokenizer.pad({"input_ids": chunk}, return_tensors="pt", padding=True).to(self.device)
            with torch.inference_mode():
                logits = self.model(**encoded, logits_to_keep=1).logits[:, -1, :].float()
            probabilities = torch.softmax(logits, dim=-1)
            p1 = probabilities[:, first_ids].sum(dim=-1).tolist()
            p2 = probabilities[:, second_ids].sum(dim=-1).tolist()
            return list(zip(p1, p2, strict=True))

        sorted_results = run_batched(forward, [ids[i] for i in order], self.options.batch_size)
        results: list[tuple[float, float]] = [(0.0, 0.0)] * len(texts)
        for position, index in enumerate(order):
            results[index] = sorted_results[position]
        return results

    def pointwise(self, queries: Sequence[PointwiseQuery]) -> list[Verdict]:
        verdicts = []
        yes, no = CAUSAL_PROMPT_SETTINGS["pointwise_answer"]
        for p_yes, p_no in self._choice_probabilities([q.render() for q in queries], yes, no):
            score = p_yes / (p_yes + p_no) if p_yes + p_no > 0 else 0.5
            verdicts.append(Verdict("met" if p_yes > p_no else "not_met", score, {"p_yes": p_yes, "p_no": p_no}))
        return verdicts

    def pairwise(self, queries: Sequence[PairwiseQuery]) -> list[Verdict]:
        prompts = [q.render(swap) for q in queries for swap in (False, True)]
        probabilities = self._choice_probabilities(prompts, *CAUSAL_PROMPT_SETTINGS["pairwise_answer"])
        verdicts = []
        for index in range(len(queries)):
            (a1, b1), (a2, b2) = probabilities[2 * index], probabilities[2 * index + 1]
            first = a1 / (a1 + b1) if a1 + b1 > 0 else 0.5  # P(A) with a shown first
            second = b2 / (a2 + b2) if a2 + b2 > 0 else 0.5  # P(B) with a shown second: a again
            score = (first + second) / 2
            raw = {"p_a_given_ab": first, "p_a_given_ba": second}
            verdicts.append(Verdict(pair_decision(score - 0.5), score, raw))
        return verdicts
