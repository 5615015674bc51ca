"""Policy generation backends: one answer per bench instruction.

- ``hf``     transformers, batched with left padding and the chat template; greedy unless temperature > 0.
- ``openai`` any OpenAI-compatible server (:class:`promedical.bench.api.OpenAIGenerator`).
- ``vllm``   vLLM when importable: the path for large models and several GPUs (tensor parallel).

A generator answers bench items: one string per item, or ``None`` when an API request failed for good.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from promedical.bench.judges import (
    JudgeError,
    ModelOptions,
    _load_tokenizer,
    _torch_dtype,
    detect_kind,
    model_identity,
    resolve_device,
    run_batched,
)
from promedical.bench.prompts import CHAT_TEMPLATE_KWARGS, CHAT_TEMPLATE_KWARGS_ID
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


class HFGenerator:
    """Batched generation with a transformers causal LM."""

    def __init__(self, path_or_id: str, options: ModelOptions, decoding: Decoding):
        self.path_or_id = path_or_id
        self.spec = f"hf:{path_or_id}"
        self.decoding, self.options = decoding, options
        self.device = resolve_device(options.device)
        if detect_kind(path_or_id) != "causal":
            raise JudgeError(f"model {path_or_id!r} is a reward model; the policy track needs a causal LM")
        self.tokenizer = _load_tokenizer(path_or_id)
        if not getattr(self.tokenizer, "chat_template", None):
            raise JudgeError(f"model {path_or_id!r} has no chat template; the policy track needs a chat model")
        self.identity = f"{self.spec}|{model_identity(path_or_id)}|{options.dtype}|{CHAT_TEMPLATE_KWARGS_ID}"

    @cached_property
    def model(self):
        """Loaded on first use, so a fully cached re-run never loads the weights."""
        from transformers import AutoModelForCausalLM

        dtype = _torch_dtype(self.options.dtype, self.device)
        return AutoModelForCausalLM.from_pretrained(self.path_or_id, dtype=dtype).to(self.device).eval()

    def generate(self, items: Sequence[BenchItem]) -> list[str | None]:
        import torch

        conversations = [conversation(item) for item in items]

        def batch(chunk: list[Conversation]) -> list[str | None]:
            texts = [self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True,
                                                        **CHAT_TEMPLATE_KWARGS) for c in chunk]
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
            return [t.strip() for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

        order = sorted(range(len(conversations)), key=lambda i: sum(len(m["content"]) for m in conversations[i]))
        sorted_texts = run_batched(batch, [conversations[i] for i in order], self.options.batch_size)
        texts: list[str | None] = [None] * len(conversations)
        for position, index in enumerate(order):  # batches go by length (less padding); results in input order
            texts[index] = sorted_texts[position]
        return texts


class VLLMGenerator:
    """Generation with vLLM (``--backend vllm``); needs the ``vllm`` package and a GPU."""

    def __init__(self, path_or_id: str, decoding: Decoding, tensor_parallel_size: int = 1, dtype: str = "auto"):
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise JudgeError("--backend vllm needs the vllm package (pip install vllm) and a GPU") from None
        self.spec = f"vllm:{path_or_id}"
        self.identity = f"{self.spec}|{model_identity(path_or_id)}|{dtype}|{CHAT_TEMPLATE_KWARGS_ID}"
        self.llm = LLM(model=path_or_id, tensor_parallel_size=tensor_parallel_size, dtype=dtype, seed=decoding.seed)
        self.params = SamplingParams(max_tokens=decoding.max_new_tokens, temperature=decoding.temperature,
                                     seed=decoding.seed)

    def generate(self, items: Sequence[BenchItem]) -> list[str | None]:
        outputs = self.llm.chat([conversation(item) for item in items], self.params, use_tqdm=False,
                                chat_template_kwargs=dict(CHAT_TEMPLATE_KWARGS))
        return [o.outputs[0].text.strip() for o in outputs]


def build_generator(model: str, backend: str | None, options: ModelOptions, decoding: Decoding,
                    tensor_parallel_size: int = 1) -> Generator:
    """The generator for ``--model`` (``openai:MODEL`` selects the API backend, ``table:PATH`` answers fixed in
    a file)."""
    if model.startswith("table:"):
        from promedical.bench.table import TableGenerator

        return TableGenerator(model.removeprefix("table:"))
    if model.startswith("openai:") or backend == "openai":
        from promedical.bench.api import OpenAIGenerator

        return OpenAIGenerator(model.removeprefix("openai:"), max_new_tokens=decoding.max_new_tokens,
                               temperature=decoding.temperature, seed=decoding.seed)
    path = model.removeprefix("hf:")
    if backend == "vllm":
        return VLLMGenerator(path, decoding, tensor_parallel_size, options.dtype)
    return HFGenerator(path, options, decoding)
