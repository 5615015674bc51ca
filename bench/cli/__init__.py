"""``promedical-bench`` command line. Thin: parsing and printing only; the work lives in the modules.

One module per command family: :mod:`.data` (validate, data, tiny-model), :mod:`.run` (run, compare),
:mod:`.adjudicate` (adjudicate, agreement), :mod:`.ultramedical`, :mod:`.leaderboard`, :mod:`.train`
(train-rm, train-sft, train-grpo, reproduce), :mod:`.listing` (list); shared option types in :mod:`.options`, console
tables and plurals in :mod:`.console`.

Exit codes: 0 success, 2 bad input or usage, 1 anything else. Errors are one line; ``--debug`` adds the
traceback. Refusals are :class:`~promedical.bench.errors.PromedicalError`; :func:`main` is the one place
that maps them (and click's usage errors) to messages and exit codes.
"""

from __future__ import annotations

import logging
import sys
import traceback
from importlib.metadata import version

import click

from promedical.bench.cli import adjudicate, data, leaderboard, listing, run, train, ultramedical
from promedical.bench.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, PromedicalError

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILURE", "EXIT_OK", "cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version("promedical-bench"), "--version", prog_name="promedical-bench")
@click.option("--debug", is_flag=True, help="Show the full traceback when a command fails.")
def cli(debug: bool) -> None:
    """Evaluate and align medical LLMs against fine-grained clinical rubrics with a safety veto
    (ProMedical, Geng et al., ACL 2026).

    Start with `promedical-bench validate sample` and `promedical-bench data stats sample` to see the
    bundled sample bench.
    """


for _command in (
    data.validate, data.data, data.tiny_model,
    run.run_command, run.compare_command,
    adjudicate.adjudicate, adjudicate.agreement_command,
    train.train_rm, train.train_sft_command, train.train_grpo_command, train.reproduce_command,
    leaderboard.leaderboard,
    ultramedical.ultramedical_command,
    listing.list_command,
):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the CLI and map failures to one-line errors and exit codes."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    _quiet_libraries()
    try:
        cli.main(args=args, prog_name="promedical-bench", standalone_mode=False)
        return EXIT_OK
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return EXIT_FAILURE
    except click.ClickException as error:
        usage = isinstance(error, click.UsageError)
        _report([f"{error.format_message()} (see --help)" if usage else error.format_message()], debug)
        return EXIT_BAD_INPUT if isinstance(error, click.UsageError | click.BadParameter) else error.exit_code
    except PromedicalError as error:  # every refusal: its lines, and its class's exit code
        _report(error.report(), debug)
        return error.exit_code
    except Exception as error:  # the one place that turns unexpected failures into one readable line
        _report([f"{type(error).__name__}: {error}"], debug)
        return EXIT_FAILURE


def _quiet_libraries() -> None:
    """Keep library chatter (weight-loading bars, advisory warnings) off the terminal; ours stays."""
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("transformers", "datasets", "huggingface_hub", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _report(lines: list[str], debug: bool) -> None:
    if debug:
        traceback.print_exc()
    for line in lines:
        click.echo(f"error: {line}", err=True)

