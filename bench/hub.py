"""Local paths versus Hugging Face Hub ids, for every argument that takes either (``--model``, a judge's
``PATH_OR_ID``, a bench ``PATH``).

A value that looks like a local path is never sent to the Hub, so a mistyped path fails at once as a missing
folder instead of as a Hub download; a Hub id that cannot be fetched (``HF_HUB_OFFLINE`` set and the id not
in the local cache, or a Hub that cannot be reached) fails in one line before the Hub client's retries
(five, about half a minute) begin. The Hub libraries are imported only when a Hub id is checked.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from promedical.bench.errors import UnavailableError

#: Endings that name a file, never a Hub repository.
FILE_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".txt", ".yaml", ".yml", ".safetensors", ".bin", ".pt",
                 ".gguf")
#: How long the one reachability request may take.
PROBE_TIMEOUT_S = 5.0


def looks_like_path(value: str) -> bool:
    """Whether ``value`` names a local path rather than a Hub id (``NAME`` or ``ORG/NAME``): it starts with
    ``.``, ``/`` or ``~``; it has a backslash or more than one ``/``; it ends in a file suffix
    (:data:`FILE_SUFFIXES`); or its first part is an existing local folder (``models/nope`` beside
    ``models/tiny``)."""
    if value.startswith((".", "/", "~")) or "\\" in value or value.count("/") > 1:
        return True
    if value.lower().endswith(FILE_SUFFIXES):
        return True
    first, slash, _ = value.partition("/")
    return bool(slash) and Path(first).is_dir()


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) forbids the Hub libraries any network access."""
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE


def model_in_cache(repo_id: str) -> bool:
    """Whether the local Hub cache holds ``repo_id``'s config (so that it loads without the network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def check_offline_model(repo_id: str) -> None:
    """With ``HF_HUB_OFFLINE`` set, refuse a model id that is not in the local cache (nothing would load it)."""
    if not model_in_cache(repo_id):
        raise UnavailableError(f"HF_HUB_OFFLINE is set and {repo_id} is not in the local cache")


def check_reachable(repo_id: str) -> None:
    """Refuse to fetch ``repo_id`` from a Hub that does not answer one request (no network, DNS failure, a
    refused connection): one line instead of the Hub client's retries. Any HTTP answer counts as reachable."""
    problem = _unreachable()
    if problem is not None:
        from huggingface_hub import constants

        raise UnavailableError(f"cannot reach {constants.ENDPOINT} to fetch {repo_id} ({problem}); give a local "
                               "path, or set HF_HUB_OFFLINE=1 to use the local cache")


@cache
def _unreachable() -> str | None:
    """Why the Hub endpoint cannot be reached, or None when it answers (asked once per process)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=PROBE_TIMEOUT_S)
    except Exception as error:  # the HTTP client's transport errors (its own classes, not OSError)
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return None
