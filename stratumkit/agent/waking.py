"""A wake-up for tasks waiting on state another task changes: ``notify()`` wakes every ``wait()``."""

from __future__ import annotations

import trio


class Changed:
    def __init__(self) -> None:
        self._event = trio.Event()

    def notify(self) -> None:
        event, self._event = self._event, trio.Event()
        event.set()

    async def wait(self) -> None:
        await self._event.wait()
