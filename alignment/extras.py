"""The optional extras of paper-scale training (DeepSpeed, vLLM): whether they import, and a one-line refusal
before any model is loaded when a run needs one that does not."""

from __future__ import annotations

import importlib

#: Each extra's module and the pip extra that installs it.
EXTRAS = {"deepspeed": "train,deepspeed", "vllm": "vllm"}


def missing_extra(module: str) -> str | None:
    """Why ``module`` (``deepspeed`` or ``vllm``) cannot be used here and how to install it; None when it imports."""
    try:
        importlib.import_module(module)
    except ImportError as error:
        return f"{module} does not import ({error}): pip install -e '.[{EXTRAS[module]}]' on the GPU machine"
    return None


def require_training_extras(use_vllm: bool = False) -> None:
    """Refuse in one line, before any model is loaded, a training run whose launch or recipe needs an extra that
    does not import: DeepSpeed under an accelerate DeepSpeed config, vLLM for ``use_vllm: true``."""
    import os

    from promedical.bench.errors import UnavailableError

    needed = (["deepspeed"] if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true" else []) + (
        ["vllm"] if use_vllm else [])
    for module in needed:
        if (problem := missing_extra(module)) is not None:
            raise UnavailableError(problem)
