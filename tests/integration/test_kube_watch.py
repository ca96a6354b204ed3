"""The client's watch against the real API server: events as they happen, filtered by label."""

from __future__ import annotations

import threading

import pytest
from itkit import Api, unique, wait_for

from stowage.kube import Json
from stowage.kube.resources import Resource

pytestmark = pytest.mark.integration

CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap", True)


def test_a_watch_sees_objects_of_its_label_come_and_change_and_nothing_else(
    api: Api, namespace: str
) -> None:
    label = unique("watched")
    seen: list[Json] = []

    def watch() -> None:
        for event in api.kube.watch(
            CONFIG_MAPS, label_selector=f"stowage.io/test={label}", seconds=15
        ):
            seen.append(event)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    api.kube.create(CONFIG_MAPS, {"metadata": {"name": "other", "namespace": namespace}})
    labelled = {
        "metadata": {"name": "mine", "namespace": namespace, "labels": {"stowage.io/test": label}}
    }
    api.kube.create(CONFIG_MAPS, labelled)
    patch = {"data": {"key": "value"}}
    api.kube.merge_patch(CONFIG_MAPS, "mine", patch, namespace=namespace)
    wait_for(lambda: len(seen) >= 2, timeout=10, what="two watch events")
    assert [(event["type"], event["object"]["metadata"]["name"]) for event in seen] == [
        ("ADDED", "mine"),
        ("MODIFIED", "mine"),
    ]
    assert seen[1]["object"]["data"] == {"key": "value"}
    watcher.join(timeout=30)
    assert not watcher.is_alive(), "the watch did not end when the API server closed it"
