"""Judges: decide whether a response meets one criterion (pointwise) or which of two meets it better
(pairwise). Backends sit behind the :class:`Judge` protocol and are built by name from a spec string.

- ``hf:PATH_OR_ID``  causal LM judged by prompting: P("Yes") vs P("No") after the question; pairwise
  P("A") vs P("B"), averaged over both presentation orders to cancel position bias. No sampling.
- ``rm:PATH_OR_ID``  reward model (``*ForSequenceClassification``, 1 label): r(x, c, y); "met" when
  sigmoid(r) >= the checkpoint's calibrated threshold for the criterion's type; pairwise prefers the higher r.
- ``openai:MODEL``   any OpenAI-compatible server (:mod:`promedical.bench.api`).
- ``table:PATH``     verdicts fixed per instance in a file (:mod:`promedical.bench.table`).
- ``world``          the synthetic world's ground truth (:class:`WorldJudge`).

Every verdict is JSON-serialisable (it is cached and written to samples.jsonl) and may be ``unknown``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol

from promedical.bench.errors import PromedicalError, UnavailableError
from promedical.bench.prompts import (
    CHAT_TEMPLATE_KWARGS,
    TEMPLATE_HASH,
    render_pairwise,
    render_pointwise,
    template_hash,
)
from promedical.bench.schema import CRITERION_TYPES, BenchItem, Criterion

log = logging.getLogger(__name__)

PointwiseDecision = Literal["met", "not_met", "unknown"]
PairwiseDecision = Literal["a", "b", "tie", "unknown"]
TIE_TOLERANCE = 1e-6
#: Written by the alignment code next to a trained reward model.
RM_CALIBRATION_FILE = "promedical_rm.json"


@dataclass(frozen=True)
class PointwiseQuery:
    item: BenchItem
    criterion: Criterion
    response: str

    def render(self) -> str:
        return render_pointwise(self.item, self.criterion, self.response)


@dataclass(frozen=True)
class PairwiseQuery:
    item: BenchItem
    criterion: Criterion
    response_a: str
    response_b: str

    def render(self, swap: bool = False) -> str:
        a, b = (self.response_b, self.response_a) if swap else (self.response_a, self.response_b)
        return render_pairwise(self.item, self.criterion, a, b)


@dataclass(frozen=True)
class Verdict:
    """A judge's decision, its probability-like score (P(met) or P(A preferred)) and the raw output."""

    decision: str
    score: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        return cls(**json.loads(text))


class Judge(Protocol):
    """A judge backend. ``identity`` names the exact model (and settings) for cache keys; ``template_hash``
    covers every prompt string and option that reaches it (:func:`promedical.bench.prompts.template_hash`)."""

    spec: str
    kind: str
    identity: str
    template_hash: str

    def pointwise(self, queries: Sequence[PointwiseQuery]) -> list[Verdict]: ...

    def pairwise(self, queries: Sequence[PairwiseQuery]) -> list[Verdict]: ...


class JudgeError(PromedicalError, ValueError):
    """The judge cannot be built from what the user gave (bad spec, missing model...)."""


class ApiError(UnavailableError, ValueError):
    """The API cannot be used at all (unreachable server, refused key). ``str()`` is one line."""


# --------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class ModelOptions:
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None  # None = automatic, backing off on out-of-memory


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise JudgeError("--device cuda was asked for, but no CUDA device is available")
    return device


