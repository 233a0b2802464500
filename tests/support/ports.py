"""Loopback ports for what cannot bind port 0 and report back.

Servers of our own bind port 0 and the test reads the port back (`pool.port`, the "pool listening"
log line of `stratumkit serve`, `nursery.start`). Two kinds of port are left:

- a port that refuses connections: `refused_port()` keeps a socket bound to it without listening,
  so the kernel answers every connect with RST and nobody else can take it meanwhile;
- a port for a foreign server that must be told its port (bitcoind, redis-server): pick with
  `free_ports`, and start through `retry_on_bind_failure`, which picks again when the server
  could not bind because another process took the port between the pick and the bind.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from stratumkit.bench.ports import free_ports

T = TypeVar("T")

#: Tries before a server that keeps losing its ports fails the test.
BIND_ATTEMPTS = 5


class PortTaken(RuntimeError):
    """The server could not bind a port it was given (another process has it): pick again."""


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where connecting is refused, held (bound, never listening) until exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        yield port


def retry_on_bind_failure(start: Callable[[list[int]], T], count: int, attempts: int = BIND_ATTEMPTS) -> T:
    """`start(ports)` on `count` fresh free ports; again on new ones each time it raises PortTaken."""
    for attempt in range(1, attempts + 1):
        try:
            return start(free_ports(count))
        except PortTaken:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")
