"""The import graph shows the architecture: shell (cli) → orchestrator (runner) → stages → backends.

Every ``promedical.*`` import of every module under bench/, alignment/ and leaderboard/ counts, the lazy
ones inside functions included: there is no cycle, nothing below the shell imports it, and only the shell
and the reproduction (which runs whole evaluations) import the orchestrator.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"bench": "promedical.bench", "alignment": "promedical.alignment", "leaderboard": "promedical.leaderboard"}
SHELL = "promedical.bench.cli"
ORCHESTRATOR = "promedical.bench.runner"
MAY_RUN = (SHELL, "promedical.alignment.reproduce")


def _modules() -> dict[str, Path]:
    modules = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours that importing ``name`` loads (its longest known prefix)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> set[str]:
    """Our modules that ``module`` imports, anywhere in its body."""
    found = set()
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name) if name.startswith("promedical.") else None
            if target and target != module:
                found.add(target)
    return found


GRAPH = {module: imports(module) for module in MODULES}


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_graph_sees_the_modules():
    assert {SHELL, ORCHESTRATOR, "promedical.bench.metrics", "promedical.alignment.reward"} <= set(MODULES)
    assert ORCHESTRATOR in GRAPH["promedical.alignment.reproduce"]


def test_no_import_cycle():
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    if not _in(module, SHELL):
        assert not any(_in(target, SHELL) for target in GRAPH[module]), f"{module} imports the command line"
    if not any(_in(module, allowed) for allowed in MAY_RUN):
        assert ORCHESTRATOR not in GRAPH[module], f"{module} imports the runner"
