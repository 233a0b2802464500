"""The I/O shell around one MiningSession: how its bytes reach the miner, and how it ends.

The shells share everything but the byte moving:
- `SocketConnection`: a TCP socket served by the pool's `SocketReactor`, which reads every ready
  connection in one wakeup, syncs the share log once, then writes each one's output with one
  non-blocking write. No task per connection. `TlsSocketConnection` is the same with TLS on
  in-memory BIOs between the socket and the session.
- `StreamConnection`: any trio stream (in-memory streams in tests, trio's SSLStream, a stream
  from another library), one task that reads, waits for the share-log batch of what it read,
  then hands the output to its writer.

Containment rules (one miner never affects another):
- Anything one connection raises ends that connection only.
- Output the kernel does not take at once waits in a bounded backlog; a miner that does not read
  (backlog past `send_queue` KiB, or a backlog older than `send_timeout`) is dropped: the pool
  never waits on it.
- Replies to accepted shares leave only once their share-log batch is durable; a batch that
  failed to write drops every connection it held output for, unacknowledged.
- Extension requests are handed to the extension port in arrival order, on a task of their own
  (started at the first one), so a slow call never holds up this connection's shares.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import structlog
import trio

from stratumkit.protocol.events import ExtensionRequest
from stratumkit.protocol.jsonrpc import RequestId
from stratumkit.session.mining import MiningSession
from stratumkit.session.ports import ExtensionPort, RigMode
from stratumkit.shares.log import ShareLog, ShareLogError

log = structlog.get_logger("stratumkit.session")


class MinerConnection:
    """One miner's connection: the session, its extension queue, and its way out (subclasses)."""

    def __init__(
        self,
        session: MiningSession,
        extensions: ExtensionPort,
        nursery: trio.Nursery,
        *,
        send_queue_bytes: int,
        on_close: Callable[[MinerConnection], None],
    ) -> None:
        self.session = session
        self.extensions = extensions
        self.nursery = nursery
        self.send_queue_bytes = send_queue_bytes
        self._on_close = on_close
        self.closed = False
        self.holding = False  # output waits for a share-log batch
        self._requests: trio.MemorySendChannel[ExtensionRequest] | None = None
        self._logged_worker: str | None = None
        self._logged_version = False

    # ------------------------------------------------------------------ RigConnection

    @property
    def peer(self) -> str:
        return self.session.peer

    @property
    def worker(self) -> str | None:
        return self.session.worker

    @property
    def rig_id(self) -> str | None:
        return self.session.rig_id

    @property
    def accepted(self) -> int:
        return self.session.accepted

    @property
    def mode(self) -> RigMode:
        return self.session.mode

    def register_rig(self, rig_id: str) -> None:
        self.session.register_rig(rig_id)

    def set_mode(self, mode: RigMode, now: float, *, difficulty: float | None = None) -> None:
        self.session.set_mode(mode, now, difficulty=difficulty)
        self.flush()

    def respond(self, request_id: RequestId, result: Any) -> None:
        if not self.closed:
            self.session.respond(request_id, result)
            self.flush()

    def respond_error(self, request_id: RequestId, message: str) -> None:
        if not self.closed:
            self.session.respond_error(request_id, message)
            self.flush()

    def notify(self, method: str, params: Any) -> None:
        if not self.closed:
            self.session.notify(method, params)
            self.flush()

    def drop(self, reason: str) -> None:
        """Close this connection from anywhere (slow reader, timers, operator, lease layer)."""
        self.session.drop(reason)
        self.close()

    def local_address(self) -> tuple[str, int] | None:
        """The pool's address this miner reached (None when not a socket)."""
        return None

    # ------------------------------------------------------------------ shell

    def flush(self) -> None:
        """Send what the session queued, unless it must wait for the share log."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def after_read(self, requests: list[ExtensionRequest], accepted_before: int, now: float) -> None:
        """Bookkeeping after the session handled a read: logs, extension calls, rig shares."""
        session = self.session
        if session.worker is not None and self._logged_worker is None:
            self._logged_worker = session.worker
            log.info("miner authorized", peer=session.peer, worker=session.worker, user_agent=session.conn.user_agent)
        if session.miner_version is not None and not self._logged_version:
            self._logged_version = True
            log.info("miner version", peer=session.peer, worker=session.worker, version=session.miner_version)
        for request in requests:
            self._queue_request(request)
        if session.rig_id is not None and session.accepted != accepted_before:
            self.extensions.on_accepted(self, now)

    def _queue_request(self, request: ExtensionRequest) -> None:
        if self._requests is None:
            send, receive = trio.open_memory_channel[ExtensionRequest](256)
            self._requests = send
            self.nursery.start_soon(self._serve_requests, receive)
        try:
            self._requests.send_nowait(request)
        except trio.WouldBlock:
            self.drop("too many extension requests waiting")

    async def _serve_requests(self, receive: trio.MemoryReceiveChannel[ExtensionRequest]) -> None:
        async with receive:
            async for request in receive:
                if self.closed:
                    return
                try:
                    await self.extensions.handle(self, request)
                except Exception as exc:  # one rig's failure ends that rig's connection only
                    log.exception("extension call failed", peer=self.peer, method=request.method)
                    self.drop(f"internal error in {request.method}: {exc!r}")
                    return

    def _finish(self) -> None:
        """Common end of a connection: the extension queue, the rig hook, the pool's books."""
        if self._requests is not None:
            self._requests.close()
        session = self.session
        log.info(
            "connection closed",
            peer=session.peer,
            worker=session.worker,
            reason=session.drop_reason or "closed by miner",
            accepted=session.accepted,
            rejected=session.rejected,
        )
        self._on_close(self)
        if session.rig_id is not None:
            self.nursery.start_soon(self._closed_hook)

    async def _closed_hook(self) -> None:
        with trio.CancelScope(shield=True):
            try:
                await self.extensions.on_closed(self)
            except Exception:
                log.exception("rig disconnect handling failed", peer=self.peer, rig=self.rig_id)


