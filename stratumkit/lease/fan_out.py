"""Events to every subscriber: one memory channel each, and a subscriber that falls its buffer
behind is dropped (its channel closed) rather than slowing the publisher down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

__all__ = ["FanOut"]


class FanOut:
    def __init__(self) -> None:
        self._subscribers: set[trio.MemorySendChannel[dict[str, Any]]] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    @asynccontextmanager
    async def subscribe(self, buffer: int = 1000) -> AsyncIterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        send, receive = trio.open_memory_channel[dict[str, Any]](buffer)
        self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
            send.close()

    def send(self, event: dict[str, Any]) -> None:
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                self._subscribers.discard(send)
                send.close()
