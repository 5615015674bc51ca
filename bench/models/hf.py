"""Policy generation with transformers (spec ``hf:PATH_OR_ID``): batched with left padding and the chat template;
greedy unless temperature > 0."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from promedical.bench.generating import Conversation, Decoding, conversation
from promedical.bench.judging import JudgeError
from promedical.bench.models.loading import (
    ModelOptions,
    detect_kind,
    load_pretrained,
    load_tokenizer,
    model_identity,
    resolve_device,
    run_batched,
    torch_dtype,
)
from promedical.bench.schema import BenchItem


class HFGenerator:
    """Batched generation with a transformers causal LM."""

    def __init__(self, path_or_id: str, options: ModelOptions, decoding: Decoding):
        self.path_or_id = path_or_id
        self.spec = f"hf:{path_or_id}"
        self.decoding, self.options = decoding, options
        self.device = resolve_device(options.device)
        if detect_kind(path_or_id) != "causal":
            raise JudgeError(f"model {path_or_id!r} is a reward model; the policy track needs a causal LM")
        self.tokenizer = load_tokenizer(path_or_id)
        if not getattr(self.tokenizer, "chat_template", None):
            raise JudgeError(f"model {path_or_id!r} has no chat template; the policy track needs a chat model")
        self.identity = f"{self.spec}|{model_identity(path_or_id)}|{options.dtype}|{decoding.chat_id()}"

    @cached_property
    def model(self):
        """Loaded on first use, so a fully cached re-run never loads the weights."""
        from transformers import AutoModelForCausalLM

        dtype = torch_dtype(self.options.dtype, self.device)
        return load_pretrained(AutoModelForCausalLM, self.path_or_id, dtype=dtype).to(self.device).eval()

    def generate(self, items: Sequence[BenchItem]) -> list[str | None]:
        import torch

        conversations = [conversation(item) for item in items]

        def batch(chunk: list[Conversation]) -> list[str | None]:
            texts = [self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True,
                                                        **self.decoding.chat_template_kwargs()) for c in chunk]
            encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            sampling = self.decoding.temperature > 0
            torch.manual_seed(self.decoding.seed)
            with torch.inference_mode():
                output = self.model.generate(
                    **encoded, max_new_tokens=self.decoding.max_new_tokens, do_sample=sampling,
                    temperature=self.decoding.temperature if sampling else None, top_p=None, top_k=None,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new_tokens = output[:, encoded["input_ids"].shape[1]:]
            return [self.decoding.answer(t) for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

        order = sorted(range(len(conversations)), key=lambda i: sum(len(m["content"]) for m in conversations[i]))
        sorted_texts = run_batched(batch, [conversations[i] for i in order], self.options.batch_size)
        texts: list[str | None] = [None] * len(conversations)
        for position, index in enumerate(order):  # batches go by length (less padding); results in input order
            texts[index] = sorted_texts[position]
        return texts

    def release(self) -> None:
        """Drop the weights (loaded again on a later ``generate``) and return their GPU memory."""
        import gc

        import torch

        self.__dict__.pop("model", None)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