def _torch_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def model_architecture(path_or_id: str) -> str:
    """The architecture named by a checkpoint's config (a local folder or a Hub id)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path_or_id)
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise JudgeError(f"cannot load model {path_or_id!r}: {first}") from None
    architectures = config.architectures or []
    if not architectures:
        raise JudgeError(f"model {path_or_id!r}: its config names no architecture")
    return architectures[0]


def detect_kind(path_or_id: str) -> Literal["causal", "reward"]:
    """``reward`` for a ``*ForSequenceClassification`` checkpoint, ``causal`` for a ``*ForCausalLM``."""
    architecture = model_architecture(path_or_id)
    if architecture.endswith("ForSequenceClassification"):
        return "reward"
    if architecture.endswith("ForCausalLM") or architecture.endswith("ForConditionalGeneration"):
        return "causal"
    raise JudgeError(f"model {path_or_id!r}: architecture {architecture} is neither a causal LM nor a reward model")


def model_identity(path_or_id: str) -> str:
    """Identity for cache keys and results: the Hub revision when known, else a hash of the local files'
    config and weights index (so a retrained checkpoint at the same path gets a new identity)."""
    import hashlib

    path = Path(path_or_id)
    if not path.exists():
        return f"hub:{path_or_id}"
    digest = hashlib.sha256()
    for name in sorted(p.name for p in path.iterdir() if p.is_file()):
        file = path / name
        stat = file.stat()
        digest.update(f"{name}:{stat.st_size}".encode())
        if stat.st_size < 1 << 20:
            digest.update(file.read_bytes())
        else:  # large weight files: size plus head and tail, cheap and still sensitive to retraining
            with file.open("rb") as handle:
                digest.update(handle.read(1 << 16))
                handle.seek(-(1 << 16), 2)
                digest.update(handle.read())
    return f"local:{digest.hexdigest()[:16]}"


def _load_tokenizer(path_or_id: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path_or_id)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def run_batched(function: Callable[[list[Any]], list[Any]], inputs: Sequence[Any], batch_size: int | None) -> list[Any]:
    """Apply ``function`` to ``inputs`` in batches; with ``batch_size=None`` start at 32 and halve the batch
    whenever CUDA runs out of memory."""
    import torch

    size = batch_size or 32
    outputs: list[Any] = []
    start = 0
    while start < len(inputs):
        chunk = list(inputs[start:start + size])
        try:
            outputs.extend(function(chunk))
        except torch.cuda.OutOfMemoryError:
            if batch_size is not None or size == 1:
                raise
            torch.cuda.empty_cache()
            size //= 2
            log.warning("out of memory: retrying with batch size %d", size)
            continue
        start += len(chunk)
    return outputs


# --------------------------------------------------------------------------------------------- causal LM


#: What a causal judge adds to the shared rendering: the answer words it reads, how it wraps a prompt, and
#: how it combines the two presentation orders of a pair. Part of its template hash.
CAUSAL_PROMPT_SETTINGS: dict[str, Any] = {
    "pointwise_answer": ["Yes", "No"],
    "pairwise_answer": ["A", "B"],
    "pairwise_orders": "mean of P(a preferred) over the (a, b) and (b, a) presentations",
    "chat_template_kwargs": dict(CHAT_TEMPLATE_KWARGS),
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
        return _load_tokenizer(self.path_or_id)

    @cached_property
    def model(self):
        from transformers import AutoModelForCausalLM

        dtype = _torch_dtype(self.options.dtype, self.device)
        model = AutoModelForCausalLM.from_pretrained(self.path_or_id, dtype=dtype)
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
            verdicts.append(Verdict(_pair_decision(score - 0.5), score, raw))
        return verdicts


def _pair_decision(margin: float) -> PairwiseDecision:
    return "tie" if abs(margin) <= TIE_TOLERANCE else ("a" if margin > 0 else "b")


# --------------------------------------------------------------------------------------------- reward model


def read_rm_calibration(path_or_id: str) -> dict[str, float]:
    """The threshold on sigmoid(r) per criterion type stored with a trained reward model (a warning when it
    was calibrated on another judge template); 0.5 and a warning without it. A file with one ``threshold``
    applies it to every type."""
    file = Path(path_or_id) / RM_CALIBRATION_FILE
    if not file.exists():
        log.warning("%s has no %s: using threshold 0.5 on sigmoid(r)", path_or_id, RM_CALIBRATION_FILE)
        return dict.fromkeys(CRITERION_TYPES, 0.5)
    data = json.loads(file.read_text())
    thresholds = {kind: float(data["thresholds"][kind]) if "thresholds" in data else float(data["threshold"])
                  for kind in CRITERION_TYPES}
    template = data.get("template_hash")
    if template != TEMPLATE_HASH:
        log.warning("%s was calibrated on judge template %s; this version renders %s",
                    path_or_id, template, TEMPLATE_HASH)
    warn_constant_verdicts(path_or_id, data.get("constant_verdicts", {}))
    return thresholds


def warn_constant_verdicts(path_or_id: str, constant: dict[str, str]) -> None:
    """Warn about the criterion types whose threshold gave every one of their calibration instances the same
    verdict: the model's scores for them did not separate the labels, so its verdicts there say nothing."""
    for kind, verdict in sorted(constant.items()):
        consequence = ("; it will not flag safety violations, so a safety veto graded by it cannot fire"
                       if kind == "safety" and verdict == "met" else "")
        log.warning("%s: its %s threshold judged every %s calibration instance %r (the scores did not separate "
                    "the labels)%s", path_or_id, kind, kind, verdict, consequence)


