"""Policy generation with vLLM (``--backend vllm``), when importable: the path for large models and several GPUs
(tensor parallel).

vLLM reserves ``gpu_memory_utilization`` of each GPU (weights plus KV cache) when the engine starts. The
policy track grades the answers only after every one is generated, and :meth:`VLLMGenerator.release` shuts
the engine down first, so a reward model or causal judge that grades on the same GPU finds the memory free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promedical.bench.generating import Decoding, conversation
from promedical.bench.judging import JudgeError
from promedical.bench.models.loading import model_identity
from promedical.bench.schema import BenchItem


@dataclass(frozen=True)
class VLLMOptions:
    """Engine settings: GPUs per model, the share of each GPU's memory the engine takes, and the longest
    prompt plus answer it must hold (``None``: the model's own limit, which sizes the KV cache for it)."""

    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")


class VLLMGenerator:
    """Generation with vLLM (``--backend vllm``); needs the ``vllm`` package and a GPU."""

    def __init__(self, path_or_id: str, decoding: Decoding, engine: VLLMOptions = VLLMOptions(), dtype: str = "auto"):
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise JudgeError("--backend vllm needs the vllm package (pip install -e .[vllm]) and a GPU") from None
        self.spec = f"vllm:{path_or_id}"
        self.decoding = decoding
        self.identity = f"{self.spec}|{model_identity(path_or_id)}|{dtype}|{decoding.chat_id()}"
        self.llm = LLM(model=path_or_id, tensor_parallel_size=engine.tensor_parallel_size, dtype=dtype,
                       seed=decoding.seed, gpu_memory_utilization=engine.gpu_memory_utilization,
                       max_model_len=engine.max_model_len)
        self.params = SamplingParams(max_tokens=decoding.max_new_tokens, temperature=decoding.temperature,
                                     seed=decoding.seed)

    def generate(self, items: Sequence[BenchItem]) -> list[str | None]:
        if self.llm is None:
            raise JudgeError(f"{self.spec}: the engine was released")
        outputs = self.llm.chat([conversation(item) for item in items], self.params, use_tqdm=False,
                                chat_template_kwargs=self.decoding.chat_template_kwargs())
        return [self.decoding.answer(o.outputs[0].text) for o in outputs]

    def release(self) -> None:
        """Shut the engine down and free its GPU memory (weights and KV cache)."""
        import contextlib
        import gc

        import torch

        if self.llm is None:
            return
        shutdown = getattr(self.llm, "shutdown", None)  # vLLM ≥ 0.11
        if shutdown is not None:
            shutdown()
        self.llm = None
        with contextlib.suppress(ImportError):
            from vllm.distributed import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
