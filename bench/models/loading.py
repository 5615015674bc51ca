"""Loading shared by the local model backends: device and dtype, a checkpoint's architecture and kind, its
identity for cache keys, its tokenizer, whole-weight loading for inference, and batched forward passes that
back off on out-of-memory."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
    """``auto``: CUDA when available, else CPU. Plain ``cuda`` in a process started by ``accelerate launch`` or
    ``torchrun`` is that process's own GPU (``LOCAL_RANK``), so eight processes do not all load onto GPU 0."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise JudgeError("--device cuda was asked for, but no CUDA device is available")
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
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


@contextmanager
def whole_weights() -> Iterator[None]:
    """Load models with all their weights in this process, even inside a DeepSpeed ZeRO-3 run.

    Building a TRL/transformers trainer config under a ZeRO-3 accelerate config makes every later
    ``from_pretrained`` partition the weights across processes (``deepspeed.zero.Init``); a judge or reward
    model used for inference next to training (GRPO's reward, calibration after reward-model training) would
    then hold empty shards. The trainer's ZeRO-3 setting is restored on exit."""
    from transformers.integrations import deepspeed

    reference = deepspeed._hf_deepspeed_config_weak_ref  # transformers keeps the active config only here
    active = reference() if reference is not None else None
    deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if active is not None:
            deepspeed.set_hf_deepspeed_config(active)


def load_pretrained(auto_class: Any, path_or_id: str, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained(path_or_id, **kwargs)`` with whole weights (:func:`whole_weights`): how
    every inference backend loads its model."""
    with whole_weights():
        return auto_class.from_pretrained(path_or_id, **kwargs)


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
