"""Claim directories and host paths: bounded, unique by UID, never outside their root."""

from __future__ import annotations

import posixpath
import re

import pytest

from stowage.drivers.naming import (
    CLAIM_DIRECTORY_MAX_LENGTH,
    archive_name,
    bounded_name,
    claim_directory,
    path_under,
)

pytestmark = pytest.mark.unit

UID = "8f14e45f-ceea-467f-a0e6-7bdc2b1c9b33"
SAFE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def test_readable_name_from_namespace_claim_and_uid() -> None:
    assert claim_directory("team-a", "data", UID) == f"team-a-data-{UID}"


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("team", "a..b"),
        ("..", ".."),
        ("team", "../../etc/passwd"),
        ("team", "/"),
        ("team", "x" * 253),
        ("n" * 63, "y.z" * 80),
        ("TEAM", "Data\x00\n"),
    ],
)
def test_hostile_names_give_one_safe_bounded_path_segment(namespace: str, name: str) -> None:
    directory = claim_directory(namespace, name, UID)
    assert SAFE.match(directory), directory
    assert len(directory) <= CLAIM_DIRECTORY_MAX_LENGTH
    assert directory.endswith(UID)
    joined = path_under("/srv/k8s", "/base", directory)
    assert posixpath.dirname(joined) == "/srv/k8s/base"


def test_the_uid_keeps_truncated_names_apart() -> None:
    long_name = "data-" + "x" * 200
    first = claim_directory("team", long_name + "1", UID)
    second = claim_directory("team", long_name + "2", "0b6e2a5d-5c4f-4c65-9f3a-1a2b3c4d5e6f")
    assert first != second
    assert first[: -len(UID)] == second[: -len(UID)]  # the readable parts were cut alike


def test_names_made_only_of_punctuation_leave_just_the_uid() -> None:
    assert claim_directory("-", "..", UID) == UID


@pytest.mark.parametrize("uid", ["", "../x", "a/b", "U" * 65, "-abc"])
def test_something_that_is_not_a_uid_is_refused(uid: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes UID"):
        claim_directory("team", "data", uid)


@pytest.mark.parametrize(
    ("root", "parts", "expected"),
    [
        ("/exports", ("/", "dir"), "/exports/dir"),
        ("/exports/", ("/base/", "dir"), "/exports/base/dir"),
        ("/", ("/", "dir"), "/dir"),
    ],
)
def test_path_under_joins_absolute_parts_as_relative(
    root: str, parts: tuple[str, ...], expected: str
) -> None:
    assert path_under(root, *parts) == expected


@pytest.mark.parametrize("part", ["..", "../etc", "a/../../etc", "/.."])
def test_path_under_refuses_escapes(part: str) -> None:
    with pytest.raises(ValueError, match="outside"):
        path_under("/exports", part)


def test_path_under_refuses_a_sibling_with_the_same_prefix() -> None:
    with pytest.raises(ValueError, match="outside"):
        path_under("/exports", "../exports-other")


def test_archive_name_prefixes_the_last_segment() -> None:
    assert archive_name(f"/exports/base/team-data-{UID}") == f"archived-team-data-{UID}"


def test_bounded_name_keeps_short_names_and_hashes_long_ones_apart() -> None:
    assert bounded_name("gce-prod", "disk-1") == "gce-prod-disk-1"
    first = bounded_name("b" * 63, "v" * 250 + "1")
    second = bounded_name("b" * 63, "v" * 250 + "2")
    assert len(first) <= 253 and len(second) <= 253
    assert first != second
    assert SAFE.match(first)
