"""``promedical-bench leaderboard``: serve the Streamlit leaderboard on a results folder.

A thin wrapper around ``streamlit run`` on the app file shipped inside the installed package
(``promedical.leaderboard/app.py``); the results folder reaches the app through ``PROMEDICAL_RESULTS_DIR``.
Needs the ``ui`` extra (``pip install 'promedical-bench[ui]'``).
"""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path

import click

#: Read by the app (``promedical.leaderboard.store.ENV_VAR``; not imported here, to keep the CLI light).
ENV_VAR = "PROMEDICAL_RESULTS_DIR"


def app_path() -> Path:
    """The packaged app file (found through the installed package, not the working directory)."""
    return Path(str(files("promedical.leaderboard") / "app.py"))


def streamlit_command(port: int, host: str) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(app_path()),
            "--server.port", str(port), "--server.address", host, "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
            "--theme.base", "light"]


@click.command("leaderboard")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Folder of runs (the --output-dir of `run`; searched for <run_id>/results.json up to 4 "
                   f"levels deep). Default: ${ENV_VAR}, else ./results.")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True,
              help="Port to serve on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 shares the leaderboard with your network.")
def leaderboard(results_dir: Path | None, port: int, host: str) -> None:
    """Browse, compare and share results in a web page (Streamlit).

    Shows one row per run with judge-, policy- and UltraMedical-track metrics and their 95% CIs, filters,
    the papers' reported figures on request, charts, a per-item drill-down, paired comparisons and
    agreement statistics. Reads only results files; invalid ones are listed, never fatal. Stop it with
    Ctrl-C.
    """
    from promedical.leaderboard.store import resolve_results_dir

    folder = resolve_results_dir(results_dir)
    if not folder.is_dir():
        raise click.BadParameter(f"{folder} is not a folder (write runs there with `promedical-bench run "
                                 f"--output-dir {folder}`)", param_hint="'--results-dir'")
    if find_spec("streamlit") is None:
        raise click.ClickException("the leaderboard needs Streamlit: pip install 'promedical-bench[ui]'")
    command = streamlit_command(port, host)
    click.echo(f"leaderboard on http://{host}:{port} for {folder.resolve()} (Ctrl-C stops it)")
    sys.stdout.flush()
    sys.stderr.flush()
    environment = {**os.environ, ENV_VAR: str(folder.resolve())}
    # Replace this process with Streamlit's, so signals (Ctrl-C, kill) reach the server directly.
    os.execve(sys.executable, command, environment)
