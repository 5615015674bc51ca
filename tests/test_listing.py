"""`promedical-bench list recipes|benches|judges`: what ships, read from where it ships."""

import re
from importlib import resources
from pathlib import Path

import yaml

from promedical.alignment.config import load_recipe
from promedical.bench.cli import main
from promedical.bench.datasets import BUNDLED, load_bench
from promedical.bench.models.registry import JUDGES, WORLD_SPEC
from promedical.bench.ultramedical import BUNDLED_DIR

RECIPES = Path(str(resources.files("promedical.alignment") / "recipes"))


def _rows(capsys, what: str) -> dict[str, list[str]]:
    """The listed table: first cell → the other cells (split on runs of two or more spaces)."""
    assert main(["list", what]) == 0
    lines = capsys.readouterr().out.splitlines()
    return {cells[0]: cells[1:] for cells in (re.split(r" {2,}", line.strip()) for line in lines[1:])}


def test_list_recipes_shows_every_recipe_with_its_kind_and_not_the_accelerate_config(capsys):
    rows = _rows(capsys, "recipes")
    recipes = sorted(p.stem for p in RECIPES.glob("*.yaml") if "kind" in yaml.safe_load(p.read_text()))
    assert sorted(rows) == recipes and len(recipes) == len(list(RECIPES.glob("*.yaml"))) - 1
    assert "accelerate-zero3" not in rows
    for name, (kind, summary) in rows.items():
        assert kind == load_recipe(name).kind
        assert summary.endswith(".") and summary in " ".join(
            line.lstrip("# ") for line in (RECIPES / f"{name}.yaml").read_text().splitlines() if line.startswith("#"))
    assert rows["smoke-rm"][1].startswith("CPU smoke recipe: criteria-injected reward model")


def test_a_wrong_recipe_name_lists_only_recipes(capsys):
    assert main(["train-rm", "--recipe", "no-such-recipe"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("error: no-such-recipe: no such recipe file or shipped recipe (shipped: demo-rm, "
                           "qwen3-8b-grpo, qwen3-8b-rm, smoke-grpo, smoke-grpo-rm, smoke-rm, smoke-sft)")


def test_list_benches_counts_the_items_of_each_bundled_bench(capsys):
    rows = _rows(capsys, "benches")
    for name in BUNDLED:
        assert rows[name][0] == str(len(load_bench(name)))
    assert rows["ultramedical bundled"][0] == str(sum(len(f.read_text().splitlines())
                                                      for f in BUNDLED_DIR.glob("*.jsonl")))
    assert "synthetic:SPLIT:N" in rows


def test_list_judges_shows_every_spec_form(capsys):
    rows = _rows(capsys, "judges")
    assert {form.partition(":")[0] for form in rows if ":" in form} == set(JUDGES)
    assert WORLD_SPEC in rows and "PATH_OR_ID" in rows and all(about for (about,) in rows.values())
