"""OpenAIHTTPBackend against real servers on loopback: ours, canned misbehaving ones, and
none at all."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from stratumkit.inference import (
    BackendUnavailableError,
    ChatMessage,
    InferenceBackend,
    UpstreamError,
    run_job,
)
from stratumkit.inference.minilm import MODEL_ID, MiniLMBackend
from stratumkit.inference.openai_http import OpenAIHTTPBackend
from stratumkit.inference.server import serve_openai

from .doubles import CannedApp, EchoChatBackend, serve_asgi


@pytest.mark.parametrize("given", ["http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/"])
def test_base_url_forms(given: str) -> None:
    backend = OpenAIHTTPBackend(given, api_key="sk-secret")
    assert backend.api_base == "http://h:8000/v1"
    assert isinstance(backend, InferenceBackend)
    assert "sk-secret" not in repr(backend)


@pytest.mark.parametrize("bad", ["h:8000", "ftp://h/", "http://", "http://h/?x=1"])
def test_base_url_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        OpenAIHTTPBackend(bad)


async def test_connection_refused(closed_port: int) -> None:
    backend = OpenAIHTTPBackend(f"http://127.0.0.1:{closed_port}", timeout=5.0)
    try:
        assert not await backend.ready()
        with pytest.raises(BackendUnavailableError) as info:
            await backend.embed("m", ["x"])
        message = str(info.value)
        assert "connection refused" in message
        assert f"127.0.0.1:{closed_port}/v1/embeddings" in message
        assert info.value.retryable
        with pytest.raises(BackendUnavailableError, match="connection refused"):
            await backend.start()
        with pytest.raises(BackendUnavailableError, match="connection refused"):
            await run_job(backend, {"kind": "embeddings", "model": "m", "input": "x"})
    finally:
        await backend.close()


async def test_timeout(nursery: trio.Nursery) -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    backend = OpenAIHTTPBackend(f"http://127.0.0.1:{port}", timeout=0.2, ready_timeout=0.2)
    try:
        with pytest.raises(BackendUnavailableError, match=r"timed out after 0.2s"):
            await backend.embed("m", ["x"])
        assert not await backend.ready()
    finally:
        await backend.close()


async def test_upstream_error_carries_status_and_message(client: OpenAIHTTPBackend) -> None:
    with pytest.raises(UpstreamError) as info:
        await client.embed("gpt-4o", ["x"])
    assert info.value.status == 404
    assert "answered 404: model 'gpt-4o' is not served here" in str(info.value)
    assert not info.value.retryable
    with pytest.raises(UpstreamError, match="does not support chat") as chat:
        await client.chat(MODEL_ID, [ChatMessage("user", "hi")], max_tokens=4)
    assert chat.value.status == 400
    assert chat.value.http_status == 400


@pytest.mark.parametrize(
    ("app", "status", "retryable", "fragment"),
    [
        (CannedApp(200, b"<html>oops</html>", b"text/html"), None, True, "not JSON: '<html>oops"),
        (CannedApp.json(200, {"object": "list"}), None, True, "malformed response"),
        (
            CannedApp.json(200, {"data": [{"index": 0, "embedding": "abc"}]}),
            None,
            True,
            "data[0].embedding is not a list of numbers",
        ),
        (CannedApp.json(200, {"data": []}), None, True, "0 embeddings for 1 inputs"),
        (
            CannedApp.json(503, {"detail": "model loading"}),
            503,
            True,
            "answered 503: model loading",
        ),
        (
            CannedApp.json(429, {"error": {"message": "slow down", "type": "rate_limit"}}),
            429,
            True,
            "slow down",
        ),
        (CannedApp(400, b"plain words"), 400, False, "answered 400: plain words"),
    ],
)
async def test_misbehaving_upstream(
    nursery: trio.Nursery, app: CannedApp, status: int | None, retryable: bool, fragment: str
) -> None:
    url = await serve_asgi(nursery, app)
    backend = OpenAIHTTPBackend(url)
    try:
        with pytest.raises(UpstreamError) as info:
            await backend.embed("m", ["x"])
    finally:
        await backend.close()
    assert fragment in str(info.value)
    assert info.value.status == status
    assert info.value.retryable is retryable


async def test_run_job_same_on_both_backends(client: OpenAIHTTPBackend, minilm: MiniLMBackend) -> None:
    payload = {"kind": "embeddings", "model": MODEL_ID, "input": ["a cat", "a dog", "a bank"]}
    remote = await run_job(client, payload)
    local = await run_job(minilm, payload)
    assert remote == local
    bad = {"kind": "embeddings", "model": MODEL_ID, "input": "x", "dimensions": 128}
    for backend in (client, minilm):
        with pytest.raises(Exception, match="dimensions=128 is not supported"):
            await run_job(backend, bad)


async def test_chat_through_http(nursery: trio.Nursery) -> None:
    echo = EchoChatBackend()
    url = await nursery.start(serve_openai, echo, "127.0.0.1", 0)
    async with OpenAIHTTPBackend(url) as backend:
        assert backend.models() == ["echo-1", "boom"]
        reply = await backend.chat("echo-1", [ChatMessage("system", "s"), ChatMessage("user", "a b c d")], max_tokens=3)
        assert (reply.content, reply.finish_reason) == ("d c b", "length")
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 3)
        assert reply.response_id is not None and reply.response_id.startswith("chatcmpl-")

        payload = {
            "kind": "chat.completions",
            "model": "echo-1",
            "messages": [{"role": "user", "content": "x y"}],
        }
        remote = await run_job(backend, payload, now=50)
        local = await run_job(echo, payload, now=50)
        assert remote["choices"] == local["choices"]
        assert remote["usage"] == local["usage"]
        # The upstream's id passes through; our created stamp is ours.
        assert remote["id"].startswith("chatcmpl-") and remote["created"] == 50

        with pytest.raises(UpstreamError) as info:
            await backend.chat("boom", [ChatMessage("user", "x")])
        assert info.value.status == 500 and info.value.retryable