class SocketConnection(MinerConnection):
    """A plain TCP connection served by the reactor: non-blocking reads and writes on its fd."""

    def __init__(
        self,
        sock: trio.socket.SocketType,
        session: MiningSession,
        extensions: ExtensionPort,
        nursery: trio.Nursery,
        *,
        send_queue_bytes: int,
        on_close: Callable[[MinerConnection], None],
        want_write: Callable[[SocketConnection, bool], None],
    ) -> None:
        super().__init__(session, extensions, nursery, send_queue_bytes=send_queue_bytes, on_close=on_close)
        self.sock = sock
        self.fd = sock.fileno()
        self.backlog = bytearray()
        self.backlog_since = 0.0
        self._want_write = want_write

    def local_address(self) -> tuple[str, int] | None:
        try:
            host, port = self.sock.getsockname()[:2]
        except OSError:
            return None
        return str(host), int(port)

    def read(self, now: float, wall: float) -> None:
        """The socket is readable: one read, handed to the session."""
        try:
            data = os.read(self.fd, self.session.read_size)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self.deliver(data, now, wall)

    def deliver(self, data: bytes, now: float, wall: float) -> None:
        """Bytes from the miner (b"": it closed) to the session."""
        session = self.session
        accepted = session.accepted
        requests = session.receive_data(data, now, wall)
        self.after_read(requests, accepted, now)

    def flush(self) -> None:
        if self.closed or self.holding:
            return
        data = self.session.data_to_send()
        if data:
            self.write(data)

    def encode(self, data: bytes) -> bytes:
        """What goes on the wire for the session's bytes (TLS records, for TLS connections)."""
        return data

    def write(self, data: bytes) -> None:
        self.write_raw(self.encode(data))

    def write_raw(self, data: bytes) -> None:
        if not data:
            return
        if self.backlog:
            self.backlog += data
            if len(self.backlog) > self.send_queue_bytes:
                self.drop(f"slow reader: more than {self.send_queue_bytes // 1024} KiB unsent")
            return
        try:
            sent = os.write(self.fd, data)  # non-blocking: what the kernel takes now
        except BlockingIOError:
            sent = 0
        except OSError:
            self.drop("connection lost while sending")
            return
        if sent < len(data):
            self.backlog += data[sent:]
            self.backlog_since = trio.current_time()
            self._want_write(self, True)

    def writable(self) -> None:
        """The socket takes more: send the backlog."""
        if not self.backlog:
            self._want_write(self, False)
            return
        try:
            sent = os.write(self.fd, self.backlog)
        except BlockingIOError:
            return
        except OSError:
            self.drop("connection lost while sending")
            return
        del self.backlog[:sent]
        if not self.backlog:
            self._want_write(self, False)
        else:
            self.backlog_since = trio.current_time()

    def close(self) -> None:
        if self.closed:
            return
        self.holding = False
        if not self.backlog:  # goodbyes and error replies already answered, if the socket takes them
            try:
                data = self.encode(self.session.data_to_send())
                if data:
                    os.write(self.fd, data)
            except (OSError, ssl.SSLError):
                pass
        self.closed = True
        self._finish()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class TlsSocketConnection(SocketConnection):
    """A TLS connection served by the reactor like a plain one: the socket's bytes go through an
    in-memory TLS object (what trio's SSLStream uses inside), so TLS miners share the reactor's
    batching (one read, one share-log sync, one write per wakeup) instead of a task each."""

    def __init__(
        self,
        sock: trio.socket.SocketType,
        session: MiningSession,
        extensions: ExtensionPort,
        nursery: trio.Nursery,
        *,
        send_queue_bytes: int,
        on_close: Callable[[MinerConnection], None],
        want_write: Callable[[SocketConnection, bool], None],
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(
            sock,
            session,
            extensions,
            nursery,
            send_queue_bytes=send_queue_bytes,
            on_close=on_close,
            want_write=want_write,
        )
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._secure = False  # handshake done

    def deliver(self, data: bytes, now: float, wall: float) -> None:
        """The socket's bytes through TLS; the plaintext (and the end of it) to the session."""
        if not data:
            super().deliver(b"", now, wall)
            return
        self._incoming.write(data)
        tls = self._tls
        chunks: list[bytes] = []
        ended = False  # the miner's close_notify
        try:
            if not self._secure:
                try:
                    tls.do_handshake()
                except ssl.SSLWantReadError:
                    return
                finally:
                    self.write_raw(self._outgoing.read())
                self._secure = True
            while True:
                try:
                    chunk = tls.read(self.session.read_size)
                except ssl.SSLWantReadError:
                    break
                if not chunk:
                    ended = True
                    break
                chunks.append(chunk)
        except ssl.SSLZeroReturnError:
            ended = True
        except ssl.SSLError as exc:
            self.session.drop(f"TLS error: {exc.reason or exc}")
            return
        if self._outgoing.pending:  # post-handshake messages (session tickets)
            self.write_raw(self._outgoing.read())
        if chunks:  # what came before a close_notify still counts (a share may solve a block)
            super().deliver(b"".join(chunks), now, wall)
        if ended and not self.session.closing:
            super().deliver(b"", now, wall)

    def encode(self, data: bytes) -> bytes:
        if not data or not self._secure:
            return b""
        self._tls.write(data)
        return self._outgoing.read()

    def write(self, data: bytes) -> None:
        try:
            self.write_raw(self.encode(data))
        except ssl.SSLError as exc:
            self.drop(f"TLS error: {exc.reason or exc}")


class StreamConnection(MinerConnection):
    """A connection over any trio stream: a reader task (run) and a writer task it starts."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        session: MiningSession,
        extensions: ExtensionPort,
        nursery: trio.Nursery,
        share_log: ShareLog,
        *,
        send_queue_bytes: int,
        send_timeout: float,
        on_close: Callable[[MinerConnection], None],
    ) -> None:
        super().__init__(session, extensions, nursery, send_queue_bytes=send_queue_bytes, on_close=on_close)
        self.stream = stream
        self.share_log = share_log
        self.send_timeout = send_timeout
        self.backlog = bytearray()
        self._more = trio.Event()
        self._idle = trio.Event()
        self._sending = False
        self._writer_done = False
        self._cancel = trio.CancelScope()

    async def run(self) -> None:
        """Serve the connection until either side ends it; then close the stream."""
        with self._cancel:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer)
                    try:
                        await self._reader()
                    finally:
                        with trio.move_on_after(1.0):  # what was already answered, briefly
                            await self._drained()
                        nursery.cancel_scope.cancel()
            finally:
                if not self.closed:
                    self.closed = True
                    self._finish()
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self.stream)

    async def _reader(self) -> None:
        session = self.session
        while not session.closing:
            try:
                data = bytes(await self.stream.receive_some(session.read_size))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            now = trio.current_time()
            accepted = session.accepted
            requests = session.receive_data(data, now, time.time())
            batch = session.take_batch()
            if batch is not None:
                self.holding = True
                try:
                    await self.share_log.wait(batch)
                except ShareLogError as exc:
                    session.data_to_send()  # never acknowledge what is not on disk
                    log.error("share log write failed; dropping the connection unacknowledged", error=str(exc))
                    session.drop("share log unavailable")
                    return
                finally:
                    self.holding = False
            self.flush()
            self.after_read(requests, accepted, now)

    def flush(self) -> None:
        if self.closed or self.holding:
            return
        data = self.session.data_to_send()
        if data:
            self.backlog += data
            if len(self.backlog) > self.send_queue_bytes:
                self.drop(f"slow reader: more than {self.send_queue_bytes // 1024} KiB unsent")
                return
            self._more.set()

    async def _writer(self) -> None:
        try:
            while True:
                await self._more.wait()
                self._more = trio.Event()
                self._sending = True
                while self.backlog:
                    data = bytes(self.backlog)
                    self.backlog.clear()
                    with trio.fail_after(self.send_timeout):
                        await self.stream.send_all(data)
                self._sending = False
                self._idle.set()
                self._idle = trio.Event()
        except trio.TooSlowError:
            self.drop(f"slow reader: a send blocked for {self.send_timeout:g} s")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.drop("connection lost while sending")
        finally:
            self._sending = False
            self._writer_done = True
            self._idle.set()

    async def _drained(self) -> None:
        """Wait until the writer has sent everything queued (the caller bounds the wait)."""
        self.flush()
        while (self.backlog or self._sending) and not self._writer_done:
            await self._idle.wait()

    def close(self) -> None:
        self._cancel.cancel()


__all__ = ["MinerConnection", "SocketConnection", "StreamConnection"]
