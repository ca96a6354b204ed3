"""The generated CRDs: structural schemas, bounded CEL rules, and the committed YAML up to date."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from stowage.api.backend import StorageBackend, StorageType
from stowage.api.crds import all_crds, crd_file_name, main, render_yaml
from stowage.api.schema import SchemaError, structural_schema

pytestmark = pytest.mark.unit

CRDS_DIR = Path(__file__).resolve().parents[2] / "crds"
Node = dict[str, Any]

INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


def crd_ids(crd: dict[str, Any]) -> str:
    name: str = crd["metadata"]["name"]
    return name


CRDS = all_crds()


def root_schema(crd: dict[str, Any]) -> Node:
    schema: Node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: Node, path: str = "") -> Iterator[tuple[str, Node]]:
    """Every schema node with its path (.properties, [] items, {} map values)."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_the_committed_crds_are_what_the_models_generate() -> None:
    """CI fails on a diff: regenerate with `python -m stowage.api.crds --write crds/`."""
    for crd in CRDS:
        committed = (CRDS_DIR / crd_file_name(crd)).read_text()
        assert committed == render_yaml([crd]), f"crds/{crd_file_name(crd)} is stale"
    assert sorted(path.name for path in CRDS_DIR.glob("*.yaml")) == sorted(
        crd_file_name(crd) for crd in CRDS
    )


def test_the_generator_writes_the_same_files(tmp_path: Path) -> None:
    assert main(["--write", str(tmp_path)]) == 0
    for crd in CRDS:
        assert (tmp_path / crd_file_name(crd)).read_text() == render_yaml([crd])


def test_rendering_is_reproducible_and_round_trips() -> None:
    text = render_yaml(all_crds())
    assert text == render_yaml(all_crds())
    assert list(yaml.safe_load_all(text)) == CRDS


@pytest.mark.parametrize("crd", CRDS, ids=crd_ids)
def test_schema_is_structural(crd: dict[str, Any]) -> None:
    for path, node in walk(root_schema(crd)):
        assert "$ref" not in node, path
        assert "$defs" not in node, path
        assert not {"oneOf", "allOf", "not"} & node.keys(), path
        assert "title" not in node, path
        if "anyOf" in node:
            assert node["anyOf"] == INT_OR_STRING, path
            assert node.get("x-kubernetes-int-or-string") is True, path
            assert "type" not in node, path
        else:
            assert "type" in node, path
            assert node["type"] in {"object", "array", "string", "integer", "boolean", "number"}
        if "properties" in node:
            assert "additionalProperties" not in node, path
        assert "nullable" not in node, path
        assert node.get("default", "") is not None, path


@pytest.mark.parametrize("crd", CRDS, ids=crd_ids)
def test_every_property_has_a_description(crd: dict[str, Any]) -> None:
    for path, node in walk(root_schema(crd)):
        if path == ".metadata" or path.endswith(("[]", "{}")):  # metadata: the API server
            continue  # allows nothing but the type; items are explained by their list
        assert node.get("description"), f"{path} has no description"


@pytest.mark.parametrize("crd", CRDS, ids=crd_ids)
def test_unknown_fields_are_preserved_only_for_kopf(crd: dict[str, Any]) -> None:
    preserving = [
        path
        for path, node in walk(root_schema(crd))
        if node.get("x-kubernetes-preserve-unknown-fields")
    ]
    has_status = "status" in root_schema(crd)["properties"]
    assert preserving == ([".status.kopf"] if has_status else [])


