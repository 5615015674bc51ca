"""Writing files atomically (temp file + rename), and bench items as JSONL."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from promedical.bench.schema import BenchItem


def replace_atomically(path: str | Path, save: Callable[[str], None]) -> None:
    """Have ``save(temporary_path)`` write a file, then move it onto ``path``: readers see the old file or the
    complete new one, never a part. Missing parent folders are created (every command writes through here, so
    ``--output new/dir/file`` works everywhere); if anything fails, nothing is left behind, not even those
    folders. The file gets the usual permissions (0666 minus umask)."""
    target = Path(path)
    created = [folder for folder in target.parents if not folder.exists()]  # deepest first
    temporary: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp",
                                             delete=False)
        handle.close()
        temporary = handle.name
        save(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    except BaseException:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        for folder in created:
            with contextlib.suppress(OSError):  # another writer may have put something there meanwhile
                folder.rmdir()
        raise


def write_text_atomic(path: str | Path, chunks: Iterable[str]) -> None:
    """Write ``chunks`` of text to ``path`` atomically (see :func:`replace_atomically`)."""
    def save(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(chunk)

    replace_atomically(path, save)


def dump_item(item: BenchItem) -> str:
    """One compact JSON line for ``item``; fields left at their defaults are omitted."""
    return json.dumps(item.model_dump(mode="json", exclude_defaults=True), ensure_ascii=False)


def write_jsonl_atomic(path: str | Path, items: Iterable[BenchItem]) -> int:
    """Write bench items as JSONL, atomically. Returns the number of items written."""
    count = 0

    def lines() -> Iterable[str]:
        nonlocal count
        for item in items:
            count += 1
            yield dump_item(item) + "\n"

    write_text_atomic(path, lines())
    return count