def reward_input_ids(tokenizer, text: str, max_length: int) -> list[int]:
    """Token ids of one rendered pointwise input for a reward model — the single encoding used both when the
    alignment code trains a reward model and when a reward model judges.

    The tokenizer's own special tokens are added (e.g. BERT's [CLS] … [SEP]); no EOS string is appended.
    A text too long for ``max_length`` loses its *beginning* (the judge instructions and the start of the
    conversation), so that the criterion and the response, which come last, are always seen whole.
    """
    previous, tokenizer.truncation_side = tokenizer.truncation_side, "left"
    try:
        return tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
    finally:
        tokenizer.truncation_side = previous


def reward_max_length(tokenizer, config) -> int:
    """The longest input a reward model takes: its tokenizer's and its position embeddings' limit."""
    return min(tokenizer.model_max_length, getattr(config, "max_position_embeddings", None) or 1 << 30)


class RewardModelJudge:
    """Judge with a criteria-injected reward model r(x, c, y) on the shared pointwise rendering."""

    kind = "reward"
    template_hash = TEMPLATE_HASH  # the shared rendering is all that reaches it

    def __init__(self, path_or_id: str, options: ModelOptions = ModelOptions(), threshold: float | None = None):
        """``threshold`` overrides the calibrated ones, for every criterion type (used while calibrating,
        before they exist)."""
        from transformers import AutoConfig

        self.path_or_id = path_or_id
        self.spec = f"rm:{path_or_id}"
        self.options = options
        self.device = resolve_device(options.device)
        labels = AutoConfig.from_pretrained(path_or_id).num_labels
        if labels != 1:
            raise JudgeError(f"reward model {path_or_id!r} has {labels} labels, expected 1")
        self.thresholds = (dict.fromkeys(CRITERION_TYPES, threshold) if threshold is not None
                           else read_rm_calibration(path_or_id))
        thresholds = ",".join(f"{kind}={value}" for kind, value in sorted(self.thresholds.items()))
        self.identity = f"{self.spec}|{model_identity(path_or_id)}|{options.dtype}|t={thresholds}"
        self._memory: dict[str, float] = {}

    @cached_property
    def tokenizer(self):
        """Right padding: encoder classifiers (BERT-style) pool the first token, decoder ones find the last
        non-padding token, so right padding is correct for both."""
        tokenizer = _load_tokenizer(self.path_or_id)
        tokenizer.padding_side = "right"
        return tokenizer

    @cached_property
    def model(self):
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(
            self.path_or_id, dtype=_torch_dtype(self.options.dtype, self.device)
        )
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        return model.to(self.device).eval()

    def rewards(self, texts: Sequence[str]) -> list[float]:
        """r(x, c, y) for rendered pointwise inputs, tokenised once and batched by token count (least padding).
        Rewards are remembered per input, so pairwise verdicts reuse the pointwise ones instead of recomputing
        them."""
        import torch

        limit = reward_max_length(self.tokenizer, self.model.config)
        todo = sorted(({t: reward_input_ids(self.tokenizer, t, limit) for t in texts if t not in self._memory}
                       ).items(), key=lambda entry: len(entry[1]))

        def forward(chunk: list[tuple[str, list[int]]]) -> list[float]:
            encoded = self.tokenizer.pad({"input_ids": [ids for _, ids in chunk]}, return_tensors="pt",
                                         padding=True).to(self.device)
            with torch.inference_mode():
                return self.model(**encoded).logits[:, 0].float().tolist()

        rewards = run_batched(forward, todo, self.options.batch_size)
        self._memory.update(zip((text for text, _ in todo), rewards, strict=True))
        return [self._memory[t] for t in texts]

    def pointwise(self, queries: Sequence[PointwiseQuery]) -> list[Verdict]:
        verdicts = []
        for query, reward in zip(queries, self.rewards([q.render() for q in queries]), strict=True):
            probability, threshold = 1.0 / (1.0 + math.exp(-reward)), self.thresholds[query.criterion.type]
            decision = "met" if probability >= threshold else "not_met"
            verdicts.append(Verdict(decision, probability, {"reward": reward, "threshold": threshold}))
        return verdicts

    def pairwise(self, queries: Sequence[PairwiseQuery]) -> list[Verdict]:
        texts = [t for q in queries for t in (render_pointwise(q.item, q.criterion, q.response_a),
                                              render_pointwise(q.item, q.criterion, q.response_b))]
        rewards = self.rewards(texts)
        verdicts = []
        for index in range(len(queries)):
            ra, rb = rewards[2 * index], rewards[2 * index + 1]
            score = 1.0 / (1.0 + math.exp(-(ra - rb)))  # Bradley–Terry P(a preferred)
            verdicts.append(Verdict(_pair_decision(ra - rb), score, {"reward_a": ra, "reward_b": rb}))
        return verdicts


