"""Pool test helpers: a pool on port 0 in the test's nursery, and a raw socket for bad input.

Difficulties are chosen so that work is cheap: at share difficulty 1e-6 one nonce in ~4096 is a
share (well under a millisecond of scanning); the embedded chain's block difficulty decides how
rare blocks are (0.02: one share in ~20,000 is a block; 1e-4: one in ~100).

Miners, shares and waits live in tests/support (shared with the other directories); the names
the pool tests use are re-exported here.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import trio

from stratumkit.app import make_source
from stratumkit.server.config import PoolConfig
from stratumkit.server.pool import Pool
from stratumkit.shares.log import ShareLog
from tests.support.miners import Miner, assert_served
from tests.support.shares import Share, find_low_nonce, find_nonce, header_hash, make_share
from tests.support.waiting import TIMEOUT, close_when_cancelled, wait_until

__all__ = [
    "TIMEOUT",
    "Miner",
    "RawConnection",
    "Share",
    "assert_served",
    "close_when_cancelled",
    "error_code",
    "find_low_nonce",
    "find_nonce",
    "header_hash",
    "make_share",
    "pool_config",
    "reopen_share_log",
    "start_pool",
    "wait_until",
]


def pool_config(data_dir: Path, **overrides: Any) -> PoolConfig:
    """A loopback pool on a free port. Vardiff never raises (start = max) and lowers a quiet miner
    only after retarget_time (5 s), longer than any test here, unless overridden."""
    values: dict[str, Any] = dict(
        host="127.0.0.1",
        port=0,
        data_dir=str(data_dir),
        start_difficulty=1e-6,
        min_difficulty=1e-9,
        max_difficulty=1e-6,
        embedded_difficulty=0.02,
        share_interval=1.0,
        retarget_time=5.0,
    )
    values.update(overrides)
    return PoolConfig(**values)


async def start_pool(nursery: trio.Nursery, config: PoolConfig) -> Pool:
    """The pool as `stratumkit serve` builds it (embedded source from the config), started."""
    pool: Pool = await nursery.start(Pool(config, make_source(config)).run)
    return pool


async def reopen_share_log(directory: Path) -> int:
    """Open a share log as a restarting pool would (repairing a torn tail); its record count."""
    log = ShareLog(directory)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        nursery.cancel_scope.cancel()
    return log.records


# -------------------------------------------------------------------------------- raw lines


class RawConnection:
    """A socket speaking raw bytes, for input no well-behaved client would send."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buffer = b""
        self.eof = False
        self.notifications: list[dict[str, Any]] = []

    @classmethod
    async def connect(
        cls,
        nursery: trio.Nursery,
        port: int | None,
        *,
        host: str = "127.0.0.1",
        source: str | None = None,
        rcvbuf: int | None = None,
    ) -> RawConnection:
        assert port is not None, "the pool is not listening"
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if source is not None:
                await sock.bind((source, 0))
            await sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        stream = trio.SocketStream(sock)
        nursery.start_soon(close_when_cancelled, stream)
        return cls(stream)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_json(self, message: Any) -> None:
        await self.send(json.dumps(message).encode() + b"\n")

    async def read_message(self, timeout: float = TIMEOUT) -> dict[str, Any] | None:
        """The next JSON line from the pool, or None once it closed the connection."""
        with trio.fail_after(timeout):
            while b"\n" not in self._buffer:
                if self.eof:
                    return None
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    self.eof = True
                self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    async def reply_to(self, request_id: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The reply with this id; notifications that arrive first are kept in `notifications`."""
        while True:
            message = await self.read_message(timeout)
            assert message is not None, f"connection closed before the reply to {request_id!r}"
            if "method" in message:
                self.notifications.append(message)
            elif message.get("id") == request_id:
                return message

    async def request(self, request_id: Any, method: str, params: Any) -> dict[str, Any]:
        await self.send_json({"id": request_id, "method": method, "params": params})
        return await self.reply_to(request_id)

    async def handshake(self, worker: str = "raw.1") -> dict[str, Any]:
        """Subscribe and authorize; returns the subscribe reply. Notifications are kept."""
        sub = await self.request(1, "mining.subscribe", ["raw/1.0"])
        auth = await self.request(2, "mining.authorize", [worker, "x"])
        assert auth["result"] is True, auth
        return sub

    async def next_notify(self) -> list[Any]:
        """The params of the next mining.notify (kept ones first)."""
        while True:
            message = self.notifications.pop(0) if self.notifications else await self.read_message()
            assert message is not None, "connection closed before a mining.notify"
            if message.get("method") == "mining.notify":
                params: list[Any] = message["params"]
                return params

    async def wait_closed(self, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Read until the pool closes the connection; returns what it sent meanwhile."""
        seen = []
        while (message := await self.read_message(timeout)) is not None:
            seen.append(message)
        return seen

    async def aclose(self) -> None:
        await self.stream.aclose()


def error_code(reply: dict[str, Any]) -> int | None:
    error = reply.get("error")
    return None if error is None else int(error[0])
