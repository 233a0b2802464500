"""`stratumkit serve`: build the pool from its configuration and run it until a signal."""

from __future__ import annotations

import functools
import gc
import signal
from contextlib import AbstractAsyncContextManager

import structlog
import trio

from stratumkit.jobs.sources import EmbeddedTemplateSource, TemplateSource
from stratumkit.lease.service import LeaseService
from stratumkit.queue.engine import QueueEngine

from .config import PoolConfig
from .pool import Pool

log = structlog.get_logger("stratumkit.serve")


def make_source(config: PoolConfig) -> TemplateSource:
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
        raise ValueError(f"queue_url must be a redis:// URL, got {config.queue_url!r}")
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


async def serve(config: PoolConfig, *, task_status: trio.TaskStatus[Pool] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the pool, its lease service (and its HTTP API when configured) until SIGINT/SIGTERM."""
    pool = Pool(config, make_source(config))
    stopping = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_queue(config) as queue, trio.open_nursery() as nursery:
            leases = LeaseService(pool, queue, drain_timeout_s=config.lease_drain_timeout)
            await nursery.start(pool.run)
            await nursery.start(leases.run)
            if config.api_port is not None:
                from stratumkit.api.app import serve_api

                await nursery.start(
                    functools.partial(
                        serve_api,
                        pool,
                        leases,
                        config.api_host,
                        config.api_port,
                        api_token=config.api_token,
                        shutdown_trigger=stopping.wait,
                    )
                )
            task_status.started(pool)
            tune_gc()

            async def wait_for_signal() -> None:
                async for signum in signals:
                    log.info("shutting down", signal=signal.Signals(signum).name)
                    stopping.set()  # event streams end cleanly first
                    await trio.sleep(0.2)
                    pool.shutdown()
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(wait_for_signal)
