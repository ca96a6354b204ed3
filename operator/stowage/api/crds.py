"""The CustomResourceDefinitions of stowage, generated from the models.

``python -m stowage.api.crds --write crds/`` regenerates the committed YAML;
``python -m stowage.api.crds`` prints it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stowage.api.backend import BACKEND_NAME_MAX_LENGTH, StorageBackend
from stowage.api.common import GROUP, VERSION, ApiModel, ResourceNames, cel
from stowage.api.nasshare import NAS_SHARE_NAME_MAX_LENGTH, NASShare
from stowage.api.schema import Schema, structural_schema
from stowage.api.volume import BackendVolume

READY_COLUMN_PATH = '.status.conditions[?(@.type=="Ready")].status'


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0

    def to_manifest(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.priority:
            column["priority"] = self.priority
        return column


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", type="date")
READY = PrinterColumn("Ready", READY_COLUMN_PATH)


def name_length_rule(kind: str, max_length: int, why: str) -> dict[str, str]:
    return cel(
        f"self.metadata.name.size() <= {max_length}",
        f"metadata.name of a {kind} must be at most {max_length} characters ({why})",
    )


def _root_schema(model: type[ApiModel], rules: list[dict[str, str]]) -> Schema:
    schema = structural_schema(model)
    schema["properties"] = {
        "apiVersion": {
            "type": "string",
            "description": "Versioned schema of this representation of the object.",
        },
        "kind": {"type": "string", "description": "REST resource this object represents."},
        "metadata": {"type": "object"},  # the API server allows no more here
        **schema["properties"],
    }
    schema["x-kubernetes-validations"] = rules
    return schema


def _crd(
    model: type[ApiModel],
    names: ResourceNames,
    columns: list[PrinterColumn],
    rules: list[dict[str, str]],
) -> dict[str, Any]:
    has_status = "status" in model.model_fields
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": names.crd_name},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": names.kind,
                "listKind": f"{names.kind}List",
                "plural": names.plural,
                "singular": names.singular,
                "shortNames": list(names.short_names),
                "categories": list(names.categories),
            },
            "scope": "Namespaced" if names.namespaced else "Cluster",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}} if has_status else {},
                    "additionalPrinterColumns": [column.to_manifest() for column in columns],
                    "schema": {"openAPIV3Schema": _root_schema(model, rules)},
                }
            ],
        },
    }


def storage_backend_crd() -> dict[str, Any]:
    return _crd(
        StorageBackend,
        StorageBackend.resource,
        [
            PrinterColumn("Type", ".status.storageType"),
            READY,
            PrinterColumn("Volumes", ".status.volumes", type="integer"),
            AGE,
        ],
        [
            name_length_rule(
                "StorageBackend",
                BACKEND_NAME_MAX_LENGTH,
                "it is the name part of the node label mount.stowage.io/<name>",
            )
        ],
    )


def nas_share_crd() -> dict[str, Any]:
    return _crd(
        NASShare,
        NASShare.resource,
        [
            PrinterColumn("Backend", ".spec.backend"),
            PrinterColumn("Size", ".spec.size"),
            READY,
            PrinterColumn("Endpoint NFS", ".status.endpoints.nfs"),
            AGE,
        ],
        [
            name_length_rule(
                "NASShare",
                NAS_SHARE_NAME_MAX_LENGTH,
                "objects named stowage-nas-<name> must fit in 63 characters",
            )
        ],
    )


def backend_volume_crd() -> dict[str, Any]:
    return _crd(
        BackendVolume,
        BackendVolume.resource,
        [
            PrinterColumn("Backend", ".spec.backend"),
            PrinterColumn("Type", ".spec.storageType"),
            PrinterColumn("Node", ".spec.node"),
            PrinterColumn("Bytes", ".spec.capacityBytes", type="integer"),
            PrinterColumn("Path", ".spec.path", priority=1),
            AGE,
        ],
        [cel("self.spec == oldSelf.spec", "spec of a BackendVolume cannot be changed")],
    )


def all_crds() -> list[dict[str, Any]]:
    return [storage_backend_crd(), nas_share_crd(), backend_volume_crd()]


class _BlockStyleDumper(yaml.SafeDumper):
    """Block style throughout; multi-line strings as literal blocks."""


def _represent_string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockStyleDumper.add_representer(str, _represent_string)


def render_yaml(documents: list[dict[str, Any]]) -> str:
    """YAML documents in the order the generator builds them (stable and reproducible)."""
    return "---\n" + "---\n".join(
        yaml.dump(
            document,
            Dumper=_BlockStyleDumper,
            sort_keys=False,
            default_flow_style=False,
            width=100,
            allow_unicode=True,
        )
        for document in documents
    )


def crd_file_name(crd: dict[str, Any]) -> str:
    return f"{crd['metadata']['name'].split('.', 1)[1]}_{crd['spec']['names']['plural']}.yaml"


def write_crds(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for crd in all_crds():
        path = directory / crd_file_name(crd)
        path.write_text(render_yaml([crd]))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, metavar="DIR", help="write one file per CRD")
    arguments = parser.parse_args(argv)
    if arguments.write is None:
        sys.stdout.write(render_yaml(all_crds()))
    else:
        for path in write_crds(arguments.write):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
