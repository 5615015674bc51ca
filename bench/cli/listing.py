"""``promedical-bench list recipes|benches|judges``: what ships with the toolkit, and the forms a judge takes."""

from __future__ import annotations

from pathlib import Path

import click

from promedical.bench.cli.console import table


@click.command("list")
@click.argument("what", type=click.Choice(["recipes", "benches", "judges"]))
def list_command(what: str) -> None:
    """List the shipped training recipes (for --recipe), the bundled benches (for --bench and PATH) with their
    item counts, or the judge spec forms (for --judge, and --model on the judge track)."""
    click.echo({"recipes": recipes_table, "benches": benches_table, "judges": judges_table}[what]())


def recipes_table() -> str:
    """Each shipped recipe: its name, its trainer (``kind``) and the first sentence of its opening comment."""
    import yaml

    from promedical.alignment.config import shipped_recipes

    rows = [[name, yaml.safe_load(path.read_text(encoding="utf-8"))["kind"], recipe_summary(path)]
            for name, path in shipped_recipes().items()]
    return table(["recipe", "kind", "what it trains"], rows)


def recipe_summary(path: Path) -> str:
    """The first sentence of a recipe's opening comment block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    comment: list[str] = []
    for line in lines:
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    text = " ".join(comment)
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def benches_table() -> str:
    """The bundled benches with their item counts, the synthetic world, and UltraMedical's bundled questions."""
    from promedical.bench.data.synthetic import SPLITS
    from promedical.bench.datasets import BUNDLED_ABOUT, load_bench
    from promedical.bench.ultramedical.suite import BUNDLED_DIR, COLUMNS

    rows = [[name, str(len(load_bench(name))), about] for name, about in BUNDLED_ABOUT.items()]
    rows.append(["synthetic:SPLIT:N", "N", f"the synthetic clinical world, SPLIT {'|'.join(SPLITS)}: write it with "
                 "`data synth --split SPLIT --instructions N`; recipes read the spec itself"])
    questions = sum(len((BUNDLED_DIR / f"{c.name}.jsonl").read_text(encoding="utf-8").splitlines()) for c in COLUMNS)
    rows.append(["ultramedical bundled", str(questions), f"multiple-choice questions for `ultramedical --data-dir "
                 f"bundled` ({len(COLUMNS)} tasks; a demo, not the benchmarks)"])
    return table(["bench", "items", "what it is"], rows, right={1})


def judges_table() -> str:
    """Every form a judge spec takes, with its backend."""
    from promedical.bench.models.registry import JUDGE_FORMS

    return table(["judge", "what judges"], [[form, about] for form, about in JUDGE_FORMS.items()])
