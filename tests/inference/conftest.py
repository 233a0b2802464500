"""Fixtures: the real MiniLM model (loaded once per session), our server on a loopback port
serving it, and an HTTP client of that server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import trio

from stratumkit.inference.minilm import MiniLMBackend
from stratumkit.inference.openai_http import OpenAIHTTPBackend
from stratumkit.inference.server import serve_openai
from tests.support.ports import refused_port


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
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections, held for the test so nothing else takes it."""
    with refused_port() as port:
        yield port
