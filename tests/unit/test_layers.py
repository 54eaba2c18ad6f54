"""Imports point down: admin → views → forms → services → selectors → adapters → rules → models → conf."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "taskops"

# Every module of the app, by layer, highest first. A module may import its own layer and the
# layers below it; a new module must be placed here (the test says so).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("admin", ("taskops.admin",)),
    ("urls", ("taskops.urls",)),
    ("web", ("taskops.views", "taskops.templatetags", "taskops.middleware", "taskops.web")),
    ("forms", ("taskops.forms", "taskops.schedule_forms")),
    ("services", ("taskops.services", "taskops.tasks", "taskops.worker_hooks", "taskops.sampler",
                  "taskops.management")),
    ("selectors", ("taskops.selectors", "taskops.paginators", "taskops.charts")),
    ("adapters", ("taskops.control", "taskops.broker", "taskops.publish", "taskops.connection",
                  "taskops.cache", "taskops.capture", "taskops.beat_dispatch")),
    ("rules", ("taskops.permissions", "taskops.roles", "taskops.masking", "taskops.storable",
               "taskops.vocabulary", "taskops.schedules", "taskops.spreadsheets",
               "taskops.bounded_files", "taskops.client_ip", "taskops.db_timeout",
               "taskops.error_reports", "taskops.checks", "taskops.liveness")),
    ("models", ("taskops.models", "taskops.migrations")),
    ("conf", ("taskops.conf", "taskops")),
]
# The app's ready() connects signal receivers of every layer: the one start-up order that
# needs imports inside a function.
STARTUP = {"taskops.apps"}


def _rank(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for rank, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                    best is None or len(prefix) > best[1]):
                best = (rank, len(prefix))
    return best[0] if best else None


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported taskops module, inside a function) for every import in the file."""
    tree = ast.parse(path.read_text())
    in_function = {id(node) for function in ast.walk(tree)
                   if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for node in ast.walk(function)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "taskops":
                targets = [f"taskops.{alias.name}" for alias in node.names]
            elif node.module.startswith("taskops."):
                targets = [node.module]
            else:
                continue
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names if alias.name.startswith("taskops")]
        else:
            continue
        found += [(target, id(node) in in_function) for target in targets]
    return found


def test_every_module_has_a_layer():
    unplaced = [name for name in _modules() if _rank(name) is None and name not in STARTUP]
    assert not unplaced, f"place these modules in LAYERS: {unplaced}"


@pytest.mark.parametrize("module", sorted(set(_modules()) - STARTUP))
def test_imports_point_down_and_none_hides_inside_a_function(module):
    path = _modules()[module]
    own = _rank(module)
    upward = [target for target, _inside in _imports(path)
              if (rank := _rank(target)) is not None and rank < own]
    hidden = [target for target, inside in _imports(path) if inside]

    assert not upward, f"{module} ({LAYERS[own][0]}) imports upward: {upward}"
    assert not hidden, f"{module} imports inside a function (only a start-up order may): {hidden}"

