"""Pydantic JSON schema -> structural OpenAPI v3 schema for apiextensions.k8s.io/v1.

Structural means: every node has a type (or is int-or-string, or preserves unknown fields),
no ``$ref``, no ``anyOf``/``oneOf`` except the int-or-string pair, descriptions kept.
``Optional[X]`` becomes the schema of X: a missing field means "unset", and the API server
prunes explicit nulls, so ``nullable`` is emitted only where a model asks for it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Schema = dict[str, Any]

# Keys of the pydantic output that mean nothing to the API server.
_DROPPED_KEYS = frozenset({"title", "examples", "$defs"})
_VALIDATIONS = "x-kubernetes-validations"
_NULL = {"type": "null"}


class SchemaError(ValueError):
    """The models cannot be expressed as a structural schema (a bug in the models)."""


def structural_schema(model: type[BaseModel]) -> Schema:
    """The structural OpenAPI v3 schema of a model (the model's aliases are the field names)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _Converter(raw.get("$defs", {})).convert(raw, path=model.__name__)


class _Converter:
    def __init__(self, definitions: dict[str, Schema]) -> None:
        self._definitions = definitions

    def convert(self, node: Schema, path: str) -> Schema:
        node = self._flatten(node, path)
        result: Schema = {}
        for key, value in node.items():
            if key in _DROPPED_KEYS or (key == "default" and value is None):
                continue
            if key == "const":
                result["enum"] = [value]
            elif key == "properties":
                result[key] = self._properties(value, path)
            elif key == "items":
                result[key] = self.convert(value, f"{path}[]")
            elif key == "additionalProperties":
                result.update(self._additional_properties(value, node, path))
            else:
                result[key] = value
        _check_structural(result, path)
        return result

    def _flatten(self, node: Schema, path: str) -> Schema:
        """Resolve ``$ref`` and ``Optional`` wrappers into one node; siblings win, rules add up."""
        if "$ref" in node:
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            target = self._flatten(self._definition(node["$ref"], path), path)
            return _merge(target, siblings)
        variants = node.get("anyOf")
        if variants is not None and _NULL in variants:
            rest = [variant for variant in variants if variant != _NULL]
            siblings = {key: value for key, value in node.items() if key != "anyOf"}
            if len(rest) != 1:
                raise SchemaError(f"{path}: a union other than Optional[X] is not structural")
            return _merge(self._flatten(rest[0], path), siblings)
        return node

    def _definition(self, reference: str, path: str) -> Schema:
        prefix = "#/$defs/"
        if not reference.startswith(prefix) or reference[len(prefix) :] not in self._definitions:
            raise SchemaError(f"{path}: unresolvable reference {reference}")
        return self._definitions[reference[len(prefix) :]]

    def _properties(self, properties: dict[str, Schema], path: str) -> dict[str, Schema]:
        converted = {}
        for name, schema in properties.items():
            property_path = f"{path}.{name}"
            converted[name] = self.convert(schema, property_path)
            if not converted[name].get("description"):
                raise SchemaError(f"{property_path}: every property needs a description")
        return converted

    def _additional_properties(self, value: Any, node: Schema, path: str) -> Schema:
        if value is False:
            return {}  # structural schemas forbid it next to properties; pruning does the job
        if value is True or value == {}:
            if "properties" in node:
                raise SchemaError(f"{path}: additionalProperties next to properties")
            return {"x-kubernetes-preserve-unknown-fields": True}
        return {"additionalProperties": self.convert(value, f"{path}{{}}")}


def _merge(target: Schema, siblings: Schema) -> Schema:
    merged = {**target, **siblings}
    rules = target.get(_VALIDATIONS, []) + siblings.get(_VALIDATIONS, [])
    if rules:
        merged[_VALIDATIONS] = rules
    return merged


def _check_structural(node: Schema, path: str) -> None:
    if node.get("x-kubernetes-int-or-string"):
        if node.get("anyOf") not in (None, [{"type": "integer"}, {"type": "string"}]):
            raise SchemaError(f"{path}: int-or-string with a foreign anyOf")
        return
    if any(key in node for key in ("anyOf", "oneOf", "allOf", "not")):
        raise SchemaError(f"{path}: composition keywords are not structural")
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        raise SchemaError(f"{path}: no type")
    if node.get("x-kubernetes-preserve-unknown-fields") and "type" not in node:
        node["type"] = "object"
