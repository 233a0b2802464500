"""Every plain-TCP miner connection on one epoll set, served in batches from one trio task.

A wakeup (trio says the epoll fd is readable) serves every connection that is ready at once:
read each one and hand the bytes to its session; then write and fdatasync the share log's open
batch once, for all of them; then send each connection's output with one non-blocking write.
So a share's reply is never sent before the share is on disk, the sync is shared by everything
that arrived together, and nothing per connection costs a task switch, a cancel scope or a
second queue. Sockets that would not take everything are watched for writability too.

Rules:
- Nothing in a wakeup awaits: between a read and its reply no other task runs, so no other
  task's output can overtake a held reply, and no reply leaves before its batch is durable.
- A failed share-log write drops every connection that accepted a share in that wakeup, with
  nothing of that read answered; the others are served as usual.
- One connection's exception closes that connection only.
- A wakeup serves at most `max_events` ready connections; the rest wait for the next one, so
  the trio loop (timers, the API, template updates) is never starved.
"""

from __future__ import annotations

import select
import time

import structlog
import trio

from stratumkit.shares.log import ShareLog

from .connection import SocketConnection

log = structlog.get_logger("stratumkit.reactor")

_READ = select.EPOLLIN | select.EPOLLRDHUP
_READ_WRITE = _READ | select.EPOLLOUT
_HANGUP = select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP


class SocketReactor:
    def __init__(self, share_log: ShareLog, *, max_events: int = 1024) -> None:
        self.share_log = share_log
        self.max_events = max_events
        self._epoll = select.epoll()
        self._conns: dict[int, SocketConnection] = {}

    def add(self, conn: SocketConnection) -> None:
        self._conns[conn.fd] = conn
        self._epoll.register(conn.fd, _READ)

    def remove(self, conn: SocketConnection) -> None:
        if self._conns.get(conn.fd) is conn:
            del self._conns[conn.fd]
            if not self._epoll.closed:
                self._epoll.unregister(conn.fd)

    def want_write(self, conn: SocketConnection, on: bool) -> None:
        if self._conns.get(conn.fd) is conn and not self._epoll.closed:
            self._epoll.modify(conn.fd, _READ_WRITE if on else _READ)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await trio.lowlevel.wait_readable(self._epoll.fileno())
                self.serve_ready()
        finally:
            self._epoll.close()

    def serve_ready(self) -> None:
        """One wakeup: read every ready connection, sync the share log once, write each reply."""
        try:
            ready = self._epoll.poll(0, self.max_events)
        except InterruptedError:
            return
        if not ready:
            return
        now = trio.current_time()
        wall = time.time()
        conns = self._conns
        served: list[SocketConnection] = []
        logged: list[SocketConnection] = []  # those that accepted shares in this wakeup
        for fd, mask in ready:
            conn = conns.get(fd)
            if conn is None:
                continue
            try:
                if mask & select.EPOLLOUT:
                    conn.writable()
                if mask & (select.EPOLLIN | _HANGUP):
                    conn.holding = True
                    served.append(conn)
                    conn.read(now, wall)
                    if conn.session.take_batch() is not None:
                        logged.append(conn)
            except Exception as exc:  # one miner's failure must never reach the server
                log.exception("connection failed", peer=conn.peer)
                conn.session.drop(f"internal error: {exc!r}")
        if self.share_log.pending:
            batch = self.share_log.sync_now()
            if batch.error is not None:
                log.error("share log write failed; dropping connections unacknowledged", error=str(batch.error))
                for conn in logged:
                    conn.session.data_to_send()  # never acknowledge what is not on disk
                    conn.session.drop("share log unavailable")
        for conn in served:
            conn.holding = False
            try:
                if conn.session.closing:
                    conn.close()
                else:
                    conn.flush()
            except Exception as exc:
                log.exception("connection failed", peer=conn.peer)
                conn.session.drop(f"internal error: {exc!r}")
                conn.close()


__all__ = ["SocketReactor"]
