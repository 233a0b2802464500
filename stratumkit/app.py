"""The composition root: the one place that builds the pool, the lease service and the API from a
configuration and wires them together.

Nothing below this module imports across the layers it joins: the pool knows the lease service
only as its extension port (`stratumkit.session.ports.ExtensionPort`), the lease service knows a
rig only as a `RigConnection`, and the API knows both only through `stratumkit.api.ports`.

    open_app(config)        template source, queue, lease service, pool (not yet running)
    App.run()               pool, lease service and (when api_port is set) the HTTP API
    serve(config)           `stratumkit serve`: App.run until SIGINT / SIGTERM
"""

from __future__ import annotations

import functools
import gc
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
import trio

from stratumkit.jobs.sources import EmbeddedTemplateSource, TemplateSource
from stratumkit.queue.engine import QueueEngine
from stratumkit.server.config import ConfigError, PoolConfig
from stratumkit.server.pool import Pool

if TYPE_CHECKING:
    from stratumkit.lease.service import LeaseService
    from stratumkit.power.service import PowerService

log = structlog.get_logger("stratumkit.serve")


def make_source(config: PoolConfig) -> TemplateSource:
    """The node's getblocktemplate when node_url is set, else the embedded chain."""
    if config.node_url is None:
        return EmbeddedTemplateSource(
            difficulty=config.embedded_difficulty,
            state_path=config.data_path / "embedded-chain.json",
            refresh_interval=config.template_refresh,
            filler_transactions=config.embedded_filler_transactions,
        )
    from stratumkit.jobs.node import NodeTemplateSource
    from stratumkit.jobs.rpc import NodeRPC

    rpc = NodeRPC(config.node_url, cookie_file=config.node_cookie)
    return NodeTemplateSource(
        rpc,
        poll_interval=config.node_poll_interval,
        refresh_interval=config.template_refresh,
        retry_max=config.node_retry_max,
    )


def open_queue(config: PoolConfig) -> AbstractAsyncContextManager[QueueEngine]:
    """The inference job queue: SQLite in the data directory, or Redis when queue_url says so."""
    if config.queue_url is None:
        from stratumkit.queue.sqlite import open_sqlite_queue

        return open_sqlite_queue(config.data_path / "queue.sqlite")
    if not config.queue_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"queue_url must be a redis:// URL, got {config.queue_url!r}")
    from stratumkit.queue.redis import open_redis_queue

    return open_redis_queue(config.queue_url)


def tune_gc() -> None:
    """Garbage collection for a long-running server with many connections.

    Every session holds long-lived objects, so each full collection walks a large heap; with
    10,000 miners that cost the pool about a third of its CPU per share when we measured it
    (`stratumkit bench pool`). Objects alive once the pool is up are moved out of the collector's
    view (`gc.freeze`), and young collections run less often. Reference counting still frees
    almost everything at once; only cyclic garbage waits a little longer.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


@dataclass
class App:
    """The wired parts of one pool process."""

    config: PoolConfig
    pool: Pool
    leases: LeaseService
    queue: QueueEngine
    power: PowerService
    api_port: int | None = None

    async def run(
        self,
        *,
        shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
        task_status: trio.TaskStatus[App] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run everything until cancelled; reports itself started once every listener is bound."""
        config = self.config
        async with trio.open_nursery() as nursery:
            await nursery.start(self.pool.run)
            await nursery.start(self.leases.run)
            await nursery.start(self.power.run)
            if config.api_port is not None:
                from stratumkit.api.app import serve_api

                self.api_port = await nursery.start(
                    functools.partial(
                        serve_api,
                        self.pool,
                        self.leases,
                        config.api_host,
                        config.api_port,
                        api_token=config.api_token,
                        shutdown_trigger=shutdown_trigger,
                        power=self.power,
                    )
                )
            task_status.started(self)


@asynccontextmanager
async def open_app(config: PoolConfig) -> AsyncIterator[App]:
    """Build the parts (the queue is opened here and closed on exit); `App.run` starts them."""
    from stratumkit.lease.service import LeaseService
    from stratumkit.power.prices import BadPrice
    from stratumkit.power.service import PowerService
    from stratumkit.power.settings import power_settings

    config.validate()
    settings = power_settings(config.power)
    config.data_path.mkdir(parents=True, exist_ok=True)
    source = make_source(config)
    async with open_queue(config) as queue:
        leases = LeaseService(
            queue, drain_timeout_s=config.lease_drain_timeout, return_timeout_s=config.lease_return_timeout
        )
        pool = Pool(config, source, extensions=leases)
        try:
            power = PowerService(settings, pool, leases)
        except BadPrice as exc:  # the price file
            raise ConfigError(f"power.price_file: {exc}") from None
        yield App(config, pool, leases, queue, power)


async def serve(config: PoolConfig, *, task_status: trio.TaskStatus[App] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the pool, its lease service and its HTTP API until SIGINT/SIGTERM."""
    stopping = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_app(config) as app, trio.open_nursery() as nursery:
            await nursery.start(functools.partial(app.run, shutdown_trigger=stopping.wait))
            task_status.started(app)
            tune_gc()

            async def wait_for_signal() -> None:
                async for signum in signals:
                    log.info("shutting down", signal=signal.Signals(signum).name)
                    stopping.set()  # event streams end cleanly first
                    await trio.sleep(0.2)
                    app.pool.shutdown()
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(wait_for_signal)


__all__ = ["App", "make_source", "open_app", "open_queue", "serve", "tune_gc"]
