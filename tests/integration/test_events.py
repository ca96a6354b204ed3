"""Events against the real API server: a namespace being deleted refuses them, quietly."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from itkit import Api, unique, wait_for

from stowage.kube.events import post_event
from stowage.kube.resources import EVENTS, NAMESPACES, Resource

pytestmark = pytest.mark.integration

HOLD = "stowage.io/test-hold"
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap", True)


@pytest.fixture
def terminating_namespace(api: Api) -> Iterator[str]:
    """A namespace kept in Terminating by a ConfigMap whose finalizer the test holds."""
    name = unique("terminating")
    api.kube.create(NAMESPACES, {"metadata": {"name": name}})
    api.kube.create(
        CONFIG_MAPS,
        {"metadata": {"name": "held", "namespace": name, "finalizers": [HOLD]}},
    )
    api.kube.delete(NAMESPACES, name)
    wait_for(
        lambda: (
            (api.get(NAMESPACES, name) or {}).get("status", {}).get("phase") == "Terminating"
            or None
        ),
        what=f"namespace {name} Terminating",
    )
    yield name
    api.kube.merge_patch(CONFIG_MAPS, "held", {"metadata": {"finalizers": None}}, namespace=name)


def test_an_event_for_a_namespace_being_deleted_is_dropped_without_a_warning(
    api: Api, terminating_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": terminating_namespace, "uid": "0"},
    }
    with caplog.at_level(logging.DEBUG, logger="stowage.kube.events"):
        post_event(api.kube, claim, warning=False, reason="Provisioned", message="volume made")

    assert not api.kube.list(EVENTS, namespace=terminating_namespace)
    assert [r.levelname for r in caplog.records] == ["DEBUG"]
    assert "being deleted" in caplog.records[0].getMessage()


def test_an_event_refused_for_another_reason_is_a_warning(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    missing = unique("missing")
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}}
    claim["metadata"]["namespace"] = missing
    with caplog.at_level(logging.DEBUG, logger="stowage.kube.events"):
        post_event(api.kube, claim, warning=True, reason="ProvisioningFailed", message="no room")

    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "ProvisioningFailed" in caplog.records[0].getMessage()
