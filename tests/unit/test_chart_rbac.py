"""The operator's RBAC is exactly what its code uses: derived from the source, compared both ways.

The code reaches the API through `stowage.kube.client.Kube` with the resource constants of
`stowage.kube.resources`, and through kopf handlers; both are found in the syntax tree of
operator/stowage, so a new call without its rule, or a rule no code needs, fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from stowage.api.nasshare import NASShareSpec
from stowage.kube import resources
from stowage.kube.resources import Resource
from stowage.objects import nas
from stowage.objects.nas import ShareRef
from stowage_e2e.install import REPO_DIR, of_kind, render

pytestmark = pytest.mark.unit

Permission = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)

STOWAGE_GROUP = "stowage.io"
SHARE_SPEC = {
    "backend": "b",
    "size": "1Gi",
    "protocols": ["nfs"],
    "nfs": {"clients": [{"cidr": "10.0.0.0/8"}]},
}
PACKAGE_DIR = REPO_DIR / "operator" / "stowage"
RESOURCES: dict[str, Resource] = {
    name: value for name, value in vars(resources).items() if isinstance(value, Resource)
}
VERBS_OF_CALL: dict[str, tuple[str, ...]] = {
    "get": ("get",),
    "list": ("list",),
    "create": ("create",),
    # Server-side apply creates the object when it is missing.
    "apply": ("patch", "create"),
    "merge_patch": ("patch",),
    "delete": ("delete",),
    "watch": ("watch",),
    # stowage.reconcilers.applying: read, then server-side apply if drifted, or create.
    "apply_drifted": ("get", "patch", "create"),
    "create_missing": ("get", "create"),
}
# kopf handlers that only observe; the others store progress and finalizers on the object.
OBSERVING_HANDLERS = {"event", "index"}
FRAMEWORK: set[Permission] = {
    # kopf watches CRDs to notice served resources appearing and going.
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    # kopf posts Events about its handlers.
    ("", "events", "create"),
}


# Three ServiceAccounts: the mount helper's (`stowage.agent` and the CSI node plugin), the NAS
# servers' (`stowage.nas`, a Role the operator makes per share), and the operator's (the rest).
HELPER = "helper"
NAS_SERVER = "nas-server"
OPERATOR = "operator"
COMPONENT_PATHS = {
    HELPER: (
        PACKAGE_DIR / "agent",
        PACKAGE_DIR / "csi" / "node.py",
        PACKAGE_DIR / "csi" / "node_data.py",
        PACKAGE_DIR / "csi" / "node_capacity.py",
        PACKAGE_DIR / "csi" / "backend_mounts.py",
        PACKAGE_DIR / "csi" / "checkouts.py",
    ),
    NAS_SERVER: (PACKAGE_DIR / "nas",),
}


def component_of(path: Path) -> str:
    for component, paths in COMPONENT_PATHS.items():
        if any(path.is_relative_to(inside) for inside in paths):
            return component
    return OPERATOR


def syntax_trees(component: str) -> Iterator[ast.Module]:
    """The modules of a component: HELPER, NAS_SERVER, or OPERATOR for all the others."""
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if component_of(path) == component:
            yield ast.parse(path.read_text(), filename=str(path))


def string_value(node: ast.expr | None) -> str:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""


def called_verbs(call: ast.Call) -> Iterator[tuple[str, list[ast.expr]]]:
    """`kube.create(PVS, body)` and `runtime.call(kube.create, PVS, body)`: verb and its args."""
    if isinstance(call.func, ast.Attribute) and call.func.attr in VERBS_OF_CALL:
        yield call.func.attr, call.args
    if isinstance(call.func, ast.Name) and call.func.id in VERBS_OF_CALL:
        yield call.func.id, call.args
    for position, arg in enumerate(call.args):
        if isinstance(arg, ast.Attribute) and arg.attr in VERBS_OF_CALL:
            yield arg.attr, call.args[position + 1 :]


def client_permissions(tree: ast.Module) -> Iterator[Permission]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id == "post_event":
            yield ("", "events", "create")  # stowage.kube.events: one Event, created
        for verb, args in called_verbs(node):
            # The resource is the first argument that names one (after a runtime, say).
            first = next((a for a in args if isinstance(a, ast.Name) and a.id in RESOURCES), None)
            if first is None:
                continue
            resource = RESOURCES[first.id]
            subresource = next(
                (string_value(k.value) for k in node.keywords if k.arg == "subresource"), ""
            )
            name = f"{resource.plural}/{subresource}" if subresource else resource.plural
            for api_verb in VERBS_OF_CALL[verb]:
                yield (resource.group, name, api_verb)


def index_permissions(tree: ast.Module) -> Iterator[Permission]:
    """`index(NODES)(nodes)`: an in-memory index is a kopf watch of the resource."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        first = node.args[0] if node.args else None
        if node.func.id == "index" and isinstance(first, ast.Name) and first.id in RESOURCES:
            resource = RESOURCES[first.id]
            yield (resource.group, resource.plural, "list")
            yield (resource.group, resource.plural, "watch")


def kopf_handler_kind(decorator: ast.expr) -> str:
    """`event` for `@kopf.on.event(...)`, `timer` for `@kopf.timer(...)`; '' otherwise."""
    if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)):
        return ""
    owner = decorator.func.value
    while isinstance(owner, ast.Attribute):
        owner = owner.value
    return decorator.func.attr if isinstance(owner, ast.Name) and owner.id == "kopf" else ""


# kopf handlers of the operator itself, not of a resource.
OPERATOR_HANDLERS = {"login", "startup", "cleanup", "probe"}


