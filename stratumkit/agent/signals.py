"""Run a command's tasks until SIGINT or SIGTERM: how `agent` and `mine` stop (exit 0, no traceback)."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import trio


async def run_until_stopped(*tasks: Callable[[], Awaitable[object]]) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            for task in tasks:
                nursery.start_soon(task)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                return
