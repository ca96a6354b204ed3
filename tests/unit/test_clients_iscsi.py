"""Zeroing a released LUN: the pure parts (portals, chunks, messages, what is wiped)."""

from __future__ import annotations

from typing import Any

import pytest

from stowage.api.backend import StorageBackend
from stowage.clients import iscsi as wipe
from stowage.reconcilers.driving import lun_to_wipe
from stowage.reconcilers.wiping import lun_address

pytestmark = pytest.mark.unit

ISCSI: dict[str, Any] = {
    "portals": ["10.0.0.10", "[fd00::1]:3261"],
    "iqn": "iqn.2024-01.org.example:storage",
    "luns": [{"lun": 1, "size": "1Gi"}, {"lun": 2, "size": "2Gi"}],
}


def model(**iscsi: Any) -> StorageBackend:
    return StorageBackend.model_validate({"spec": {"iscsi": {**ISCSI, **iscsi}}})


def volume(lun: str | None) -> dict[str, Any]:
    annotations = {} if lun is None else {"stowage.io/lun": lun}
    return {"metadata": {"name": "pvc-1", "annotations": annotations}}


def test_portals_get_the_iscsi_port_and_brackets_for_ipv6() -> None:
    assert wipe.libiscsi_portal("10.0.0.10") == "10.0.0.10:3260"
    assert wipe.libiscsi_portal("san.example:3261") == "san.example:3261"
    assert wipe.libiscsi_portal("[fd00::1]") == "[fd00::1]:3260"
    assert wipe.libiscsi_portal("[fd00::1]:3261") == "[fd00::1]:3261"


def test_chunks_cover_every_block_once() -> None:
    per_chunk = wipe.CHUNK_BYTES // 512
    blocks = 3 * per_chunk + 7
    parts = list(wipe.chunks(blocks, 512))
    assert parts[0] == (0, per_chunk)
    assert parts[-1] == (3 * per_chunk, 7)
    covered = [lba for start, count in parts for lba in range(start, start + count)]
    assert covered == list(range(blocks))
    assert list(wipe.chunks(10, 4096, chunk_bytes=1024)) == [(lba, 1) for lba in range(10)]
    assert list(wipe.chunks(0, 512)) == []


def test_login_failures_in_words() -> None:
    refused = wipe.login_failure(
        "10.0.0.10:3260", "Failed to log in to target. Status: Authentication failure(513)"
    )
    assert refused.startswith("10.0.0.10:3260: the target refused the login (CHAP")
    unreachable = wipe.login_failure("10.0.0.10:3260", "Socket connect failed: Connection refused")
    assert "the portal cannot be reached" in unreachable
    unknown = wipe.login_failure(
        "10.0.0.10:3260", "Failed to log in to target. Status: Target not found(515)"
    )
    assert "does not know the IQN or LUN" in unknown


def test_chap_passwords_stay_out_of_reprs() -> None:
    chap = wipe.Chap("user", "secret-1", "target", "secret-2")
    assert "secret" not in repr(chap)


def test_speed_of_a_wipe() -> None:
    assert wipe.Wiped("p", 64 * 2**20, 2.0).mib_per_second == 32


def test_only_a_wiping_iscsi_backend_wipes_the_lun_its_volume_records() -> None:
    assert lun_to_wipe(model(), volume("2")) is None
    wiping = lun_to_wipe(model(wipeOnDelete=True), volume("2"))
    assert wiping is not None and wiping[1] == 2
    assert lun_to_wipe(model(wipeOnDelete=True), volume(None)) is None


def test_the_operator_logs_in_with_the_backends_initiator_name_or_its_own() -> None:
    spec = model(wipeOnDelete=True).spec.iscsi
    assert spec is not None
    address = lun_address(spec, 2)
    assert address.portals == ("10.0.0.10", "[fd00::1]:3261")
    assert (address.iqn, address.lun, address.initiator) == (
        ISCSI["iqn"],
        2,
        wipe.DEFAULT_INITIATOR,
    )
    named = model(initiatorName="iqn.2024-01.org.example:node").spec.iscsi
    assert named is not None
    assert lun_address(named, 1).initiator == "iqn.2024-01.org.example:node"


def test_libiscsi_has_every_function_used() -> None:
    try:
        lib = wipe.library()
    except wipe.WipeError:
        pytest.skip("libiscsi7 is not installed here")
    assert lib.iscsi_write16_sync.argtypes is not None
