"""What the unit tests of stowage.csi share: gRPC channels to a unix socket, closed after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest


@pytest.fixture
def connect() -> Iterator[Callable[[Path], grpc.Channel]]:
    channels: list[grpc.Channel] = []

    def channel_to(socket: Path) -> grpc.Channel:
        channel = grpc.insecure_channel(f"unix://{socket}")
        channels.append(channel)
        return channel

    yield channel_to
    for channel in channels:
        channel.close()
