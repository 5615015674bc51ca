"""Click parameter types shared by the commands (``--batch-size``)."""

from __future__ import annotations

import click


class BatchSize(click.ParamType):
    """A positive integer, or ``auto`` (converted to ``None``: the command picks the batch size itself)."""

    name = "INTEGER|auto"

    def convert(self, value, param, ctx):  # noqa: ANN001 - click's signature
        if value in (None, "auto") or isinstance(value, int):
            return None if value == "auto" else value
        if str(value).isdigit() and int(value) > 0:
            return int(value)
        self.fail(f"{value!r} is neither a positive integer nor 'auto'", param, ctx)
