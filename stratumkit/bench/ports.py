"""Loopback ports for the `stratumkit serve` child of a benchmark.

The bench runs the pool with its logs at warning level (logging every miner would skew the
figures), so it cannot read the ports of a port-0 bind from the "listening" lines: it picks free
ports and hands them to the child. Another process may take one between the pick and the child's
bind; the child then exits at start, and `serve_on_free_ports` starts it again on new ports.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack

#: Starts before a child that keeps exiting at start is reported as broken.
ATTEMPTS = 5


def free_port() -> int:
    """A loopback port that is free right now (not reserved: see `serve_on_free_ports`)."""
    (port,) = free_ports(1)
    return port


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports free right now (all held while choosing, so none repeats)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def serve_on_free_ports(
    launch: Callable[[list[int]], subprocess.Popen[bytes]], count: int, *, timeout: float = 30.0
) -> tuple[subprocess.Popen[bytes], list[int]]:
    """`launch(ports)` on `count` free ports until the child listens on all of them: (child, ports).

    A child that exits before it listens is started again on new ports (ATTEMPTS in all)."""
    for _ in range(ATTEMPTS):
        ports = free_ports(count)
        proc = launch(ports)
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if all(_accepts(port) for port in ports) and proc.poll() is None:
                return proc, ports
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"the server did not listen on ports {ports} within {timeout:g} s")
            time.sleep(0.05)
    raise RuntimeError(f"the server exited at start {ATTEMPTS} times (last status {proc.returncode})")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, and a kill if it has not exited within `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
