"""Zero-shot embedding judge (spec ``embed:PATH_OR_ID``): a sentence encoder that was never trained on rubric
decisions, used as the honest "untrained base" of a criteria-injected reward model built on the same encoder.

A decision reads the cosine similarity between the criterion's text and the response (mean-pooled, normalised
token embeddings: the all-MiniLM-L6-v2 recipe). Similarity alone has no cut and, for safety criteria, no
direction ("Does not advise aspirin" is closest to a response that advises aspirin), so a logistic fit of
the labels on the similarity — one slope and intercept per criterion type, either sign — is learned on
labelled calibration items (:func:`calibrate_embedding_judge`) and saved in ``promedical_embedding.json``
next to the encoder (:func:`calibrated_encoder`). "met" when the fitted P(met) ≥ 1/2; pairwise prefers the
response with the higher P(met). No other parameter is learned.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from promedical.bench.io import write_text_atomic
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
from promedical.bench.prompts import template_hash
from promedical.bench.schema import CRITERION_TYPES, BenchItem

#: Written next to the encoder by :func:`calibrate_embedding_judge`; read by :class:`EmbeddingJudge`.
EMBEDDING_CALIBRATION_FILE = "promedical_embedding.json"
#: What reaches the encoder: the criterion text and the response, each embedded on its own.
EMBEDDING_SETTINGS = {"inputs": ["criterion text", "response"], "similarity": "cosine of mean-pooled embeddings",
                      "decision": "logistic fit per criterion type on calibration items, P(met) >= 0.5"}
MAX_TOKENS = 256
#: The most embeddings a judge remembers (least recently used first out): a response is embedded once for all
#: its criteria and pairs.
EMBEDDING_MEMO_SIZE = 16384


class EmbeddingJudge:
    """Judge by criterion–response similarity under a sentence encoder, with per-type logistic cuts."""

    kind = "embedding"
    template_hash = template_hash(EMBEDDING_SETTINGS)

    def __init__(self, path_or_id: str, options: ModelOptions = ModelOptions(),
                 fits: dict[str, tuple[float, float]] | None = None):
        """``fits`` (slope, intercept on the similarity, per criterion type) override the saved calibration
        (used while calibrating, before it exists)."""
        self.path_or_id, self.options = path_or_id, options
        self.spec = f"embed:{path_or_id}"
        self.device = resolve_device(options.device)
        self.fits = fits if fits is not None else read_embedding_calibration(path_or_id)
        fitted = ",".join(f"{kind}={a:.6g}/{b:.6g}" for kind, (a, b) in sorted(self.fits.items()))
        self.identity = f"{self.spec}|{model_identity(path_or_id)}|{options.dtype}|fit={fitted}"
        self._vectors: OrderedDict[str, list[float]] = OrderedDict()

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.path_or_id, padding_side="right")

    @cached_property
    def model(self):
        from transformers import AutoModel

        dtype = torch_dtype(self.options.dtype, self.device)
        return load_pretrained(AutoModel, self.path_or_id, dtype=dtype).to(self.device).eval()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length mean-pooled embeddings, one per text (each distinct text embedded once, the last
        :data:`EMBEDDING_MEMO_SIZE` remembered)."""
        import torch

        unique = sorted({t for t in texts if t not in self._vectors}, key=len)

        def forward(chunk: list[str]) -> list[list[float]]:
            encoded = self.tokenizer(chunk, padding=True, truncation=True, max_length=MAX_TOKENS,
                                     return_tensors="pt").to(self.device)
            with torch.inference_mode():
                states = self.model(**encoded).last_hidden_state.float()
            mask = encoded["attention_mask"].unsqueeze(-1).float()
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1).tolist()

        vectors = {t: self._vectors[t] for t in texts if t in self._vectors}
        for text, vector in zip(unique, run_batched(forward, unique, self.options.batch_size), strict=True):
            vectors[text] = self._vectors[text] = vector
            if len(self._vectors) > EMBEDDING_MEMO_SIZE:
                self._vectors.popitem(last=False)
        for text in vectors:
            if text in self._vectors:
                self._vectors.move_to_end(text)
        return [vectors[t] for t in texts]

    def similarities(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Cosine similarity of each (criterion text, response)."""
        vectors = self.embed([text for pair in pairs for text in pair])
        return [sum(a * b for a, b in zip(vectors[2 * i], vectors[2 * i + 1], strict=True)) for i in range(len(pairs))]

    def p_met(self, kind: str, similarity: float) -> float:
        slope, intercept = self.fits[kind]
        return 1.0 / (1.0 + math.exp(-(slope * similarity + intercept)))

    def pointwise(self, queries: Sequence[PointwiseQuery]) -> list[Verdict]:
        similarity = self.similarities([(q.criterion.text, q.response) for q in queries])
        verdicts = []
        for query, value in zip(queries, similarity, strict=True):
            probability = self.p_met(query.criterion.type, value)
            verdicts.append(Verdict("met" if probability >= 0.5 else "not_met", probability, {"similarity": value}))
        return verdicts

    def pairwise(self, queries: Sequence[PairwiseQuery]) -> list[Verdict]:
        similarity = self.similarities([(q.criterion.text, r) for q in queries for r in (q.response_a, q.response_b)])
        verdicts = []
        for index, query in enumerate(queries):
            pa, pb = (self.p_met(query.criterion.type, s) for s in similarity[2 * index:2 * index + 2])
            verdicts.append(Verdict(pair_decision(pa - pb), 0.5 + (pa - pb) / 2,
                                    {"similarity_a": similarity[2 * index], "similarity_b": similarity[2 * index + 1]}))
        return verdicts


def read_embedding_calibration(path_or_id: str) -> dict[str, tuple[float, float]]:
    file = Path(path_or_id) / EMBEDDING_CALIBRATION_FILE
    if not file.exists():
        raise JudgeError(f"{path_or_id}: no {EMBEDDING_CALIBRATION_FILE}; an embedding judge needs its per-type "
                         "cuts fitted on labelled items first (promedical.bench.models.embedding.calibrated_encoder)")
    fits = json.loads(file.read_text(encoding="utf-8"))["fits"]
    return {kind: (float(fits[kind][0]), float(fits[kind][1])) for kind in CRITERION_TYPES}


def calibrate_embedding_judge(judge: EmbeddingJudge, items: Sequence[BenchItem]) -> dict[str, tuple[float, float]]:
    """Per criterion type, the logistic fit of the pointwise labels of ``items`` on the similarity (either sign);
    a type without both labels there gets slope 0 and the log-odds of its majority label (a constant)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from promedical.bench.instances import labelled_instances

    labelled = [i for i in labelled_instances(items) if i.mode == "pointwise"]
    similarity = np.asarray(judge.similarities([(i.criterion.text, i.texts[0]) for i in labelled]))
    met = np.asarray([i.gold == "met" for i in labelled])
    types = np.asarray([i.criterion.type for i in labelled])
    fits: dict[str, tuple[float, float]] = {}
    for kind in CRITERION_TYPES:
        labels = met[types == kind] if len(labelled) else np.asarray([], dtype=bool)
        if 0 < labels.sum() < len(labels):
            fit = LogisticRegression().fit(similarity[types == kind][:, None], labels)
            fits[kind] = (float(fit.coef_[0, 0]), float(fit.intercept_[0]))
        else:
            share = float(labels.mean()) if len(labels) else float(met.mean()) if len(met) else 0.5
            fits[kind] = (0.0, 10.0 if share >= 0.5 else -10.0)
    return fits


def calibrated_encoder(encoder: str | Path, output: str | Path, items: Sequence[BenchItem], source: str,
                       options: ModelOptions = ModelOptions()) -> Path:
    """``encoder``'s files under ``output`` (relative symlinks) with its per-type fits on ``items`` saved there:
    the zero-shot judge ``embed:OUTPUT``."""
    encoder, output = Path(encoder), Path(output)
    output.mkdir(parents=True, exist_ok=True)
    for file in encoder.iterdir():
        target = output / file.name
        if file.name != EMBEDDING_CALIBRATION_FILE and not target.exists():
            target.symlink_to(os.path.relpath(file.resolve(), output.resolve()))
    fits = calibrate_embedding_judge(EmbeddingJudge(str(encoder), options, fits={}), items)
    write_text_atomic(output / EMBEDDING_CALIBRATION_FILE, [json.dumps(
        {"fits": fits, "calibration_data": source, "settings": EMBEDDING_SETTINGS}, indent=2) + "\n"])
    return output
