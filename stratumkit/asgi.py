"""What our two ASGI apps (the HTTP API, the OpenAI-compatible inference server) share.

Both are plain ASGI apps served by hypercorn's trio worker; a framework would add a dependency
for a handful of routes. This module holds the protocol types, the lifespan handling, and the
bind-address spelling hypercorn wants.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def bind_address(host: str, port: int) -> str:
    """hypercorn's bind string: IPv6 hosts go in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AsgiApp:
    """Dispatch by scope type; lifespan is acknowledged (the caller starts what the app serves),
    websockets are refused. Subclasses implement `_http` and may override `on_shutdown`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError

    def on_shutdown(self) -> None:
        """The server is shutting down (end long-lived responses here)."""

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
