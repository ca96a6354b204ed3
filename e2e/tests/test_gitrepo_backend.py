"""gitRepo end to end: a git daemon on a test host, the in-cluster operator, the helper.

The helper on the claim's node fetches the repository at the backend's revision into a
checkout of its own, binds it read-only onto the volume's path before the PV exists, and
brings it up to date every syncPeriod; pods read the files and cannot write them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stowage.agent.mounting import mount_source
from stowage_e2e import hosts, scenario
from stowage_e2e.helpers import release_claim, wait_for_event, wait_for_label
from stowage_e2e.hosts import TestHost
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube

pytestmark = pytest.mark.e2e

GIT_PORT = 9418
IDENTITY = {
    "GIT_AUTHOR_NAME": "e2e",
    "GIT_AUTHOR_EMAIL": "e2e@example.com",
    "GIT_COMMITTER_NAME": "e2e",
    "GIT_COMMITTER_EMAIL": "e2e@example.com",
}
SYNC_PERIOD = 10  # seconds, the least a backend may set


@dataclass
class GitServer:
    """`git daemon` serving the bare repositories of `root` from a test host."""

    host: TestHost
    root: Path
    process: subprocess.Popen[bytes]

    def url(self, repository: str) -> str:
        return f"git://{self.host.ip}/{repository}"

    def create(self, repository: str) -> Path:
        """A new bare repository (branch main) and a working copy that commits into it."""
        bare = self.root / repository
        work = self.root / f"{repository}-author"
        git("init", "--quiet", "--bare", "-b", "main", str(bare))
        git("clone", "--quiet", str(bare), str(work))
        git("-C", str(work), "checkout", "--quiet", "-b", "main")
        return work

    def commit(self, work: Path, name: str, text: str) -> None:
        (work / name).write_text(text)
        git("-C", str(work), "add", name)
        git("-C", str(work), "commit", "--quiet", "-m", f"{name}: {text.strip()}")
        git("-C", str(work), "push", "--quiet", "origin", "main")


def git(*arguments: str) -> None:
    subprocess.run(["git", *arguments], check=True, env={**os.environ, **IDENTITY})


@pytest.fixture
def git_server(cluster: object, tmp_path: Path) -> Iterator[GitServer]:
    host = hosts.create_host()
    try:
        process = host.popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                f"--base-path={tmp_path}",
                f"--listen={host.ip}",
                f"--port={GIT_PORT}",
                str(tmp_path),
            ]
        )
        wait_until_listening(host.ip, GIT_PORT)
        yield GitServer(host, tmp_path, process)
        process.terminate()
    finally:
        hosts.remove_host(host)


def wait_until_listening(address: str, port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {address}:{port}"
            time.sleep(0.5)


# Reads the checkout, tries to write into it, then waits for the upstream change.
READER = """
cat /data/index.html
touch /data/written 2>&1 && echo "write succeeded"
start=$(date +%s)
while [ $(( $(date +%s) - start )) -lt 120 ]; do
  if grep -q two /data/index.html; then echo "updated: $(cat /data/index.html)"; exit 0; fi
  sleep 1
done
echo "never updated"
exit 1
"""


def test_a_pod_reads_the_checkout_read_only_and_sees_a_new_commit_after_the_period(
    kube: Kube,
    namespace: str,
    git_server: GitServer,
    backend_factory: Callable[..., str],
    stowage_images: Images,
) -> None:
    work = git_server.create("site.git")
    git_server.commit(work, "index.html", "one\n")
    spec = {
        "gitRepo": {
            "repository": git_server.url("site.git"),
            "revision": "main",
            "syncPeriod": f"{SYNC_PERIOD}s",
        }
    }
    name = backend_factory("site", spec)
    scenario.wait_ready(kube, name)
    wait_for_label(kube, name, "ready")
    kube.apply(scenario.claim("data", name, "10Mi", "ReadOnlyMany"), namespace)
    pod = scenario.script_pod("writer", "data", stowage_images.operator, READER)
    kube.apply(pod, namespace)
    kube.wait_for_pod_phase("writer", namespace, phases=("Running", "Succeeded", "Failed"))
    kube.wait_for(
        "pod",
        "writer",
        namespace,
        lambda _: "one" in kube.logs("writer", namespace),
        timeout=60,
        what="the first commit read",
    )
    git_server.commit(work, "index.html", "two\n")
    committed = time.monotonic()
    finished = kube.wait_for_pod_phase("writer", namespace, timeout=150)
    seen_after = time.monotonic() - committed
    log = kube.logs("writer", namespace)
    print(f"\n{log}\nthe new commit reached the pod {seen_after:.0f} s after the push")
    assert finished["status"]["phase"] == "Succeeded", log
    assert log.splitlines()[0] == "one", "the first commit was not checked out"
    assert "write succeeded" not in log and "Read-only file system" in log
    assert "updated: two" in log
    assert seen_after < SYNC_PERIOD + 20  # the period, plus the helper's interval and polling

    volume = scenario.bound_volume(kube, "data", namespace)
    directory = Path(volume["spec"]["local"]["path"])
    assert mount_source(str(directory)) is not None  # the read-only bind of the checkout
    release_claim(kube, namespace)
    assert mount_source(str(directory)) is None
    assert not directory.exists()
    assert not (directory.parent / ".checkouts" / directory.name).exists()


def test_a_wrong_repository_leaves_the_claim_pending_with_a_clear_event(
    kube: Kube,
    namespace: str,
    git_server: GitServer,
    backend_factory: Callable[..., str],
) -> None:
    url = git_server.url("no-such-repository.git")
    spec = {
        "gitRepo": {"repository": url},
        "storageClass": {"volumeBindingMode": "Immediate"},
    }
    name = backend_factory("wrong", spec)
    wait_for_label(kube, name, "ready")
    kube.apply(scenario.claim("data", name, "10Mi", "ReadOnlyMany"), namespace)
    event = wait_for_event(kube, namespace, "persistentvolumeclaim", "data", "PreparationFailed")
    print(f"\n{event['message']}")
    assert f"fetching {url}" in event["message"]
    claim = kube.get("persistentvolumeclaim", "data", namespace)
    assert claim["status"]["phase"] == "Pending"
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)
