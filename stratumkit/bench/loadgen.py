"""The closed-loop load shape of `stratumkit bench pool`, TLS sockets, and the send floor.

Closed loop is what real miners do: each connection keeps `in_flight` shares outstanding and sends
the next one only when a reply comes back, so the server sees one share per read instead of the
bursts an open-loop generator makes. The generator's per-share work is kept small, so that with
10,000 connections it stays out of the way of the server it measures: submit lines are built in
batches from nonces scanned ahead (the share difficulty is tiny, so most nonces qualify), replies
are recognised by their byte layout (`{"id":N,"result":true,...`) and never JSON-decoded.

The send floor answers "how fast could any single Python thread push one notify line to N
sockets on this machine": it is the yardstick for the server's own fan-out time.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stratumkit.protocol.events import Notify, SetDifficulty

if TYPE_CHECKING:
    from stratumkit.bench.pool import Load, Miner

_BATCH = 256  # submit lines built at a time per connection
_READ = 262144


def make_cert(directory: str, names: str = "IP:127.0.0.1,DNS:localhost") -> tuple[str, str]:
    """A throwaway self-signed P-256 certificate for `names` (subjectAltName): (cert path, key path)."""
    cert, key = str(Path(directory) / "cert.pem"), str(Path(directory) / "key.pem")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-days", "1", "-subj", "/CN=localhost", "-addext", f"subjectAltName={names}"),
            *("-keyout", key, "-out", cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def client_context() -> ssl.SSLContext:
    """Miners on a bench do not verify the pool: the certificate is the one the bench just made."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def open_socket(port: int, tls: ssl.SSLContext | None) -> socket.socket:
    """A connected non-blocking socket; with `tls` the handshake is left to the event loop
    (`handshake`), so thousands of them proceed at once instead of one round trip each in turn."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    if tls is not None:
        sock = tls.wrap_socket(sock, do_handshake_on_connect=False)
    return sock


def handshake(sock: socket.socket) -> bool:
    """One step of a non-blocking TLS handshake: True once it is done."""
    assert isinstance(sock, ssl.SSLSocket)
    try:
        sock.do_handshake()
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False
    return True


def recv_ready(sock: socket.socket) -> bytes:
    """All bytes readable now (b"" if none); ConnectionError when the peer closed. A TLS socket
    hands out one record per call and may hold decrypted bytes epoll cannot see, so it is read
    until it would block."""
    if not isinstance(sock, ssl.SSLSocket):
        try:
            data = sock.recv(_READ)
        except BlockingIOError:
            return b""
        if not data:
            raise ConnectionError("closed")
        return data
    chunks: list[bytes] = []
    while True:
        try:
            chunk = sock.recv(_READ)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            break
        if not chunk:
            if chunks:
                break
            raise ConnectionError("closed")
        chunks.append(chunk)
    return b"".join(chunks)


def send_some(sock: socket.socket, data: bytes) -> int:
    """Bytes of `data` the socket took now (0 if it would block)."""
    try:
        return sock.send(data)
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return 0


class _Closed:
    """One connection's closed-loop state, beside its `Miner`."""

    __slots__ = ("buf", "lines", "miner", "next_id", "out", "sent_at")

    def __init__(self, miner: Miner) -> None:
        self.miner = miner
        self.buf = b""
        self.out = b""
        self.lines: list[tuple[int, bytes]] = []
        self.sent_at: dict[int, float] = {}
        self.next_id = 1 << 20  # clear of the ids the handshake used

    def refill(self) -> None:
        """The next batch of valid submit lines, newest last (`pop` takes from the end)."""
        miner = self.miner
        job = miner.current_job()
        assert job is not None
        head = (
            f',"method":"mining.submit","params":["bench.worker","{job.job_id}",'
            f'"{miner.extranonce2.hex()}","{job.ntime:08x}","'
        ).encode()
        rid = self.next_id
        lines = [
            (rid + i, b'{"id":%d%s%08x"]}\n' % (rid + i, head, nonce))
            for i, nonce in enumerate(miner.make_shares(_BATCH))
        ]
        self.next_id = rid + len(lines)
        lines.reverse()
        self.lines = lines

    def take(self, n: int, now: float) -> bytes:
        out = []
        for _ in range(n):
            if not self.lines:
                self.refill()
            rid, line = self.lines.pop()
            self.sent_at[rid] = now
            out.append(line)
        return b"".join(out)


