"""Policy generation with vLLM (``--backend vllm``), when importable: the path for large models and several GPUs
(tensor parallel)."""

from __future__ import annotations

from collections.abc import Sequence

from promedical.bench.generating import Decoding, conversation
from promedical.bench.judging import JudgeError
from promedical.bench.models.loading import model_identity
from promedical.bench.prompts import CHAT_TEMPLATE_KWARGS, CHAT_TEMPLATE_KWARGS_ID
from promedical.bench.schema import BenchItem


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
