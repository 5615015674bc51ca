"""Project metadata: package layout, citation, licence."""

import json
from importlib import import_module
from pathlib import Path

import jsonschema
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_citation_is_valid_cff_1_2_0_and_cites_the_paper():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    schema = json.loads((ROOT / "tests" / "data" / "cff" / "schema-1.2.0.json").read_text())
    jsonschema.Draft7Validator(schema).validate(citation)
    paper = citation["preferred-citation"]
    assert len(paper["authors"]) == 8 and paper["authors"][0] == {"family-names": "Geng", "given-names": "He"}
    assert any(i["value"] == "arXiv:2604.08326" for i in paper["identifiers"])
    assert paper["year"] == 2026 and "Association for Computational Linguistics" in paper["collection-title"]


def test_namespace_maps_onto_top_level_folders():
    for name, folder in [("promedical.bench", "bench"), ("promedical.alignment", "alignment"),
                         ("promedical.leaderboard", "leaderboard")]:
        assert Path(import_module(name).__file__).parent.resolve() == (ROOT / folder).resolve()


def test_distribution_metadata():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "promedical-bench"
    assert project["scripts"] == {"promedical-bench": "promedical.bench.cli:main"}
    assert {"train", "ui", "dev", "all"} <= set(project["optional-dependencies"])
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_every_folder_is_a_listed_package_and_every_data_file_ships():
    """What setuptools warns about on install ("Package would be ignored"): a folder of the package trees
    missing from ``packages``; and a data file no ``package-data`` glob picks up would be left out."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {folder: name for name, folder in setuptools["package-dir"].items()}
    folders, unshipped = {}, []
    for folder, name in roots.items():
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.name.startswith("."):
                continue
            package = ".".join([name, *path.parent.relative_to(ROOT / folder).parts])
            folders[package] = path.parent
            globs = setuptools["package-data"].get(package, [])
            if path.suffix != ".py" and not any(path.match(glob) for glob in globs):
                unshipped.append(str(path.relative_to(ROOT)))
    assert sorted(folders) == sorted(setuptools["packages"])
    assert unshipped == []
