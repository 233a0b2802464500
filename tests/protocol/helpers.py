"""Test helpers: a client and a server joined in memory, and byte-feeding variants."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from stratumkit.protocol import (
    Authorize,
    ClientConnection,
    Event,
    Notify,
    ServerConnection,
    Subscribe,
)

EXTENSION = "stratumkit.lease.register"

#: A job made of real chain data: the ckpool notify in vectors.CKPOOL_NOTIFY.
CKPOOL_JOB = Notify(
    job_id="6920bab400003e78",
    prevhash="2054771533c6373887fb44c6081b230c58336592000189f80000000000000000",
    coinb1="01000000010000000000000000000000000000000000000000000000000000000000000000"
    "ffffffff3503a61e0e000489b4276904a9b1a0040c",
    coinb2="0a636b706f6f6c112f736f6c6f2e636b706f6f6c2e6f72672fffffffff03998761120000000022"
    "0020984a77c289084ff2d434c316bdada021c6c183d507c8a20d3b159b09ac02fe28fd076000000000001600"
    "1451ed61d2f6aa260cc72cdf743e4e436a82c010270000000000000000266a24aa21a9edb0a313a2d4aa37ad"
    "d593e7b0c6bff97083472d58501b3cc1b97ed24fb453444900000000",
    merkle_branch=(),
    version="20000000",
    nbits="1701e2a0",
    ntime="6927b489",
    clean_jobs=True,
)


class ConnectionPair:
    """A ClientConnection and a ServerConnection wired back to back, in memory."""

    def __init__(self, **server_options: Any) -> None:
        server_options.setdefault("extension_methods", {EXTENSION})
        self.client = ClientConnection()
        self.server = ServerConnection(**server_options)

    def to_server(self) -> list[Event]:
        """Deliver everything the client queued; return the server's events."""
        return self.server.receive_data(self.client.data_to_send())

    def to_client(self) -> list[Event]:
        """Deliver everything the server queued; return the client's events."""
        return self.client.receive_data(self.server.data_to_send())

    def handshake(
        self,
        *,
        extranonce1: str = "08000002",
        extranonce2_size: int = 4,
        username: str = "tb1qworker.rig1",
    ) -> None:
        """subscribe + authorize, granted; leaves both sides AUTHORIZED with nothing queued."""
        self.client.subscribe("stratumkit-test/1.0")
        self.client.authorize(username, "x")
        subscribe, authorize = self.to_server()
        assert isinstance(subscribe, Subscribe) and isinstance(authorize, Authorize)
        self.server.respond_subscribe(subscribe.id, extranonce1, extranonce2_size)
        self.server.respond(authorize.id, True)
        self.to_client()


def feed_whole(receive: Callable[[bytes], list[Event]], data: bytes) -> list[Event]:
    return receive(data)


def feed_bytewise(receive: Callable[[bytes], list[Event]], data: bytes) -> list[Event]:
    events: list[Event] = []
    for index in range(len(data)):
        events += receive(data[index : index + 1])
    return events


FEEDERS = {"whole": feed_whole, "bytewise": feed_bytewise}


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
