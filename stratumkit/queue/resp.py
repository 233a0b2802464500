"""A lean RESP2 connection for the Redis queue engine's hot path: its scripts.

coredis stays the engine's client for everything else (reads, the lease store on the same pool);
the scripts the queue runs per batch (enqueue, claim, ack) go through this instead, because
coredis spends a few hundred microseconds of CPU on every call (request objects, retries, a
writer and a reader task, timeouts) against a few tens here: at a claim of 16 and an ack of 16
per round trip that was most of the drain's time.

What it does: plain `redis://[user:password@]host[:port][/db]` URLs (anything else, such as TLS or
a unix socket, gets `None` from `RawPool.from_url` and the engine keeps coredis), RESP2 encoded
and parsed by hiredis (the C parser redis-py uses), one call at a time per connection. A pool hands
each concurrent call a connection of its own (opened on demand, up to `MAX_IDLE` kept while
idle); a call cut short by cancellation or an error closes its connection, because where its reply
stands on the wire is unknown.
"""

from __future__ import annotations

import socket
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
import trio

Arg = str | bytes | int
#: Seconds a new connection (TCP, then AUTH and SELECT) may take.
CONNECT_TIMEOUT = 10.0
#: Idle connections a pool keeps for the next calls; a burst of more concurrent calls closes the rest.
MAX_IDLE = 16


class RespError(Exception):
    """An error reply from the server, or a reply the parser cannot read."""


class ConnectionLost(RespError):
    """The connection broke (or the server closed it) before the reply came."""


class UnreadableReply(RespError):
    """Bytes the parser does not understand: the connection is out of step."""


def encode_command(args: tuple[Arg, ...]) -> bytes:
    """One command in RESP (hiredis's encoder; it refuses arguments other than str, bytes and numbers)."""
    packed: bytes = hiredis.pack_command(cast(Any, args))  # its stub types the tuple as one item long
    return packed


def reply_reader() -> hiredis.Reader:
    """hiredis's RESP2 reader: error replies come back as `RespError` values (inside arrays too),
    for the caller to raise; bytes it cannot read raise `UnreadableReply`."""
    return hiredis.Reader(replyError=RespError, protocolError=UnreadableReply)


class RawConnection:
    """One connection, one call at a time, on a non-blocking socket of its own: a call sends its
    command and reads its reply with plain socket calls and waits through trio only when the
    socket is not ready (once per call, for the reply), instead of trio's stream wrappers, which
    give the scheduler a turn after every send and receive (a loop iteration each, a few tens of
    microseconds)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = reply_reader()

    @classmethod
    async def open(cls, host: str, port: int, setup: list[tuple[Arg, ...]]) -> RawConnection:
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await trio.open_tcp_stream(host, port)  # (TCP_NODELAY set)
                sock = socket.socket(fileno=stream.socket.detach())
                sock.setblocking(False)
                conn = cls(sock)
                try:
                    for command in setup:
                        await conn.call(*command)
                except BaseException:
                    await conn.aclose()
                    raise
        except trio.TooSlowError:
            raise ConnectionLost(f"no connection to Redis at {host}:{port} within {CONNECT_TIMEOUT:.0f} s") from None
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to Redis at {host}:{port}: {exc}") from exc
        return conn

    async def call(self, *args: Arg) -> Any:
        try:
            return await self._call(args)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(f"connection to Redis lost: {exc!r}") from exc

    async def _call(self, args: tuple[Arg, ...]) -> Any:
        sock, waited = self._sock, False
        data = memoryview(encode_command(args))
        while data:
            try:
                data = data[sock.send(data) :]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                waited = True
        while True:
            value = self._reader.gets()
            if value is not False:  # False: no whole reply yet
                if not waited:  # every call is a checkpoint, as trio's own I/O is
                    await trio.lowlevel.checkpoint()
                if isinstance(value, RespError):
                    raise value
                return value
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
                waited = True
                continue
            if not chunk:
                raise ConnectionLost("Redis closed the connection")
            self._reader.feed(chunk)

    async def aclose(self) -> None:
        if self._sock.fileno() != -1:
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()
        await trio.lowlevel.cancel_shielded_checkpoint()


class RawPool:
    """Connections to one server for concurrent calls: one each, reused once idle."""

    def __init__(self, host: str, port: int, setup: list[tuple[Arg, ...]]) -> None:
        self._host, self._port, self._setup = host, port, setup
        self._idle: list[RawConnection] = []
        self._closed = False

    @classmethod
    def from_url(cls, url: str) -> RawPool | None:
        """A pool for a plain redis:// URL; None for what this client does not speak."""
        parts = urlsplit(url)
        if parts.scheme != "redis" or parts.query or parts.fragment or not parts.hostname:
            return None
        setup: list[tuple[Arg, ...]] = []
        if parts.password is not None:
            user = unquote(parts.username) if parts.username else "default"
            setup.append(("AUTH", user, unquote(parts.password)))
        db = parts.path.strip("/")
        if db:
            if not db.isdigit():
                return None
            setup.append(("SELECT", int(db)))
        return cls(parts.hostname, parts.port or 6379, setup)

    async def call(self, *args: Arg) -> Any:
        """The reply to one command. A reused connection found broken (the server restarted while
        it was idle) is replaced and the command sent once more on a new one, as coredis' retry
        does: a command is never lost to a stale connection, and one whose reply was lost may run
        twice (the engine's scripts are safe to repeat or, for a claim, leave a job to its timeout)."""
        if self._closed:
            raise RespError("the connection pool is closed")
        if self._idle:
            try:
                return await self._call_on(self._idle.pop(), args)
            except ConnectionLost:
                pass
        return await self._call_on(await RawConnection.open(self._host, self._port, self._setup), args)

    async def _call_on(self, conn: RawConnection, args: tuple[Arg, ...]) -> Any:
        try:
            reply = await conn.call(*args)
        except (ConnectionLost, UnreadableReply):
            await conn.aclose()
            raise
        except RespError:  # an error reply: the connection is in step
            await self._keep(conn)
            raise
        except BaseException:  # cancelled mid-call: where its reply stands is unknown
            await conn.aclose()
            raise
        await self._keep(conn)
        return reply

    async def _keep(self, conn: RawConnection) -> None:
        if self._closed or len(self._idle) >= MAX_IDLE:
            await conn.aclose()
        else:
            self._idle.append(conn)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.aclose()
