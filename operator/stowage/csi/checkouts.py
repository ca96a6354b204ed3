"""The node plugin's gitRepo checkouts: fetched into a directory of the volume's node the first
time a pod there uses the volume, bound read-only onto the volume's directory, and brought up
to date every syncPeriod of the backend for as long as the volume lives.

What is fetched (repository, revision, depth) is the backend's as it is at each sync, as for
the helpers' checkouts (stowage.agent.git_checkout does the fetching for both). Credentials
come from the node side's copy of the backend's Secret, which the operator keeps in the
helper namespace, and reach git only through the files of one sync (never a command line, a
log line or the checkout's configuration).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time

from stowage import backends
from stowage.agent import git_checkout
from stowage.csi.volumes import NODE_LABEL, node_label, record_spec
from stowage.drivers import driver_for
from stowage.drivers.base import DataLocation, GitCheckout, NodeVolume, ProvisionedVolume
from stowage.kube import ApiError, Kube
from stowage.kube.resources import BACKEND_VOLUMES, SECRETS
from stowage.objects.helper_daemonset import helper_name

log = logging.getLogger(__name__)

GIT_TIMEOUT = 60.0  # within the kubelet's 2 min for a publish; a slower fetch is tried again
TICK_SECONDS = 2.0  # how often the checkouts due are looked for


class CheckoutError(Exception):
    """The checkout cannot be made or brought up to date now; the message says why."""


class Checkouts:
    """`namespace`: where the operator keeps the node side's copies of backends' Secrets."""

    def __init__(self, kube: Kube, node: str, namespace: str) -> None:
        self._kube = kube
        self._node = node
        self._namespace = namespace
        # checkout path -> when the next sync is due (after the last one, by its period then)
        self._due: dict[str, float] = {}
        self._syncing = threading.Lock()  # a publish and the periodic sync never fetch at once

    def node_volume(self, backend: str, name: str, path: str) -> NodeVolume:
        """The volume's node work (its directory, and the checkout bound onto it) as the
        backend says now."""
        model = backends.read_backend(self._kube, backend)
        if isinstance(model, str):
            raise CheckoutError(model)
        location = DataLocation(path=path, node=self._node, read_only=True)
        driver = driver_for(model.spec.storage_type)
        ref = backends.backend_ref(backend, model)
        work = driver.node_volume(ref, ProvisionedVolume(name, 0, location))
        if work is None or work.checkout is None:
            raise CheckoutError(f"StorageBackend {backend} has no checkout for volume {name}")
        return work

    def sync(self, backend: str, checkout: GitCheckout, *, only_when_due: bool = False) -> None:
        """Brings the backend's checkout up to date (fetches it the first time); with
        `only_when_due`, only if its syncPeriod is over (a publish may have just fetched it)."""
        secret = self._credentials(backend, checkout)
        with self._syncing, git_checkout.credentials(secret, ssh=checkout.ssh) as environment:
            if only_when_due and not self.is_due(checkout.path):
                return
            # A sync that fails is tried again a period later too (or at the next publish).
            self._due[checkout.path] = time.monotonic() + checkout.sync_seconds
            try:
                commit = git_checkout.sync(checkout, environment, GIT_TIMEOUT)
            except git_checkout.GitError as error:
                raise CheckoutError(str(error)) from error
        log.info("checkout %s at %s", checkout.path, commit)

    def is_due(self, path: str) -> bool:
        return time.monotonic() >= self._due.get(path, 0.0)

    def _credentials(self, backend: str, checkout: GitCheckout) -> dict[str, bytes] | None:
        if checkout.credentials is None:
            return None
        copy = self._kube.get(SECRETS, helper_name(backend), self._namespace)
        if copy is None:
            raise CheckoutError(
                f"the node side has no copy of the Secret of StorageBackend {backend} yet (the "
                f"operator copies it into namespace {self._namespace}; is "
                f"{checkout.credentials.namespace}/{checkout.credentials.name} there?)"
            )
        return {key: base64.b64decode(value) for key, value in (copy.get("data") or {}).items()}

    def sync_due(self) -> None:
        """Brings up to date the checkouts of this node's live volumes whose period is over
        (those fetched already: a volume no pod has used has none)."""
        records = self._kube.list(
            BACKEND_VOLUMES, label_selector=f"{NODE_LABEL}={node_label(self._node)}"
        )
        specs = [(record, record_spec(record)) for record in records]
        for path in set(self._due) - {spec.checkout_path for _, spec in specs}:
            del self._due[path]  # its volume was released
        for record, spec in specs:
            if spec.checkout_path is None or record["metadata"].get("deletionTimestamp"):
                continue
            if not self.is_due(spec.checkout_path):
                continue  # by the period of its last sync; a changed period counts from then
            if not os.path.isdir(os.path.join(spec.checkout_path, ".git")):
                continue
            name = record["metadata"]["name"]
            try:
                checkout = self.node_volume(spec.backend, name, spec.path).checkout
                assert checkout is not None  # node_volume raises otherwise
                self.sync(spec.backend, checkout, only_when_due=True)
            except (CheckoutError, ApiError, OSError) as error:
                log.warning("volume %s: its checkout is not up to date: %s", name, error)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(TICK_SECONDS):
            try:
                self.sync_due()
            except (ApiError, OSError) as error:
                log.warning("syncing the checkouts of node %s: %s", self._node, error)
