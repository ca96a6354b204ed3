from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from stowage.csi.node_capacity import existing_parent, reported_free
from stowage.drivers.base import CandidateNode

pytestmark = pytest.mark.unit


def body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec}


def free_at(path: Path) -> str:
    stats = os.statvfs(path)
    return str(stats.f_bavail * stats.f_frsize)


def test_the_node_reports_the_room_of_the_csi_backends_it_offers(tmp_path: Path) -> None:
    not_made_yet = tmp_path / "volumes" / "fast"
    backends = [
        body("fast", {"hostPath": {"path": str(not_made_yet), "nodes": ["node-a"]},
                      "provisioning": {"csi": True}}),
        body("elsewhere", {"hostPath": {"path": str(tmp_path), "nodes": ["node-b"]},
                           "provisioning": {"csi": True}}),
        body("in-tree", {"hostPath": {"path": str(tmp_path), "nodes": ["node-a"]}}),
        body("ram", {"emptyDir": {"medium": "Memory"}, "provisioning": {"csi": True}}),
        body("scratch", {"emptyDir": {"basePath": str(tmp_path)},
                         "provisioning": {"csi": True}, "mount": {"nodeSelector": {"ssd": "y"}}}),
        body("broken", {"hostPath": {}}),
    ]  # fmt: skip
    plain = CandidateNode(
        name="node-a",
        annotations={"capacity.stowage.io/gone": "1024", "capacity.stowage.io/in-tree": "7"},
    )
    assert reported_free(backends, plain, Path("/")) == {
        # measured on the file system its root will be made on
        "capacity.stowage.io/fast": free_at(tmp_path),
        "capacity.stowage.io/elsewhere": None,  # not offered here: no report left behind
        "capacity.stowage.io/scratch": None,
        "capacity.stowage.io/gone": None,  # the backend is gone
    }  # the in-tree backend's report is its helper's
    labelled = CandidateNode(name="node-a", labels={"ssd": "y"})
    assert reported_free(backends, labelled, Path("/"))["capacity.stowage.io/scratch"] == (
        free_at(tmp_path)
    )


def test_a_root_is_measured_below_the_node_root_the_plugin_sees(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    backends = [body("fast", {"hostPath": {"path": "/srv/fast"}, "provisioning": {"csi": True}})]
    assert reported_free(backends, CandidateNode(name="node-a"), tmp_path) == {
        "capacity.stowage.io/fast": free_at(tmp_path / "srv"),
    }
    assert existing_parent(str(tmp_path / "srv" / "fast" / "deeper")) == str(tmp_path / "srv")
