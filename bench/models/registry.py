"""Backends by spec: :func:`build_judge` and :func:`build_generator` map a spec string to the backend module
that serves it, importing that module only when it is asked for (so a run with one backend never imports the
others, nor their dependencies).

Judges: ``hf:PATH_OR_ID`` (:mod:`.causal`), ``rm:PATH_OR_ID`` (:mod:`.reward`), ``openai:MODEL`` (:mod:`.api`),
``embed:PATH`` (:mod:`.embedding`), ``table:PATH`` (:mod:`.table`), ``world`` (:mod:`.world`), or a bare path/id
(kind from its config).
Generators: ``hf:PATH_OR_ID`` or a bare path/id (:mod:`.hf`; :mod:`.vllm` with backend ``vllm``),
``openai:MODEL`` or backend ``openai`` (:mod:`.api`), ``table:PATH`` (:mod:`.table`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from promedical.bench.generating import Decoding, Generator
from promedical.bench.judging import Judge, JudgeError
from promedical.bench.models.loading import ModelOptions, check_model_source, detect_kind

if TYPE_CHECKING:
    from promedical.bench.models.vllm import VLLMOptions

WORLD_SPEC = "world"
#: Every form a judge spec takes, with the backend behind it (``promedical-bench list judges`` prints these).
JUDGE_FORMS: dict[str, str] = {
    "rm:PATH_OR_ID": "reward model (*ForSequenceClassification, 1 label): r(x, c, y) per criterion, thresholds "
                     "from its promedical_rm.json",
    "hf:PATH_OR_ID": "causal LM judged by prompting: P(Yes) vs P(No); pairs averaged over both orders",
    "openai:MODEL": "OpenAI-compatible API (OPENAI_BASE_URL, OPENAI_API_KEY): JSON verdicts, bounded retries",
    "embed:PATH": "zero-shot sentence-encoder judge: cosine(criterion, response), one logistic cut per type from "
                  "its promedical_embedding.json (the honest untrained base of a reward model on that encoder)",
    "table:FILE": "verdicts fixed in a JSONL file: replays an external grader's or physicians' decisions",
    WORLD_SPEC: "the synthetic world's exact ground truth; grades only prompts from `data synth`",
    "PATH_OR_ID": "a bare checkpoint: rm: or hf: as its config's architecture says",
}


def _causal_judge(target: str, options: ModelOptions) -> Judge:
    from promedical.bench.models.causal import CausalLMJudge

    return CausalLMJudge(target, options)


def _reward_judge(target: str, options: ModelOptions) -> Judge:
    from promedical.bench.models.reward import RewardModelJudge

    return RewardModelJudge(target, options)


def _embedding_judge(target: str, options: ModelOptions) -> Judge:
    from promedical.bench.models.embedding import EmbeddingJudge

    check_model_source(target)
    return EmbeddingJudge(target, options)


def _openai_judge(model: str, options: ModelOptions) -> Judge:
    from promedical.bench.models.api import OpenAIJudge

    return OpenAIJudge(model)


def _table_judge(path: str, options: ModelOptions) -> Judge:
    from promedical.bench.models.table import TableJudge

    return TableJudge(path)


def _world_judge() -> Judge:
    from promedical.bench.models.world import WorldJudge

    return WorldJudge()


def _checked(kind: str, factory: Callable[[str, ModelOptions], Judge]) -> Callable[[str, ModelOptions], Judge]:
    def build(target: str, options: ModelOptions) -> Judge:
        actual = detect_kind(target)
        if actual != kind:
            raise JudgeError(f"{target!r} is a {actual} checkpoint; use '{'rm' if actual == 'reward' else 'hf'}:'")
        return factory(target, options)

    return build


JUDGES: dict[str, Callable[[str, ModelOptions], Judge]] = {
    "hf": _checked("causal", _causal_judge),
    "rm": _checked("reward", _reward_judge),
    "openai": _openai_judge,
    "table": _table_judge,
    "embed": _embedding_judge,
}


def build_judge(spec: str, options: ModelOptions = ModelOptions()) -> Judge:
    """A judge from ``hf:PATH``, ``rm:PATH``, ``openai:MODEL``, ``table:PATH``, ``world`` (the synthetic world's
    ground truth), or a bare path/id (kind from its config)."""
    if spec == WORLD_SPEC:
        return _world_judge()
    backend, _, target = spec.partition(":")
    if backend not in JUDGES or not target:
        if backend in JUDGES:
            raise JudgeError(f"judge {spec!r}: name a model after '{backend}:'")
        kind = detect_kind(spec)
        return (_reward_judge if kind == "reward" else _causal_judge)(spec, options)
    return JUDGES[backend](target, options)


def build_generator(model: str, backend: str | None, options: ModelOptions, decoding: Decoding,
                    engine: VLLMOptions | None = None) -> Generator:
    """The generator for ``--model`` (``openai:MODEL`` selects the API backend, ``table:PATH`` answers fixed in
    a file); ``engine`` sets up the vLLM backend. Thinking (``decoding.enable_thinking``) is a chat-template
    argument, so only the local backends can switch it: an API server applies its own template."""
    if decoding.enable_thinking and (model.startswith(("table:", "openai:")) or backend == "openai"):
        raise JudgeError(f"--enable-thinking needs a local model (hf or vllm backend), not {model!r}")
    if model.startswith("table:"):
        from promedical.bench.models.table import TableGenerator

        return TableGenerator(model.removeprefix("table:"))
    if model.startswith("openai:") or backend == "openai":
        from promedical.bench.models.api import OpenAIGenerator

        return OpenAIGenerator(model.removeprefix("openai:"), max_new_tokens=decoding.max_new_tokens,
                               temperature=decoding.temperature, seed=decoding.seed)
    path = model.removeprefix("hf:")
    if backend == "vllm":
        check_model_source(path)
        from promedical.bench.models.vllm import VLLMGenerator, VLLMOptions

        return VLLMGenerator(path, decoding, engine or VLLMOptions(), options.dtype)
    from promedical.bench.models.hf import HFGenerator

    return HFGenerator(path, options, decoding)
