"""Pool addresses (``stratum+tcp://``, ``stratum+ssl://``, ``host:port``) and the failover plan.

``parse_pool_url`` turns what a user types into a :class:`PoolEndpoint`, or raises ValueError
saying what is wrong. :class:`PoolPlan` decides, with no I/O and no clock, where the agent connects
next and after how long:

- pools are tried in the order given; a failed or lost connection moves on to the next one at once,
  and only after every pool failed in a row does the wait grow (0.5, 1, 2 ... 10 s);
- a connection that worked (handshake done) resets the backoff, and the next loss starts again
  from the first pool: "back to the first when it returns";
- while on a pool other than the first, ``probe_primary`` is true: the shell probes the first pool
  and, when it answers, ends the current connection to go back to it;
- ``client.reconnect`` from the pool (``follow_reconnect``) wins over all of that: the next try is
  to the given host and port (the same ones when not given), with the same TLS setting, after
  exactly the given wait, with no backoff added. A pool restarting gracefully says so before it
  is back, so while that address refuses, it is tried again every ``REDIRECT_RETRY_S`` (no backoff),
  ``REDIRECT_TRIES`` times; then the plan goes on as usual (failover included).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .backoff import Backoff

#: After a client.reconnect: how often, and how many times, its address is tried while it refuses.
REDIRECT_RETRY_S = 0.25
REDIRECT_TRIES = 40

SCHEMES = {"stratum+tcp": False, "stratum+ssl": True, "stratum+tls": True}


@dataclass(frozen=True, slots=True)
class PoolEndpoint:
    host: str
    port: int
    tls: bool = False

    def __str__(self) -> str:
        return f"{'stratum+ssl' if self.tls else 'stratum+tcp'}://{self.host}:{self.port}"


def parse_pool_url(text: str) -> PoolEndpoint:
    """``stratum+tcp://host:port``, ``stratum+ssl://host:port`` or ``host:port`` (plain TCP)."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "stratum+tcp", text
    if scheme not in SCHEMES:
        raise ValueError(f"pool URL {text!r}: the scheme must be one of {', '.join(sorted(SCHEMES))}")
    host, _, port = rest.rstrip("/").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"pool URL {text!r} must be HOST:PORT (or stratum+tcp:// / stratum+ssl://HOST:PORT)")
    return PoolEndpoint(host, int(port), SCHEMES[scheme])


@dataclass(frozen=True, slots=True)
class Attempt:
    endpoint: PoolEndpoint
    delay: float  # seconds to wait before connecting
    redirected: bool = False  # a client.reconnect target, not one of the configured pools


class PoolPlan:
    def __init__(self, pools: list[PoolEndpoint], backoff: Backoff | None = None) -> None:
        if not pools:
            raise ValueError("at least one pool is needed")
        self.pools = list(pools)
        self.backoff = backoff or Backoff(0.5, 10.0)
        self.index = 0  # the configured pool of the current (or last) attempt
        self._failures_in_row = 0
        self._redirect: Attempt | None = None
        self._on_redirect: Attempt | None = None
        self._redirect_tries = 0
        self._first = True

    def next_attempt(self) -> Attempt:
        self._on_redirect = self._redirect
        if self._redirect is not None:
            attempt, self._redirect = self._redirect, None
            return attempt
        delay = 0.0
        if self._first:
            self._first = False
        elif self._failures_in_row and self._failures_in_row % len(self.pools) == 0:
            delay = self.backoff.next_delay()  # every pool failed in this round
        return Attempt(self.pools[self.index], delay)

    def connected(self) -> None:
        """The handshake on the current attempt succeeded."""
        self._failures_in_row = 0
        self.backoff.reset()

    def failed(self, *, worked: bool) -> None:
        """The current attempt could not connect (``worked`` False) or its connection ended."""
        if worked:
            self.index = 0  # it had worked: start the list again from the first pool
            self._failures_in_row = 0
            return
        if self._on_redirect is not None:
            self._redirect_tries += 1
            if self._redirect_tries < REDIRECT_TRIES:  # not back yet: it said it would be
                self._redirect = replace(self._on_redirect, delay=REDIRECT_RETRY_S)
            return
        self._failures_in_row += 1
        self.index = (self.index + 1) % len(self.pools)

    def follow_reconnect(self, current: PoolEndpoint, host: str | None, port: int | None, wait: float | None) -> None:
        """The pool sent ``client.reconnect``: the next attempt goes where it said, after its wait."""
        target = replace(current, host=host or current.host, port=port or current.port)
        self._redirect = Attempt(target, max(0.0, wait or 0.0), redirected=True)
        self._redirect_tries = 0

    @property
    def probe_primary(self) -> bool:
        """On a fallback pool: the shell should watch for the first one to come back."""
        return self.index != 0
