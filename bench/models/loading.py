"""Loading shared by the local model backends: device and dtype, a checkpoint's architecture and kind, its
identity for cache keys, its tokenizer, and batched forward passes that back off on out-of-memory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from promedical.bench.hub import check_offline_model, check_reachable, hub_offline, looks_like_path
from promedical.bench.judging import JudgeError

log = logging.getLogger(__name__)


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


def torch_dtype(dtype: str, device: str):
    """The torch dtype for a ``--dtype`` value: ``auto`` is bfloat16 on CUDA, float32 elsewhere."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def check_model_source(path_or_id: str) -> None:
    """Refuse at once a model that cannot be loaded from where it is named: a path-like value
    (:func:`~promedical.bench.hub.looks_like_path`) that does not exist is a missing folder, never a Hub id; a
    Hub id must be in the local cache when ``HF_HUB_OFFLINE`` is set, and its Hub must answer otherwise."""
    if Path(path_or_id).exists():
        return
    if looks_like_path(path_or_id):
        raise JudgeError("no such folder", path=path_or_id)
    if hub_offline():
        check_offline_model(path_or_id)
    else:
        check_reachable(path_or_id)


def model_architecture(path_or_id: str) -> str:
    """The architecture named by a checkpoint's config (a local folder or a Hub id)."""
    check_model_source(path_or_id)  # before transformers is imported: a missing folder fails at once
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


def load_tokenizer(path_or_id: str, padding_side: str = "left"):
    """A checkpoint's tokenizer, padded on ``padding_side`` (left for generation and scoring the next token,
    right for training a reward model), with the EOS token as padding when it names none."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path_or_id)
    tokenizer.padding_side = padding_side
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
