"""Options and parameter types shared by the commands (``--output-dir``, ``--device``, ``--dtype``,
``--batch-size``)."""

from __future__ import annotations

from pathlib import Path

import click

#: How ``--model`` tells a local path from a Hugging Face id (promedical.bench.hub.looks_like_path), for its help.
PATH_RULE = ("A value that starts with '.', '/' or '~', has more than one '/', ends in a file suffix, or whose "
             "first part is an existing folder (models/x beside models/tiny) is a local path: when it does not "
             "exist the command fails at once, without asking the Hub. With HF_HUB_OFFLINE set, a Hub id must be "
             "in the local cache.")

#: ``--output-dir`` of the commands that write runs (``run``, ``ultramedical``).
runs_output_dir = click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
                               default=Path("results"), show_default=True,
                               help="Runs are written to OUTPUT_DIR/<run_id>/.")
device = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
dtype = click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
                     show_default=True, help="auto: bfloat16 on CUDA, float32 on CPU.")


class BatchSize(click.ParamType):
    """A positive integer, or ``auto`` (converted to ``None``: the command picks the batch size itself)."""

    name = "INTEGER|auto"

    def convert(self, value, param, ctx):  # noqa: ANN001 - click's signature
        if value in (None, "auto") or isinstance(value, int):
            return None if value == "auto" else value
        if str(value).isdigit() and int(value) > 0:
            return int(value)
        self.fail(f"{value!r} is neither a positive integer nor 'auto'", param, ctx)