class ClosedLoop:
    """Every connection of `load` in closed loop, in one epoll loop."""

    def __init__(self, load: Load, in_flight: int) -> None:
        self.load = load
        self.in_flight = in_flight
        self.states = {fd: _Closed(m) for fd, m in load.miners.items()}
        self.accepted = 0
        self.rejected = 0
        self.latencies: list[float] = []
        self.measuring = False
        self.sending = True

    def _notification(self, state: _Closed, line: bytes) -> None:
        for event in state.miner.conn.receive_data(line + b"\n"):
            if isinstance(event, Notify):
                state.miner.notify = event
                state.miner.job = None
                if event.clean_jobs:
                    state.lines = []  # build the next shares on the new job
            elif isinstance(event, SetDifficulty):
                state.miner.difficulty = event.difficulty

    def _flush(self, fd: int, state: _Closed, data: bytes) -> None:
        data = state.out + data
        sent = send_some(state.miner.sock, data)
        if state.out and sent == len(data):
            self.load.epoll.modify(fd, select.EPOLLIN)
        elif not state.out and sent < len(data):
            self.load.epoll.modify(fd, select.EPOLLIN | select.EPOLLOUT)
        state.out = data[sent:]

    def _step(self, timeout: float) -> None:
        states = self.states
        latencies = self.latencies
        for fd, events in self.load.epoll.poll(timeout):
            state = states[fd]
            if events & select.EPOLLOUT and state.out:
                self._flush(fd, state, b"")
            try:
                data = recv_ready(state.miner.sock)
            except ConnectionError:
                raise RuntimeError(f"the server closed miner {state.miner.index}'s connection") from None
            if not data:
                continue
            now = time.perf_counter()
            lines = (state.buf + data).split(b"\n")
            state.buf = lines.pop()
            replies = 0
            for line in lines:
                comma = line.find(b",", 6)
                if line.startswith(b'{"id":') and line[6] != 110:  # 110: "n" of a notification's null id
                    sent = state.sent_at.pop(int(line[6:comma]), None)
                    if sent is None:
                        continue
                    replies += 1
                    if self.measuring:
                        latencies.append(now - sent)
                        if line.startswith(b',"result":true', comma):
                            self.accepted += 1
                        else:
                            self.rejected += 1
                else:
                    self._notification(state, line)
            if replies and self.sending:
                self._flush(fd, state, state.take(replies, time.perf_counter()))

    def run(self, warmup: float, seconds: float, on_start: Callable[[], None], on_stop: Callable[[], None]) -> float:
        """Warm up, measure for `seconds` (calling the hooks at the edges), then let every
        outstanding share land; returns the measured wall time."""
        now = time.perf_counter()
        for fd, state in self.states.items():
            self._flush(fd, state, state.take(self.in_flight, now))
        start = time.perf_counter() + warmup
        while time.perf_counter() < start:
            self._step(0.005)
        on_start()
        self.measuring = True
        t0 = time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end:
            self._step(0.005)
        self.measuring = False
        elapsed = time.perf_counter() - t0
        on_stop()
        self.sending = False
        deadline = time.perf_counter() + 60
        while any(s.sent_at for s in self.states.values()):
            if time.perf_counter() > deadline:
                raise TimeoutError("replies to the last shares never came")
            self._step(0.01)
        for state in self.states.values():  # whatever partial line is left belongs to the miner again
            if state.buf:
                state.miner.conn.receive_data(state.buf)
        return elapsed


# ------------------------------------------------------------------------------------------------
# The single-thread send floor


def _drain(port_out: int, count: int) -> None:
    """Child process: accept `count` connections and read them all until they close."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    os.write(port_out, f"{listener.getsockname()[1]}\n".encode())
    epoll = select.epoll()
    socks: dict[int, socket.socket] = {}
    accepted = 0
    while accepted < count:
        sock, _ = listener.accept()
        sock.setblocking(False)
        socks[sock.fileno()] = sock
        epoll.register(sock.fileno(), select.EPOLLIN)
        accepted += 1
    while socks:
        for fd, _ in epoll.poll(1.0):
            try:
                data = socks[fd].recv(_READ)
            except BlockingIOError:
                continue
            if not data:
                epoll.unregister(fd)
                socks.pop(fd).close()


def send_floor(connections: int, line_bytes: int) -> float:
    """Seconds one thread takes to send one `line_bytes` line to each of `connections` already
    connected loopback sockets, drained by a separate receiver process; only the sends are timed
    (best of three rounds)."""
    read_fd, write_fd = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-c", f"from stratumkit.bench.loadgen import _drain; _drain({write_fd}, {connections})"],
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        port = int(pipe.readline())
    socks = []
    try:
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            socks.append(sock)
        line = b"x" * (line_bytes - 1) + b"\n"
        for sock in socks:  # one line first, untimed, so every socket's buffers exist already
            sock.send(line)
        best = float("inf")
        for _ in range(3):  # the fastest of three rounds: a floor, not one preempted sample
            time.sleep(0.2)  # the receivers have drained the previous round
            short = 0
            t0 = time.perf_counter()
            for sock in socks:
                if sock.send(line) != len(line):
                    short += 1
            best = min(best, time.perf_counter() - t0)
            if short:
                raise RuntimeError(f"{short} sends were short: the floor would be wrong")
        return best
    finally:
        for sock in socks:
            sock.close()
        child.wait(30)
