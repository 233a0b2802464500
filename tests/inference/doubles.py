"""Test doubles: a chat backend for the chat routes (MiniLM cannot chat), and a canned ASGI
app standing in for a misbehaving upstream server."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from stratumkit.inference import (
    ChatMessage,
    ChatResult,
    EmbeddingResult,
    UnknownModelError,
    UnsupportedError,
    Usage,
)


class EchoChatBackend:
    """A chat-only double: replies with the last user message's words reversed, cut at
    max_tokens words. Model "boom" raises a bug-like RuntimeError."""

    MODEL = "echo-1"

    def __init__(self) -> None:
        self.started = 0

    async def start(self) -> None:
        self.started += 1

    async def wake(self) -> None:
        await self.start()

    async def ready(self) -> bool:
        return self.started > 0

    def models(self) -> list[str]:
        return [self.MODEL, "boom"]

    async def close(self) -> None:
        self.started = 0

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        raise UnsupportedError(f"model {model!r} does not support embeddings")

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        max_tokens: int | None = None,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: Sequence[str] = (),
        seed: int | None = None,
    ) -> ChatResult:
        if model == "boom":
            raise RuntimeError("bug in backend")
        if model != self.MODEL:
            raise UnknownModelError(model, self.models())
        prompt = [m.content for m in messages if m.role == "user"][-1].split()
        words = prompt[::-1]
        finish = "stop"
        if max_tokens is not None and len(words) > max_tokens:
            words, finish = words[:max_tokens], "length"
        prompt_tokens = sum(len(m.content.split()) for m in messages)
        return ChatResult(model, " ".join(words), finish, Usage(prompt_tokens, len(words)))


class CannedApp:
    """An ASGI app answering every request with one fixed status and raw body: a stand-in
    for a misbehaving upstream server."""

    def __init__(self, status: int, body: bytes, content_type: bytes = b"application/json"):
        self.status, self.body, self.content_type = status, body, content_type

    @classmethod
    def json(cls, status: int, obj: Any) -> CannedApp:
        return cls(status, json.dumps(obj).encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", self.content_type)],
            }
        )
        await send({"type": "http.response.body", "body": self.body})


async def serve_asgi(nursery: trio.Nursery, app: Any) -> str:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    binds: list[str] = await nursery.start(partial(hypercorn_serve, app, config))
    return binds[0]
