"""The helper's volumes of one node: git checkouts against a real repository (a bare one on
disk, reached through file:// or through git's smart HTTP behind Basic auth on this machine),
their credentials, tmpfs options, directories made and wiped."""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from stowage.agent import git_checkout, node_volumes
from stowage.drivers.base import GitCheckout, NewDirectory, NodeVolume
from stowage_e2e import git_servers

pytestmark = pytest.mark.unit

IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


class Upstream:
    """A bare repository and a working copy that commits into it."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "upstream.git"
        self.work = root / "author"
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "-b", "main", str(self.bare)], check=True
        )
        subprocess.run(["git", "clone", "--quiet", str(self.bare), str(self.work)], check=True)
        subprocess.run(["git", "-C", str(self.work), "checkout", "-q", "-b", "main"], check=True)

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, name: str, text: str) -> str:
        (self.work / name).write_text(text)
        environment = {**os.environ, **IDENTITY}
        for command in (
            ["add", name],
            ["commit", "-q", "-m", name],
            ["push", "-q", "origin", "main"],
        ):
            subprocess.run(["git", "-C", str(self.work), *command], check=True, env=environment)
        return subprocess.run(
            ["git", "-C", str(self.work), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    return Upstream(tmp_path)


def checkout_of(url: str, path: Path, revision: str = "HEAD", depth: int = 1) -> GitCheckout:
    path.mkdir(exist_ok=True)
    return GitCheckout(url, revision, depth, 10.0, str(path))


def sync(checkout: GitCheckout) -> str:
    with git_checkout.credentials(None, ssh=False) as environment:
        return git_checkout.sync(checkout, environment, timeout=60)


def test_a_checkout_follows_its_revision_and_shows_a_new_commit_on_the_next_sync(
    upstream: Upstream, tmp_path: Path
) -> None:
    first = upstream.commit("index.html", "one\n")
    checkout = checkout_of(upstream.url, tmp_path / "checkout", revision="main")
    assert sync(checkout) == first
    assert (tmp_path / "checkout" / "index.html").read_text() == "one\n"
    second = upstream.commit("index.html", "two\n")
    assert sync(checkout) == second
    assert (tmp_path / "checkout" / "index.html").read_text() == "two\n"
    assert sync(checkout) == second  # nothing new: nothing changes


def test_a_checkout_can_be_pinned_to_an_older_commit(upstream: Upstream, tmp_path: Path) -> None:
    first = upstream.commit("a.txt", "first\n")
    upstream.commit("a.txt", "second\n")
    checkout = checkout_of(upstream.url, tmp_path / "pinned", revision=first, depth=0)
    assert sync(checkout) == first
    assert (tmp_path / "pinned" / "a.txt").read_text() == "first\n"


def test_an_unknown_revision_and_an_unreachable_repository_are_told_apart(
    upstream: Upstream, tmp_path: Path
) -> None:
    upstream.commit("a.txt", "a\n")
    missing = checkout_of(upstream.url, tmp_path / "missing", revision="no-such-branch")
    with pytest.raises(git_checkout.GitError, match="revision no-such-branch is not in file:"):
        sync(missing)
    nowhere = checkout_of("git://127.0.0.1:1/nothing.git", tmp_path / "nowhere")
    with pytest.raises(
        git_checkout.GitError, match=re.escape("fetching git://127.0.0.1:1/nothing.git: ")
    ):
        sync(nowhere)


def test_a_failed_sync_leaves_the_last_good_checkout(upstream: Upstream, tmp_path: Path) -> None:
    upstream.commit("a.txt", "good\n")
    checkout = checkout_of(upstream.url, tmp_path / "c", revision="main")
    sync(checkout)
    broken = GitCheckout(upstream.url, "gone", 1, 10.0, checkout.path)
    with pytest.raises(git_checkout.GitError):
        sync(broken)
    assert (tmp_path / "c" / "a.txt").read_text() == "good\n"


def test_http_credentials_reach_git_only_through_private_files() -> None:
    secret = {"username": b"robot", "password": b"pa55-w0rd"}
    with git_checkout.credentials(secret, ssh=False) as environment:
        askpass = Path(environment["GIT_ASKPASS"])
        home = askpass.parent
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert stat.S_IMODE((home / "password").stat().st_mode) == 0o600
        answers = [
            subprocess.run([str(askpass), question], capture_output=True, text=True).stdout
            for question in ("Username for 'https://git.example.com': ", "Password for 'x': ")
        ]
        assert answers == ["robot", "pa55-w0rd"]
        assert not any(b"pa55" in value.encode() for value in environment.values())
    assert not home.exists()  # removed with everything in it after the sync


@pytest.fixture
def http_upstream(upstream: Upstream) -> Iterator[str]:
    """The upstream repository over git's smart HTTP on this machine, for robot:pa55-w0rd."""
    git_servers.BasicAuthGit.root = str(upstream.bare.parent)
    token = base64.b64encode(b"robot:pa55-w0rd").decode()
    git_servers.BasicAuthGit.expected = f"Basic {token}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), git_servers.BasicAuthGit)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{upstream.bare.name}"
    server.shutdown()
    server.server_close()


