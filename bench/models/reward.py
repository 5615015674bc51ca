"""Reward-model judge (spec ``rm:PATH_OR_ID``): a criteria-injected reward model r(x, c, y)
(``*ForSequenceClassification``, 1 label) on the shared pointwise rendering; "met" when sigmoid(r) >= the
checkpoint's calibrated threshold for the criterion's type; pairwise prefers the higher r."""

from __future__ import annotations

import json
import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from promedical.bench.judging import JudgeError, PairwiseQuery, PointwiseQuery, Verdict, pair_decision
from promedical.bench.models.loading import (
    ModelOptions,
    load_pretrained,
    load_tokenizer,
    model_identity,
    resolve_device,
    run_batched,
    torch_dtype,
)
from promedical.bench.prompts import TEMPLATE_HASH, render_pointwise
from promedical.bench.schema import CRITERION_TYPES

log = logging.getLogger(__name__)

#: Written by the alignment code next to a trained reward model.
RM_CALIBRATION_FILE = "promedical_rm.json"
#: The most rewards a judge remembers (least recently used first out): a GRPO run asks for new completions
#: at every step, so an unbounded memo would grow for the whole run.
REWARD_MEMO_SIZE = 65536


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
        #: Rewards by rendered input, least recently used first; at most ``memo_size`` of them.
        self._memory: OrderedDict[str, float] = OrderedDict()
        self.memo_size = REWARD_MEMO_SIZE

    @cached_property
    def tokenizer(self):
        """Right padding: encoder classifiers (BERT-style) pool the first token, decoder ones find the last
        non-padding token, so right padding is correct for both."""
        tokenizer = load_tokenizer(self.path_or_id)
        tokenizer.padding_side = "right"
        return tokenizer

    @cached_property
    def model(self):
        from transformers import AutoModelForSequenceClassification

        model = load_pretrained(AutoModelForSequenceClassification, self.path_or_id,
                                dtype=torch_dtype(self.options.dtype, self.device))
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        return model.to(self.device).eval()

    def rewards(self, texts: Sequence[str]) -> list[float]:
        """r(x, c, y) for rendered pointwise inputs, tokenised once and batched by token count (least padding).
        The last ``memo_size`` rewards are remembered per input (least recently used first out), so pairwise
        verdicts reuse the pointwise ones instead of recomputing them."""
        import torch

        known: dict[str, float] = {}
        for text in texts:
            if text in self._memory:
                self._memory.move_to_end(text)
                known[text] = self._memory[text]
        limit = reward_max_length(self.tokenizer, self.model.config)
        todo = sorted(({t: reward_input_ids(self.tokenizer, t, limit) for t in texts if t not in known}
                       ).items(), key=lambda entry: len(entry[1]))

        def forward(chunk: list[tuple[str, list[int]]]) -> list[float]:
            encoded = self.tokenizer.pad({"input_ids": [ids for _, ids in chunk]}, return_tensors="pt",
                                         padding=True).to(self.device)
            with torch.inference_mode():
                return self.model(**encoded).logits[:, 0].float().tolist()

        rewards = run_batched(forward, todo, self.options.batch_size)
        for (text, _), reward in zip(todo, rewards, strict=True):
            known[text] = self._memory[text] = reward
            if len(self._memory) > self.memo_size:
                self._memory.popitem(last=False)
        return [known[t] for t in texts]

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
            verdicts.append(Verdict(pair_decision(ra - rb), score, {"reward_a": ra, "reward_b": rb}))
        return verdicts
