"""A lean RESP2 connection for the Redis queue engine's hot path: its scripts.

coredis stays the engine's client for everything else (reads, the lease store on the same pool);
the scripts the queue runs per batch (enqueue, claim, ack) go through this instead, because
coredis spends a few hundred microseconds of CPU on every call (request objects, retries, a
writer and a reader task, timeouts) against a few tens here: at a claim of 16 and an ack of 16
per round trip that was most of the drain's time.

What it does: plain `redis://[user:password@]host[:port][/db]` URLs (anything else, such as TLS or
a unix socket, gets `None` from `RawPool.from_url` and the engine keeps coredis), RESP2 replies
(simple strings, errors, integers, bulk strings, arrays), one call at a time per connection. A
pool hands each concurrent call a connection of its own (opened on demand, up to `MAX_IDLE` kept
while idle); a
call cut short by cancellation or an error closes its connection, because where its reply stands
on the wire is unknown.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import trio

Arg = str | bytes | int
#: Seconds a new connection (TCP, then AUTH and SELECT) may take.
CONNECT_TIMEOUT = 10.0
#: Idle connections a pool keeps for the next calls; a burst of more concurrent calls closes the rest.
MAX_IDLE = 16


class RespError(Exception):
    """An error reply from the server, or a reply this parser cannot read."""


class ConnectionLost(RespError):
    """The connection broke (or the server closed it) before the reply came."""


class UnreadableReply(RespError):
    """Bytes this parser does not understand: the connection is out of step."""


class _Incomplete(Exception):
    """The buffer ends before the reply does."""


def encode_command(args: tuple[Arg, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            data = b"%d" % arg
        else:
            raise TypeError(f"a Redis argument is str, bytes or int, not {type(arg).__name__}")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def parse_reply(buffer: bytes | bytearray, pos: int = 0) -> tuple[Any, int]:
    """One reply from `buffer` at `pos`: (value, position after it). Error replies come back as
    `RespError` values (inside arrays too), for the caller to raise. `_Incomplete` if the buffer
    ends first."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line = buffer[pos : pos + 1], bytes(buffer[pos + 1 : end])
    pos = end + 2
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, pos
        if len(buffer) < pos + size + 2:
            raise _Incomplete
        return bytes(buffer[pos : pos + size]), pos + size + 2
    if kind == b":":
        return int(line), pos
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            item, pos = parse_reply(buffer, pos)
            items.append(item)
        return items, pos
    if kind == b"+":
        return line, pos
    if kind == b"-":
        return RespError(line.decode(errors="replace")), pos
    raise UnreadableReply(f"unreadable reply from Redis: {bytes(buffer[pos - len(line) - 3 : end])!r}")


class RawConnection:
    """One connection, one call at a time."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    @classmethod
    async def open(cls, host: str, port: int, setup: list[tuple[Arg, ...]]) -> RawConnection:
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await trio.open_tcp_stream(host, port)
                conn = cls(stream)
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
        await self._stream.send_all(encode_command(args))
        while True:
            if self._buffer:
                try:
                    value, used = parse_reply(self._buffer)
                except _Incomplete:
                    pass
                else:
                    del self._buffer[:used]
                    if isinstance(value, RespError):
                        raise value
                    return value
            data = await self._stream.receive_some(65536)
            if not data:
                raise ConnectionLost("Redis closed the connection")
            self._buffer += data

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._stream.aclose()


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