def local_tuples(tree: ast.Module) -> dict[str, list[ast.expr]]:
    """`selector = (A.api_version, A.plural)`: the names that decorators unpack with `*`."""
    return {
        node.targets[0].id: list(node.value.elts)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Tuple)
    }


def handled_resource(decorator: ast.Call, tuples: dict[str, list[ast.expr]]) -> Resource:
    arguments: list[ast.expr] = []
    for arg in decorator.args:
        if isinstance(arg, ast.Starred) and isinstance(arg.value, ast.Name):
            arguments += tuples.get(arg.value.id, [])
        else:
            arguments.append(arg)
    arguments += [k.value for k in decorator.keywords if k.arg in {"plural", "kind"}]
    for arg in arguments:
        # `PERSISTENT_VOLUMES.plural`: a constant of stowage.kube.resources names the resource.
        if (
            isinstance(arg, ast.Attribute)
            and isinstance(arg.value, ast.Name)
            and arg.value.id in RESOURCES
        ):
            return RESOURCES[arg.value.id]
    strings = {string_value(arg) for arg in arguments}
    for resource in RESOURCES.values():
        names = {resource.plural, resource.kind, f"{resource.plural}.{resource.group}"}
        if names & strings:
            return resource
    raise AssertionError(f"kopf handler on an unknown resource: {ast.unparse(decorator)}")


def handler_permissions(tree: ast.Module) -> Iterator[Permission]:
    tuples = local_tuples(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            kind = kopf_handler_kind(decorator)
            if not kind or kind in OPERATOR_HANDLERS or not isinstance(decorator, ast.Call):
                continue
            resource = handled_resource(decorator, tuples)
            yield (resource.group, resource.plural, "list")
            yield (resource.group, resource.plural, "watch")
            if kind not in OBSERVING_HANDLERS:
                yield (resource.group, resource.plural, "patch")
                if resource.group == STOWAGE_GROUP:
                    # kopf writes handler results to the status subresource of our CRDs.
                    yield (resource.group, f"{resource.plural}/status", "patch")


def used_by_the_code() -> set[Permission]:
    """What the operator does, and what it grants the NAS servers (RBAC lets only a holder of
    a permission grant it)."""
    used = set(FRAMEWORK) | granted(nas_server_rules())
    for tree in syntax_trees(OPERATOR):
        used.update(client_permissions(tree))
        used.update(handler_permissions(tree))
        used.update(index_permissions(tree))
    return used


def used_by(component: str) -> set[Permission]:
    used: set[Permission] = set()
    for tree in syntax_trees(component):
        used.update(client_permissions(tree))
    return used


def nas_server_rules() -> list[dict[str, list[str]]]:
    share = ShareRef("ns", "share", "uid", NASShareSpec.model_validate(SHARE_SPEC))
    rules: list[dict[str, list[str]]] = nas.server_role(share)["rules"]
    return rules


def granted(rules: Iterable[dict[str, list[str]]]) -> set[Permission]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def component_rules(component: str) -> list[dict[str, list[str]]]:
    manifests = render()
    roles = of_kind(manifests, "ClusterRole") + of_kind(manifests, "Role")
    return [
        rule
        for role in roles
        if role["metadata"]["labels"]["app.kubernetes.io/component"] == component
        for rule in role["rules"]
    ]


def operator_rules() -> list[dict[str, list[str]]]:
    return component_rules("operator")


def test_the_operator_may_do_everything_its_code_does() -> None:
    missing = used_by_the_code() - granted(operator_rules())
    assert not missing, f"operator RBAC lacks {sorted(missing)}"


def test_the_operator_may_do_nothing_its_code_does_not() -> None:
    surplus = granted(operator_rules()) - used_by_the_code()
    assert not surplus, f"operator RBAC grants unused {sorted(surplus)}"


def test_the_helper_may_do_exactly_what_the_agent_does() -> None:
    assert granted(component_rules("helper")) == used_by(HELPER)


def test_a_nas_server_may_do_exactly_what_its_code_does() -> None:
    assert granted(nas_server_rules()) == used_by(NAS_SERVER)


def test_the_derivation_sees_calls_and_handlers() -> None:
    source = """
@kopf.on.update("stowage.io", "v1alpha1", "storagebackends")
def handler(kube): kube.merge_patch(STORAGE_BACKENDS, "x", {}, subresource="status")
@kopf.on.event("persistentvolumeclaims")
def observer(kube): kube.apply(PERSISTENT_VOLUMES, {}); {}.get("key")
selector = (NODES.api_version, NODES.plural)
@kopf.timer(*selector, interval=1)
def resync(): pass
@kopf.on.login()
def login(): pass
"""
    tree = ast.parse(source)
    assert set(client_permissions(tree)) == {
        ("stowage.io", "storagebackends/status", "patch"),
        ("", "persistentvolumes", "patch"),
        ("", "persistentvolumes", "create"),
    }
    assert set(handler_permissions(tree)) == {
        ("stowage.io", "storagebackends", "list"),
        ("stowage.io", "storagebackends", "watch"),
        ("stowage.io", "storagebackends", "patch"),
        ("stowage.io", "storagebackends/status", "patch"),
        ("", "persistentvolumeclaims", "list"),
        ("", "persistentvolumeclaims", "watch"),
        ("", "nodes", "list"),
        ("", "nodes", "watch"),
        ("", "nodes", "patch"),
    }


def test_the_package_is_where_the_derivation_looks() -> None:
    assert (PACKAGE_DIR / "kube" / "resources.py").is_file()
    assert Path(resources.__file__).resolve().parent.parent == PACKAGE_DIR.resolve()
