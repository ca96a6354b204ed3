"""The CSI package serves the node side and the controller side: it imports neither, not
even through another stowage module, so that a node plugin never loads the reconcilers.

stowage.agent (the node side) still imports stowage.reconcilers (driving, backend_state)
and is not checked here yet."""

from __future__ import annotations

import ast
from importlib.util import resolve_name
from pathlib import Path

import pytest

import stowage

pytestmark = pytest.mark.unit

ROOT = Path(stowage.__file__).parent
FORBIDDEN = ("stowage.reconcilers", "stowage.agent")


def module_file(name: str) -> Path | None:
    """The source of the stowage module `name`; None for a name that is no module."""
    base = ROOT.joinpath(*name.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(name: str, source: Path) -> set[str]:
    """What the module imports: modules, and for `from X import Y` both X and X.Y."""
    package = name if source.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve_name("." * node.level + (node.module or ""), package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def loaded_with(start: str) -> dict[str, str]:
    """Every stowage module that loading `start` loads, each with the module importing it."""
    importer = {start: ""}
    pending = [start]
    while pending:
        name = pending.pop()
        source = module_file(name)
        if source is None:
            continue
        for imported in imported_names(name, source):
            parts = imported.split(".")
            for end in range(2, len(parts) + 1):  # a module loads its packages first
                module = ".".join(parts[:end])
                if parts[0] == "stowage" and module not in importer:
                    importer[module] = name
                    pending.append(module)
    return importer


def csi_modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "csi").rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(set(names))


def test_the_layer_walk_sees_what_a_module_loads() -> None:
    loaded = loaded_with("stowage.agent.runner")
    assert loaded["stowage.reconcilers.driving"] == "stowage.agent.runner"
    assert "stowage.reconcilers" in loaded


@pytest.mark.parametrize("module", csi_modules())
def test_csi_loads_neither_the_controller_side_nor_the_node_side(module: str) -> None:
    importer = loaded_with(module)
    crossing = {
        name: importer[name]
        for name in importer
        if any(name == side or name.startswith(f"{side}.") for side in FORBIDDEN)
    }
    assert not crossing, f"{module} loads (module: imported by) {crossing}"
