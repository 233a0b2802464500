"""`stratumkit serve`: build the pool from its configuration and run it until a signal."""

from __future__ import annotations

import signal

import structlog
import trio

from stratumkit.jobs.sources import EmbeddedTemplateSource, TemplateSource

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
    return NodeTemplateSource(rpc, poll_interval=config.node_poll_interval, refresh_interval=config.template_refresh)


async def serve(config: PoolConfig, *, task_status: trio.TaskStatus[Pool] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the pool (and its HTTP API when configured) until SIGINT/SIGTERM, then shut down cleanly."""
    pool = Pool(config, make_source(config))
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            task_status.started(pool)

            async def wait_for_signal() -> None:
                async for signum in signals:
                    log.info("shutting down", signal=signal.Signals(signum).name)
                    pool.shutdown()
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(wait_for_signal)