def test_a_password_protected_repository_is_fetched_with_the_secrets_credentials(
    upstream: Upstream, http_upstream: str, tmp_path: Path
) -> None:
    commit = upstream.commit("plan.txt", "private\n")
    checkout = checkout_of(http_upstream, tmp_path / "private")
    with pytest.raises(git_checkout.GitError, match="could not read Username"):
        sync(checkout)
    wrong = {"username": b"robot", "password": b"guess"}
    with (
        git_checkout.credentials(wrong, ssh=False) as environment,
        pytest.raises(git_checkout.GitError, match="Authentication failed") as refused,
    ):
        git_checkout.sync(checkout, environment, timeout=60)
    assert "guess" not in str(refused.value)
    right = {"username": b"robot", "password": b"pa55-w0rd"}
    with git_checkout.credentials(right, ssh=False) as environment:
        assert git_checkout.sync(checkout, environment, timeout=60) == commit
    assert (tmp_path / "private" / "plan.txt").read_text() == "private\n"
    assert "pa55" not in (tmp_path / "private" / ".git" / "config").read_text()


def test_an_ssh_key_is_a_private_file_named_by_the_ssh_command() -> None:
    secret = {"ssh-privatekey": b"-----BEGIN KEY-----\n", "known_hosts": b"host ssh-ed25519 AAA\n"}
    with git_checkout.credentials(secret, ssh=True) as environment:
        command = environment["GIT_SSH_COMMAND"]
        assert "StrictHostKeyChecking=yes" in command and "BEGIN KEY" not in command
        key = Path(command.split(" -i ")[1].split()[0])
        assert key.read_bytes() == secret["ssh-privatekey"]
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_a_memory_volume_is_a_tmpfs_of_the_claims_size_with_its_mode_and_owner() -> None:
    volume = NodeVolume("/var/lib/stowage/volumes/s", "/var/lib/stowage/volumes/s/c", 10 * 2**20)
    command = node_volumes.tmpfs_command(volume, NewDirectory(0o2770, 1000, 2000))
    assert command == [
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=10485760,mode=2770,uid=1000,gid=2000",
        "tmpfs",
        "/var/lib/stowage/volumes/s/c",
    ]


def test_a_disk_volume_is_made_once_and_wiped_on_release(tmp_path: Path) -> None:
    volume = NodeVolume(str(tmp_path / "root"), str(tmp_path / "root" / "base" / "claim"))

    def no_checkout(checkout: GitCheckout) -> None:
        raise AssertionError("a directory volume has no checkout")

    node_volumes.make(volume, NewDirectory(0o770), no_checkout, mount_timeout=5)
    made = tmp_path / "root" / "base" / "claim"
    assert stat.S_IMODE(made.stat().st_mode) == 0o770
    (made / "file").write_text("scratch")
    node_volumes.make(volume, NewDirectory(0o700), no_checkout, mount_timeout=5)
    assert (made / "file").exists() and stat.S_IMODE(made.stat().st_mode) == 0o770
    assert node_volumes.remove(volume)
    assert not made.exists() and (tmp_path / "root" / "base").is_dir()
    assert not node_volumes.remove(volume)
