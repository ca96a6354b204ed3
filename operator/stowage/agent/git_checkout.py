"""A gitRepo volume's checkout: fetched at the backend's revision, brought up to date on its period.

The working tree lives in a directory of its own (`GitCheckout.path`); the helper binds it
onto the volume's path (stowage.agent.node_volumes), which pods mount read-only, and they see
an update as soon as it is checked out.

Credentials never reach a command line, a log line, an Event or the checkout's configuration:
a username and password are answered by an askpass script that reads them from files of a
private directory made for one sync and removed after it; an SSH key is a file of that
directory, named by GIT_SSH_COMMAND.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from stowage.drivers.base import GitCheckout

# Answers git's "Username for ..." and "Password for ..." questions from files beside it.
ASKPASS_SCRIPT = """#!/bin/sh
case "$1" in
  Username*) exec cat "$(dirname "$0")/username" ;;
  *) exec cat "$(dirname "$0")/password" ;;
esac
"""
SSH_KEY = "ssh-privatekey"
KNOWN_HOSTS = "known_hosts"
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
MAX_ERROR = 400


class GitError(Exception):
    """A fetch or checkout failed; the message says which and git's own words why."""


@contextmanager
def credentials(secret: Mapping[str, bytes] | None, *, ssh: bool) -> Iterator[dict[str, str]]:
    """The environment that gives git the Secret's credentials (none: git may not prompt),
    through files of a private directory that is removed on exit."""
    with tempfile.TemporaryDirectory(prefix="stowage-git-") as directory:
        home = Path(directory)  # git reads no configuration of the helper's user either
        environment = {
            "HOME": directory,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
        }
        if ssh:
            ssh_command = ["ssh", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]
            if secret and SSH_KEY in secret:
                _private_file(home / "key", secret[SSH_KEY])
                ssh_command += ["-i", str(home / "key")]
            if secret and KNOWN_HOSTS in secret:
                _private_file(home / KNOWN_HOSTS, secret[KNOWN_HOSTS])
                ssh_command += ["-o", "StrictHostKeyChecking=yes"]
            else:  # no known hosts given: the server's key is taken as it is
                ssh_command += ["-o", "StrictHostKeyChecking=accept-new"]
            ssh_command += ["-o", f"UserKnownHostsFile={home / KNOWN_HOSTS}"]
            environment["GIT_SSH_COMMAND"] = shlex.join(ssh_command)
        elif secret:
            _private_file(home / "username", secret.get("username", b""))
            _private_file(home / "password", secret.get("password", b""))
            askpass = home / "askpass"
            _private_file(askpass, ASKPASS_SCRIPT.encode(), mode=0o700)
            environment["GIT_ASKPASS"] = str(askpass)
        yield environment


def _private_file(path: Path, content: bytes, mode: int = 0o600) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)


def _git(
    path: str, arguments: list[str], environment: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", path, *arguments],
            capture_output=True,
            text=True,
            env=dict(environment),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise GitError(f"git {arguments[0]} did not finish in {timeout:.0f} s") from error


def _checked(
    path: str, arguments: list[str], environment: Mapping[str, str], timeout: float
) -> str:
    result = _git(path, arguments, environment, timeout)
    if result.returncode != 0:
        raise GitError(f"git {arguments[0]}: {git_said(result.stderr or result.stdout)}")
    return result.stdout.strip()


def git_said(output: str) -> str:
    """git's last words, on one line and bounded (the URL in them carries no password: the
    backend's validation refuses one)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return " ".join(lines)[-MAX_ERROR:] or "no output"


def fetch_arguments(checkout: GitCheckout, revision: str | None) -> list[str]:
    """`git fetch` of the revision (None: of every branch, to find a commit by its id)."""
    depth = ["--depth", str(checkout.depth)] if checkout.depth else []
    refspecs = [revision] if revision else ["+refs/heads/*:refs/remotes/origin/*"]
    return ["fetch", "--quiet", "--no-tags", *depth, "origin", *refspecs]


def sync(checkout: GitCheckout, environment: Mapping[str, str], timeout: float) -> str:
    """Brings the working tree at `checkout.path` (an existing directory) to the newest commit
    of the revision; returns that commit. GitError when the repository cannot be reached or
    has no such revision; the working tree is then left as it was."""
    path = checkout.path
    if not os.path.isdir(os.path.join(path, ".git")):
        _checked(path, ["init", "--quiet"], environment, timeout)
        _checked(path, ["remote", "add", "origin", checkout.repository], environment, timeout)
    else:  # the same URL unless the backend was recreated under the same name
        _checked(path, ["remote", "set-url", "origin", checkout.repository], environment, timeout)
    fetched = _git(path, fetch_arguments(checkout, checkout.revision), environment, timeout)
    if fetched.returncode == 0:
        target = _checked(path, ["rev-parse", "FETCH_HEAD"], environment, timeout)
    elif _COMMIT.match(checkout.revision):  # a commit the server does not hand out by its id
        _checked(path, fetch_arguments(checkout, None), environment, timeout)
        target = _checked(
            path, ["rev-parse", "--verify", f"{checkout.revision}^{{commit}}"], environment, timeout
        )
    else:
        said = git_said(fetched.stderr)
        if "couldn't find remote ref" in said:
            raise GitError(f"revision {checkout.revision} is not in {checkout.repository}")
        raise GitError(f"fetching {checkout.repository}: {said}")
    current = _git(path, ["rev-parse", "--verify", "HEAD"], environment, timeout)
    if current.returncode != 0 or current.stdout.strip() != target:
        _checked(path, ["checkout", "--quiet", "--force", "--detach", target], environment, timeout)
        _checked(path, ["clean", "-ffdxq"], environment, timeout)
    return target