@pytest.mark.parametrize("crd", CRDS, ids=crd_ids)
def test_every_rule_has_a_message(crd: dict[str, Any]) -> None:
    rules = [
        (path, rule)
        for path, node in walk(root_schema(crd))
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert rules
    for path, rule in rules:
        assert set(rule) == {"rule", "message"}, path
        assert rule["message"].strip(), path


@pytest.mark.parametrize("crd", CRDS, ids=crd_ids)
def test_strings_and_lists_under_rules_are_bounded(crd: dict[str, Any]) -> None:
    """The API server estimates the CEL cost from maxLength/maxItems; unbounded nodes blow it."""
    for path, node in walk(root_schema(crd)):
        if not node.get("x-kubernetes-validations") or path == "":
            continue
        if node.get("type") == "string" or node.get("x-kubernetes-int-or-string"):
            assert "maxLength" in node or "enum" in node, path
        if node.get("type") == "array":
            assert "maxItems" in node, path
    for path, node in walk(root_schema(crd)):
        if node.get("type") == "array" and node["items"].get("type") == "object":
            assert "maxItems" in node, path


@pytest.mark.parametrize("crd", CRDS, ids=crd_ids)
def test_list_map_keys_are_required_in_their_items(crd: dict[str, Any]) -> None:
    for path, node in walk(root_schema(crd)):
        if node.get("x-kubernetes-list-type") == "map":
            required = set(node["items"].get("required", []))
            assert set(node["x-kubernetes-list-map-keys"]) <= required, path


def test_exactly_one_type_rule_names_every_type() -> None:
    spec = root_schema(CRDS[0])["properties"]["spec"]
    one_of_rule = spec["x-kubernetes-validations"][0]["rule"]
    type_fields = [name for name in spec["properties"] if name in set(StorageType)]
    assert type_fields == [storage_type.value for storage_type in StorageType]
    for storage_type in StorageType:
        assert f"has(self.{storage_type.value})" in one_of_rule


def test_identity_fields_are_immutable() -> None:
    spec = root_schema(CRDS[0])["properties"]["spec"]["properties"]
    for type_field, field in [
        ("nfs", "path"),
        ("glusterfs", "volume"),
        ("iscsi", "iqn"),
        ("rbd", "pool"),
        ("cephfs", "fsName"),
        ("cifs", "share"),
        ("lvm", "volumeGroup"),
        ("hostPath", "path"),
        ("gitRepo", "repository"),
    ]:
        rules = spec[type_field]["properties"][field]["x-kubernetes-validations"]
        assert {"rule": "self == oldSelf", "message": f"{type_field}.{field} is immutable"} in rules


@pytest.mark.parametrize("crd", CRDS, ids=crd_ids)
def test_printer_columns_point_at_fields_of_the_schema(crd: dict[str, Any]) -> None:
    version = crd["spec"]["versions"][0]
    schema = root_schema(crd)
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"]
        if path == ".metadata.creationTimestamp":
            continue
        node = schema
        for part in path.lstrip(".").split("."):
            part = part.split("[")[0]
            node = node["properties"][part]
            if "[" in path and part == "conditions":
                node = node["items"]
                break
        assert node.get("type") or node.get("x-kubernetes-int-or-string"), path
        has_status = "status" in schema["properties"]
        assert version["subresources"] == ({"status": {}} if has_status else {})


def test_names_and_scopes() -> None:
    backend, share, volume = CRDS
    assert backend["spec"]["scope"] == "Cluster"
    assert backend["spec"]["names"]["shortNames"] == ["sb"]
    assert share["spec"]["scope"] == "Namespaced"
    assert share["spec"]["names"]["shortNames"] == ["nas"]
    assert volume["spec"]["scope"] == "Cluster"
    assert volume["spec"]["names"]["shortNames"] == ["bvol"]
    for crd in CRDS:
        assert crd["spec"]["names"]["categories"] == ["stowage"]
        assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.stowage.io"


def test_quantities_are_int_or_string() -> None:
    share_spec = root_schema(CRDS[1])["properties"]["spec"]["properties"]
    assert share_spec["size"]["x-kubernetes-int-or-string"] is True
    assert any(
        "isQuantity" in rule["rule"] for rule in share_spec["size"]["x-kubernetes-validations"]
    )


class _Union(BaseModel):
    value: int | str


class _Undescribed(BaseModel):
    value: int


@pytest.mark.parametrize(
    ("model", "complaint"), [(_Union, "not structural"), (_Undescribed, "description")]
)
def test_the_converter_refuses_what_is_not_structural(
    model: type[BaseModel], complaint: str
) -> None:
    with pytest.raises(SchemaError, match=complaint):
        structural_schema(model)


def test_optional_submodels_are_inlined_without_null() -> None:
    spec = structural_schema(StorageBackend)["properties"]["spec"]
    nfs = spec["properties"]["nfs"]
    assert nfs["type"] == "object"
    assert nfs["description"] == "An NFS export."
    assert nfs["required"] == ["servers", "path"]


def test_type_rules_and_field_rules_add_up() -> None:
    """A field with its own rule keeps the rules of its type (absolute path + immutable)."""
    nfs = root_schema(CRDS[0])["properties"]["spec"]["properties"]["nfs"]
    messages = [rule["message"] for rule in nfs["properties"]["path"]["x-kubernetes-validations"]]
    assert messages == ["must be an absolute path without '..' segments", "nfs.path is immutable"]
