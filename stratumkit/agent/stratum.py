"""A trio Stratum V1 client over the sans-I/O ClientConnection: what our miners and benches use.

`StratumClient.connect` opens the TCP stream (TLS over it when given an SSL context: see
`tls_context`) and runs a reader task in the caller's nursery.
Requests are awaited by id (`await client.call(client.conn.authorize, "w", "x")`); notifications
(notify, set_difficulty, extension messages) go to the `on_event` callback in arrival order.

With ``follow_reconnect``, a ``client.reconnect`` from the pool is kept in ``reconnect`` and ends
the connection, so its owner (see keep_connected) goes where the pool said. A request on a
connection that is gone raises StratumClientError, whichever way it went.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import trio

from stratumkit.protocol.client import ClientConnection, ClientState
from stratumkit.protocol.errors import LocalProtocolError, RemoteProtocolError
from stratumkit.protocol.events import (
    AuthorizeResult,
    ConfigureResult,
    ErrorReply,
    Event,
    GetVersion,
    Reconnect,
    Response,
    SubmitResult,
    SubscribeResult,
)
from stratumkit.protocol.framing import DEFAULT_MAX_LINE_LENGTH

from .pools import PoolEndpoint

_REPLIES = (SubscribeResult, AuthorizeResult, ConfigureResult, SubmitResult, Response, ErrorReply)


class StratumClientError(Exception):
    """The pool refused a request, or the connection ended while waiting for a reply."""


def tls_context(*, insecure: bool = False, cafile: str | None = None) -> ssl.SSLContext:
    """A client context for ``stratum+ssl://``: the system's CAs (or ``cafile``) and the host name
    checked, unless ``insecure`` (a self-signed pool certificate): then nothing is verified."""
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class StratumClient:
    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        user_agent: str = "stratumkit-client/0.1",
        on_event: Callable[[Event], None] | None = None,
        follow_reconnect: bool = False,
    ) -> None:
        self.stream = stream
        self.follow_reconnect = follow_reconnect
        #: the client.reconnect that ended this connection (with follow_reconnect)
        self.reconnect: Reconnect | None = None
        self.conn = ClientConnection(max_line_length=max_line_length)
        self.user_agent = user_agent
        self.on_event = on_event or (lambda event: None)
        self._waiters: dict[Any, tuple[trio.Event, list[Event]]] = {}
        self._send_lock = trio.Lock()
        self.closed = trio.Event()

    @classmethod
    async def connect(
        cls, nursery: trio.Nursery, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None, **kwargs: Any
    ) -> StratumClient:
        """Connect (over TLS when ``ssl_context`` is given: the handshake is done before this returns)."""
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        if ssl_context is not None:
            tls = trio.SSLStream(stream, ssl_context, server_hostname=host)
            try:
                await tls.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            stream = tls
        client = cls(stream, **kwargs)
        nursery.start_soon(client.read_loop)
        return client

    @classmethod
    async def open(
        cls, nursery: trio.Nursery, endpoint: PoolEndpoint, context: ssl.SSLContext | None, **kwargs: Any
    ) -> StratumClient:
        """A client of ours on a configured endpoint: TLS with ``context`` for stratum+ssl, and
        following the pool's client.reconnect."""
        ssl_context = context if endpoint.tls else None
        return await cls.connect(
            nursery, endpoint.host, endpoint.port, ssl_context=ssl_context, follow_reconnect=True, **kwargs
        )

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            async with self._send_lock:
                await self.stream.send_all(data)

    async def call(self, request: Callable[..., int], *args: Any, **kwargs: Any) -> Event:
        """Send one request made by a ClientConnection method and wait for its reply event."""
        if self.closed.is_set():
            raise StratumClientError("the pool connection is closed")
        try:
            request_id = request(*args, **kwargs)
        except LocalProtocolError as exc:
            if self.conn.state in (ClientState.CLOSED, ClientState.ERROR):
                raise StratumClientError(str(exc)) from None
            raise
        done = trio.Event()
        box: list[Event] = []
        self._waiters[request_id] = (done, box)
        try:
            await self.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, LocalProtocolError) as exc:
            self._waiters.pop(request_id, None)
            raise StratumClientError(f"the pool connection is gone: {exc or type(exc).__name__}") from None
        await done.wait()
        if not box:
            raise StratumClientError("connection closed before the reply")
        return box[0]

    async def handshake(
        self, worker: str, password: str = "x", *, version_rolling: bool = False, session_id: str | None = None
    ) -> SubscribeResult:
        if version_rolling:
            reply = await self.call(self.conn.configure, version_rolling_mask=0x1FFFE000)
            if isinstance(reply, ErrorReply):
                raise StratumClientError(f"configure refused: {reply.message}")
        sub = await self.call(self.conn.subscribe, self.user_agent, session_id)
        if not isinstance(sub, SubscribeResult):
            raise StratumClientError(f"subscribe refused: {sub}")
        auth = await self.call(self.conn.authorize, worker, password)
        if not (isinstance(auth, AuthorizeResult) and auth.ok):
            raise StratumClientError(f"authorize refused: {auth}")
        return sub

    async def read_loop(self) -> None:
        try:
            while True:
                try:
                    data = bytes(await self.stream.receive_some(65536))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                try:
                    events = self.conn.receive_data(data)
                except RemoteProtocolError:
                    return
                for event in events:
                    if isinstance(event, _REPLIES):
                        waiter = self._waiters.pop(getattr(event, "id", None), None)
                        if waiter is not None:
                            waiter[1].append(event)
                            waiter[0].set()
                            continue
                    if isinstance(event, GetVersion):
                        self.conn.respond(event.id, self.user_agent)
                    self.on_event(event)
                    if isinstance(event, Reconnect) and self.follow_reconnect:
                        self.reconnect = self._same_host_kept(event)
                        return
                try:
                    await self.flush()  # answers to the pool's requests (client.get_version)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return  # closed under us: the connection is over
                if not data:
                    return
        finally:
            self.closed.set()
            for done, _ in self._waiters.values():
                done.set()
            self._waiters.clear()
            await trio.aclose_forcefully(self.stream)

    def _same_host_kept(self, event: Reconnect) -> Reconnect:
        """A reconnect to the address we are connected to names no host: the one we dialled is
        kept (a pool says its IP address, and a TLS certificate names its host name)."""
        stream = self.stream
        while isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        if event.host is not None and isinstance(stream, trio.SocketStream):
            try:
                peer = stream.socket.getpeername()[0]
            except OSError:
                return event
            if event.host == peer:
                return Reconnect(None, event.port, event.wait)
        return event

    async def aclose(self) -> None:
        await self.stream.aclose()
