"""Fixtures: the real MiniLM model (loaded once per session), our server on a loopback port
serving it, and an HTTP client of that server."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import trio

from stratumkit.inference.minilm import MiniLMBackend
from stratumkit.inference.openai_http import OpenAIHTTPBackend
from stratumkit.inference.server import serve_openai


@pytest.fixture(scope="session")
def minilm() -> MiniLMBackend:
    """One loaded model for the whole session (loading takes about half a second)."""
    backend = MiniLMBackend(threads=1)
    trio.run(backend.start)
    return backend


@pytest.fixture
async def server_url(nursery: trio.Nursery, minilm: MiniLMBackend) -> str:
    url: str = await nursery.start(serve_openai, minilm, "127.0.0.1", 0)
    return url


@pytest.fixture
async def client(server_url: str) -> AsyncIterator[OpenAIHTTPBackend]:
    backend = OpenAIHTTPBackend(server_url, timeout=30.0)
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
