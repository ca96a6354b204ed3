"""The committed CSI bindings are what `make csi-proto` makes of the pinned .proto files."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "operator" / "stowage" / "csi" / "proto"


def test_the_committed_bindings_match_a_fresh_generation(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "csi-proto.sh"), str(tmp_path)],
        env={**os.environ, "GOPROXY": "off"},  # the sources must be cached: tests run offline
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (
        "scripts/csi-proto.sh failed. The .proto sources come from the Go module cache, which "
        "`bash scripts/install.sh` fills (download_proto_modules in "
        f"e2e/scripts/build-binaries.sh):\n{result.stderr[-3000:]}"
    )
    generated = sorted(path.name for path in tmp_path.iterdir())
    assert generated == sorted(path.name for path in PROTO_DIR.glob("*_pb2*"))
    stale = [
        name
        for name in generated
        if (tmp_path / name).read_text() != (PROTO_DIR / name).read_text()
    ]
    assert not stale, f"out of date (run `make csi-proto`): {stale}"
