"""The layers' directions, as loading a module would follow them (through any other stowage
module): the node side (the mount helper `stowage.agent`, the NAS servers `stowage.nas`, the
CSI Node service) never loads the controller side (`stowage.reconcilers`, the CSI Controller
service), nor the controller side the node side; the rest of the CSI package, which both serve,
loads neither, nor do the protocol clients `stowage.clients`. What both sides ask of a backend
is in `stowage.backends` and the drivers."""

from __future__ import annotations

import ast
from importlib.util import resolve_name
from pathlib import Path

import pytest

import stowage

pytestmark = pytest.mark.unit

ROOT = Path(stowage.__file__).parent
CONTROLLER_SIDE = ("stowage.reconcilers", "stowage.csi.controller", "stowage.csi.remote_data")
NODE_SIDE = (
    "stowage.agent",
    "stowage.nas",
    "stowage.csi.node",
    "stowage.csi.node_data",
    "stowage.csi.node_capacity",
    "stowage.csi.backend_mounts",
    "stowage.csi.checkouts",
)
# Serves either side, as its settings say (it loads each side's service when asked for it).
BOTH_SIDES = "stowage.csi.plugin"


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


def modules_of(name: str) -> list[str]:
    """The module `name`, or every module of the package `name`."""
    base = ROOT.joinpath(*name.split(".")[1:])
    if base.with_suffix(".py").is_file():
        return [name]
    names = []
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(set(names))


def crossings(module: str, forbidden: tuple[str, ...]) -> dict[str, str]:
    """The forbidden modules that loading `module` loads (module: imported by)."""
    importer = loaded_with(module)
    return {
        name: importer[name]
        for name in importer
        if any(name == side or name.startswith(f"{side}.") for side in forbidden)
    }


def test_the_layer_walk_sees_what_a_module_loads() -> None:
    loaded = loaded_with("stowage.reconcilers.nasshares")
    assert loaded["stowage.reconcilers.driving"] == "stowage.reconcilers.nasshares"
    assert "stowage.drivers.base" in loaded
    assert "stowage.nas.proxy" not in loaded


def modules_of_sides(sides: tuple[str, ...]) -> list[str]:
    return [module for side in sides for module in modules_of(side)]


def on_a_side(module: str) -> bool:
    return any(
        module == side or module.startswith(f"{side}.")
        for side in (*CONTROLLER_SIDE, *NODE_SIDE, BOTH_SIDES)
    )


@pytest.mark.parametrize("module", modules_of_sides(NODE_SIDE))
def test_the_node_side_never_loads_the_controller_side(module: str) -> None:
    assert not crossings(module, CONTROLLER_SIDE)


@pytest.mark.parametrize("module", modules_of_sides(CONTROLLER_SIDE))
def test_the_controller_side_never_loads_the_node_side(module: str) -> None:
    assert not crossings(module, NODE_SIDE)


SHARED = [m for m in modules_of("stowage.csi") if not on_a_side(m)] + modules_of("stowage.clients")


@pytest.mark.parametrize("module", SHARED)
def test_the_rest_of_csi_and_the_protocol_clients_load_neither_side(module: str) -> None:
    assert not crossings(module, (*CONTROLLER_SIDE, *NODE_SIDE))