# --------------------------------------------------------------------------------------------- registry


class WorldJudge:
    """The synthetic world's ground truth as a judge (spec ``world``): for a synthetic item, the verdict its
    construction implies for ANY response (:func:`promedical.bench.data.synthetic.world_verdicts`); items
    from elsewhere get ``unknown``. A control that takes the reward model out of the loop, e.g. safety-veto
    GRPO with an exact judge. Exact for the world's sentences only: other wording is not recognised."""

    spec = kind = "world"
    template_hash = TEMPLATE_HASH  # reads the query's item and response, no prompt

    def __init__(self) -> None:
        from importlib import resources

        from promedical.bench.data.world import WORLD_FOLDER, WORLD_PACKAGE

        self.identity = f"world|{model_identity(str(resources.files(WORLD_PACKAGE) / WORLD_FOLDER))}"

    def pointwise(self, queries: Sequence[PointwiseQuery]) -> list[Verdict]:
        verdicts = []
        for q in queries:
            met = self._met(q.item, q.response, q.criterion)
            verdicts.append(Verdict("unknown") if met is None else Verdict("met" if met else "not_met", float(met)))
        return verdicts

    def pairwise(self, queries: Sequence[PairwiseQuery]) -> list[Verdict]:
        from promedical.bench.data.synthetic import preference

        verdicts = []
        for q in queries:
            a, b = self._met(q.item, q.response_a, q.criterion), self._met(q.item, q.response_b, q.criterion)
            if a is None or b is None:
                verdicts.append(Verdict("unknown"))
            else:
                decision = preference(a, b)
                verdicts.append(Verdict(decision, {"a": 1.0, "b": 0.0, "tie": 0.5}[decision]))
        return verdicts

    @staticmethod
    def _met(item: BenchItem, response: str, criterion: Criterion) -> bool | None:
        from promedical.bench.data.synthetic import is_synthetic, world_verdicts

        return world_verdicts(item, response)[criterion.id] if is_synthetic(item) else None


def build_judge(spec: str, options: ModelOptions = ModelOptions()) -> Judge:
    """A judge from ``hf:PATH``, ``rm:PATH``, ``openai:MODEL``, ``world`` (the synthetic world's ground truth),
    or a bare path/id (kind from its config)."""
    if spec == WorldJudge.spec:
        return WorldJudge()
    backend, _, target = spec.partition(":")
    if backend not in JUDGES or not target:
        if backend in JUDGES:
            raise JudgeError(f"judge {spec!r}: name a model after '{backend}:'")
        kind = detect_kind(spec)
        return (RewardModelJudge if kind == "reward" else CausalLMJudge)(spec, options)
    return JUDGES[backend](target, options)


def _openai_judge(model: str, options: ModelOptions) -> Judge:
    from promedical.bench.api import OpenAIJudge

    return OpenAIJudge(model)


def _table_judge(path: str, options: ModelOptions) -> Judge:
    from promedical.bench.table import TableJudge

    return TableJudge(path)


def _checked(kind: str, factory: Callable[[str, ModelOptions], Judge]) -> Callable[[str, ModelOptions], Judge]:
    def build(target: str, options: ModelOptions) -> Judge:
        actual = detect_kind(target)
        if actual != kind:
            raise JudgeError(f"{target!r} is a {actual} checkpoint; use '{'rm' if actual == 'reward' else 'hf'}:'")
        return factory(target, options)

    return build


JUDGES: dict[str, Callable[[str, ModelOptions], Judge]] = {
    "hf": _checked("causal", CausalLMJudge),
    "rm": _checked("reward", RewardModelJudge),
    "openai": _openai_judge,
    "table": _table_judge,
}
