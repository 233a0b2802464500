"""Price feeds on trio: a CSV series replayed by its timestamps (from the pool's start, or on the
wall clock), and an operator's JSON URL polled.

Each feed hands every update to ``on_update(data, source)`` (the service's price book checks it);
a refused update or a failed poll is logged and the feed goes on, so the book's age says when
prices stop arriving.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import structlog
import trio

from .prices import BadPrice
from .series import PriceSeries

__all__ = ["follow_series", "poll_url", "replay_series"]

log = structlog.get_logger("stratumkit.power")

OnUpdate = Callable[[object, str], None]


async def replay_series(series: PriceSeries, speed: float, on_update: OnUpdate) -> None:
    """Each row at its offset from the first, `speed` series seconds per second, from now."""
    start = trio.current_time()
    for row in series.rows:
        await trio.sleep_until(start + (row.at - series.start) / speed)
        try:
            on_update(dict(row.update), "file")
        except BadPrice as exc:
            log.warning("price row refused", error=str(exc))
    log.info("price file replayed", rows=len(series))


async def follow_series(series: PriceSeries, on_update: OnUpdate) -> None:
    """Each row at its own unix time: the rows already past at once (in order, so columns a row
    leaves empty keep earlier values), then each one when the wall clock reaches it."""
    for row in series.rows:
        wait = row.at - time.time()
        if wait > 0:
            await trio.sleep(wait)
        try:
            on_update(dict(row.update), "file")
        except BadPrice as exc:
            log.warning("price row refused", error=str(exc))
    log.info("price file followed to its end", rows=len(series))


async def poll_url(url: str, interval_s: float, on_update: OnUpdate, *, timeout_s: float = 10.0) -> None:
    """GET `url` every `interval_s`: a JSON object of price fields each time."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        while True:
            try:
                reply = await client.get(url)
                reply.raise_for_status()
                on_update(reply.json(), "poll")
            except (httpx.HTTPError, ValueError) as exc:  # BadPrice and bad JSON are ValueErrors
                log.warning("price poll failed", url=url, error=str(exc) or type(exc).__name__)
            await trio.sleep(interval_s)
