"""Keep one stratum session going across pool losses: the loop `stratumkit agent` and `stratumkit mine` run.

A *session* is an async function that connects to one endpoint, calls ``task_status.started()``
once its handshake is done, and returns when the connection ends (the pool's ``client.reconnect``,
if it sent one, as its value). This loop runs sessions forever, as :class:`PoolPlan` says:

- a lost pool is never fatal: whatever the session raised for it (refused, reset, TLS failure, a
  request on a dead connection) is logged on one line and the next attempt is planned; any other
  exception is logged with its traceback and retried the same way, so a bug costs a reconnect,
  not the rig;
- ``client.reconnect`` is followed to the letter: its host and port after its wait, no backoff;
- on a fallback pool the first pool is probed (a TCP connect) every ``probe_interval`` seconds,
  and the session is ended to go back to it as soon as it answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
import trio

from stratumkit.protocol.errors import ProtocolError
from stratumkit.protocol.events import Reconnect

from .pools import PoolEndpoint, PoolPlan
from .stratum import StratumClientError

log = structlog.get_logger("stratumkit.agent")

Session = Callable[[PoolEndpoint, trio.TaskStatus[None]], Awaitable[Reconnect | None]]

#: What losing a pool looks like from the client side: one line in the log, then the next attempt.
POOL_LOST: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, name resolution, ssl.SSLError
    StratumClientError,
    ProtocolError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


def _reason(group: BaseExceptionGroup[BaseException]) -> str:
    exc = group.exceptions[0]
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    if not str(exc) and exc.__cause__ is not None:  # trio wraps the ssl.SSLError that broke a TLS stream
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _probe(endpoint: PoolEndpoint, interval: float, scope: trio.CancelScope) -> None:
    """Until the endpoint accepts a TCP connection; then end the session in ``scope``."""
    while True:
        await trio.sleep(interval)
        try:
            stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
        except OSError:
            continue
        await trio.aclose_forcefully(stream)
        log.info("first pool is back: switching to it", pool=str(endpoint))
        scope.cancel()
        return


async def _run_session(
    session: Session,
    endpoint: PoolEndpoint,
    outcome: list[Reconnect | None],
    scope: trio.CancelScope,
    task_status: trio.TaskStatus[None],
) -> None:
    outcome.append(await session(endpoint, task_status))
    scope.cancel()  # the probe, if any, has nothing left to do


async def keep_connected(
    session: Session,
    plan: PoolPlan,
    *,
    probe_interval: float = 5.0,
    on_connected: Callable[[PoolEndpoint], None] | None = None,
) -> None:
    """Run ``session`` against the plan's endpoints forever (cancel the caller to stop)."""
    while True:
        attempt = plan.next_attempt()
        if attempt.delay > 0:
            log.info("connecting to the pool", pool=str(attempt.endpoint), wait=round(attempt.delay, 3))
            await trio.sleep(attempt.delay)
        worked = False
        reconnect: Reconnect | None = None
        outcome: list[Reconnect | None] = []
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(_run_session, session, attempt.endpoint, outcome, nursery.cancel_scope)
                worked = True
                plan.connected()
                log.info("pool connected", pool=str(attempt.endpoint), redirected=attempt.redirected)
                if on_connected is not None:
                    on_connected(attempt.endpoint)
                if plan.probe_primary and not attempt.redirected:
                    nursery.start_soon(_probe, plan.pools[0], probe_interval, nursery.cancel_scope)
        except* POOL_LOST as group:
            log.warning("pool lost" if worked else "pool unreachable", pool=str(attempt.endpoint), error=_reason(group))
        except* Exception as group:
            log.error("pool session failed", pool=str(attempt.endpoint), error=_reason(group), exc_info=group)
        else:
            reconnect = outcome[0] if outcome else None
            if worked:
                log.warning("pool connection closed", pool=str(attempt.endpoint))
        if reconnect is not None:
            log.info(
                "pool asked us to reconnect",
                pool=str(attempt.endpoint),
                host=reconnect.host,
                port=reconnect.port,
                wait=reconnect.wait,
            )
            plan.follow_reconnect(attempt.endpoint, reconnect.host, reconnect.port, reconnect.wait)
        plan.failed(worked=worked)
