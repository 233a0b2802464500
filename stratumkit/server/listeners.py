"""The pool's listening sockets, bound with a failure told as one line naming its key and flag.

Rules:
* Every port of a pool process (stratum, TLS stratum, HTTP API) is bound before any of its
  services starts (`stratumkit.app.App.run`, `Pool.run`), so a port in use ends the start before
  anything has run or logged.
* A port another process holds, or any other refusal of a valid address, is a `StartupFailure`
  (exit 1); an address that is not this machine's, a host name that does not resolve, or a
  privileged port is a `ConfigError` (exit 2): the configuration has to change.
"""

from __future__ import annotations

import errno
import socket

import trio

from stratumkit.failures import ConfigError, OperatorError, StartupFailure

from .config import flag_of

__all__ = ["bind_failure", "bind_socket", "open_listeners"]


def bind_failure(exc: OSError, host: str, port: int, *, port_key: str, host_key: str) -> OperatorError:
    """What an operator reads when `host`:`port` (the values of `host_key`, `port_key`) cannot be bound."""
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return ConfigError(f"{host_key} {host!r} does not resolve ({exc.strerror}): fix {flag_of(host_key)}")
    if exc.errno == errno.EADDRINUSE:
        return StartupFailure(
            f"{port_key} {port}: address {where} already in use (another process listens there:"
            f" stop it, or choose another port with {flag_of(port_key)})"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(f"{host_key} {host}: not an address of this machine: fix {flag_of(host_key)}")
    if exc.errno == errno.EACCES:
        return ConfigError(
            f"{port_key} {port}: permission denied on {where} (ports below 1024 need root or"
            f" CAP_NET_BIND_SERVICE): choose another with {flag_of(port_key)}"
        )
    return StartupFailure(f"{port_key} {port}: cannot listen on {where}: {exc.strerror or exc}")


async def open_listeners(host: str, port: int, *, port_key: str, host_key: str = "host") -> list[trio.SocketListener]:
    """`trio.open_tcp_listeners`, its failure as `bind_failure`."""
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise bind_failure(exc, host, port, port_key=port_key, host_key=host_key) from None


def bind_socket(host: str, port: int, *, port_key: str, host_key: str) -> socket.socket:
    """A listening TCP socket on `host`:`port` (for a server that takes one, such as hypercorn)."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        return socket.create_server(address, family=family, backlog=1024)
    except OSError as exc:
        raise bind_failure(exc, host, port, port_key=port_key, host_key=host_key) from None
