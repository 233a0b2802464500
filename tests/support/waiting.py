"""Waits with an upper bound, for state that has no event to wait on.

Everything waited on here takes milliseconds when it works; the bound only decides how long a
broken test takes to fail, so it is generous enough for a machine whose cores are all busy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from stratumkit.agent.waking import Changed

__all__ = ["TIMEOUT", "Changed", "close_when_cancelled", "wait_until", "wait_until_async"]

#: Upper bound on any single wait (a pool node's retries back off for up to 10 s in an outage).
TIMEOUT = 20.0

T = TypeVar("T")


async def wait_until(
    predicate: Callable[[], object],
    timeout: float = TIMEOUT,
    *,
    what: str = "",
    interval: float = 0.02,
) -> None:
    """Poll `predicate` until it is true: for state in another process (its files, its log) or
    behind blocking calls. Raises AssertionError naming `what` after `timeout` seconds."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(interval)
        return
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")


async def wait_until_async(
    check: Callable[[], Awaitable[T]],
    timeout: float = TIMEOUT,
    *,
    what: str = "",
    interval: float = 0.05,
) -> T:
    """Await `check()` until it returns something truthy, and return that (an HTTP poll)."""
    with trio.move_on_after(timeout):
        while not (value := await check()):
            await trio.sleep(interval)
        return value
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or check}")


async def close_when_cancelled(stream: trio.abc.AsyncResource) -> None:
    """Run in the test's nursery: closes a client socket when the test ends (no ResourceWarning)."""
    try:
        await trio.sleep_forever()
    finally:
        await trio.aclose_forcefully(stream)
