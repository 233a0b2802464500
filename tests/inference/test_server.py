"""Our OpenAI-compatible server over real loopback TCP, serving the real MiniLM model (and a
chat double for the chat route)."""

from __future__ import annotations

import base64
import struct
from functools import partial
from typing import Any

import httpx
import pytest
import trio

from stratumkit.inference.minilm import DIMENSIONS, MODEL_ID, MiniLMBackend
from stratumkit.inference.openai_http import OpenAIHTTPBackend
from stratumkit.inference.server import serve_openai

from .doubles import EchoChatBackend

TEXTS = ["a cat sits on the mat", "a kitten is sitting on a rug", "the bank raised rates"]


async def test_embeddings_over_http_match_in_process(client: OpenAIHTTPBackend, minilm: MiniLMBackend) -> None:
    await client.start()
    assert client.models() == [MODEL_ID]
    remote = await client.embed(MODEL_ID, TEXTS)
    local = await minilm.embed(MODEL_ID, TEXTS)
    # JSON carries float32 values exactly, so the vectors are equal, not just close.
    assert remote == local


async def test_raw_openai_request(server_url: str, minilm: MiniLMBackend) -> None:
    async with httpx.AsyncClient(base_url=server_url) as http:
        response = await http.post(
            "/v1/embeddings",
            json={"model": MODEL_ID, "input": TEXTS[:2], "encoding_format": "base64"},
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        local = await minilm.embed(MODEL_ID, TEXTS[:2])
        assert [d["index"] for d in body["data"]] == [0, 1]
        for item, vector in zip(body["data"], local.vectors, strict=True):
            decoded = struct.unpack(f"<{DIMENSIONS}f", base64.b64decode(item["embedding"]))
            assert decoded == pytest.approx(vector, abs=1e-7)
        assert body["usage"]["prompt_tokens"] == local.usage.prompt_tokens

        models = (await http.get("/v1/models")).json()
        assert [m["id"] for m in models["data"]] == [MODEL_ID]
        assert models["object"] == "list"

        health = await http.get("/health")
        assert (health.status_code, health.json()["status"]) == (200, "ok")


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "fragment"),
    [
        ("POST", "/v1/embeddings", b"{not json", 400, "not valid JSON"),
        ("POST", "/v1/embeddings", b"", 400, "body is empty"),
        ("POST", "/v1/embeddings", b"[1, 2]", 400, "must be a JSON object"),
        # JSON has no NaN or Infinity: refused as the pool's API refuses them, not passed to a model
        ("POST", "/v1/embeddings", b'{"model": "m", "input": "x", "dimensions": NaN}', 400, "NaN is not a JSON value"),
        ("POST", "/v1/embeddings", b'{"model": "m", "input": [-Infinity]}', 400, "-Infinity is not a JSON value"),
        ("POST", "/v1/embeddings", b'{"input": "x"}', 400, "missing required field 'model'"),
        (
            "POST",
            "/v1/embeddings",
            b'{"model": "all-MiniLM-L6-v2", "input": [[101]]}',
            400,
            "token-id input",
        ),
        (
            "POST",
            "/v1/embeddings",
            b'{"model": "all-MiniLM-L6-v2", "input": "x", "kind": "chat"}',
            400,
            "unrecognized field",
        ),
        (
            "POST",
            "/v1/embeddings",
            b'{"model": "gpt-4o", "input": "x"}',
            404,
            "model 'gpt-4o' is not served here",
        ),
        (
            "POST",
            "/v1/chat/completions",
            b'{"model": "all-MiniLM-L6-v2", "messages": [{"role": "user", "content": "hi"}]}',
            400,
            "does not support chat",
        ),
        ("GET", "/v1/embeddings", None, 405, "GET is not allowed on /v1/embeddings"),
        ("GET", "/v1/completions", None, 404, "no route for GET /v1/completions"),
    ],
)
async def test_bad_requests_get_openai_errors(
    server_url: str, method: str, path: str, content: bytes | None, status: int, fragment: str
) -> None:
    async with httpx.AsyncClient(base_url=server_url) as http:
        response = await http.request(method, path, content=content)
        assert response.status_code == status
        error = response.json()["error"]
        assert fragment in error["message"]
        assert error["type"] == "invalid_request_error"
        assert set(error) == {"message", "type", "param", "code"}
        # The server is still there after a bad request.
        assert (await http.get("/health")).status_code == 200


async def _serve(nursery: trio.Nursery, backend: Any, **kwargs: Any) -> str:
    url: str = await nursery.start(partial(serve_openai, backend, "127.0.0.1", 0, **kwargs))
    return url


async def test_body_limit(nursery: trio.Nursery, minilm: MiniLMBackend) -> None:
    url = await _serve(nursery, minilm, max_body_bytes=1000)
    async with httpx.AsyncClient(base_url=url) as http:
        small = await http.post("/v1/embeddings", json={"model": MODEL_ID, "input": "x" * 100})
        assert small.status_code == 200
        big = await http.post("/v1/embeddings", json={"model": MODEL_ID, "input": "x" * 2000})
        assert big.status_code == 413
        assert big.json()["error"] == {
            "message": "request body exceeds 1000 bytes",
            "type": "invalid_request_error",
            "param": None,
            "code": "too_large",
        }


async def test_routing_errors_in_openai_shape(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url) as http:
        missing = await http.get("/v1/completions")
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
        wrong = await http.delete("/v1/models")
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET")
        assert wrong.json()["error"]["message"] == "DELETE is not allowed on /v1/models (allowed: GET)"
        # Query parameters some OpenAI clients add are not refused.
        models = await http.get("/v1/models", params={"api-version": "2024-06-01"})
        assert models.status_code == 200


async def test_api_key(nursery: trio.Nursery, minilm: MiniLMBackend) -> None:
    url = await _serve(nursery, minilm, api_key="s3cret")
    async with httpx.AsyncClient(base_url=url) as http:
        denied = await http.get("/v1/models")
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == "Bearer"
        assert denied.json()["error"] == {
            "message": "missing or invalid API key (send Authorization: Bearer <key>)",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        # The body is not read, nor the model run, for a request without the key.
        refused = await http.post("/v1/embeddings", json={"model": MODEL_ID, "input": "x"})
        assert refused.status_code == 401
        wrong = await http.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert (await http.get("/health")).status_code == 200
    async with OpenAIHTTPBackend(url, api_key="s3cret") as good:
        assert good.models() == [MODEL_ID]
        assert (await good.embed(MODEL_ID, ["x"])).dimensions == DIMENSIONS


async def test_chat_route_with_a_chat_backend(nursery: trio.Nursery) -> None:
    backend = EchoChatBackend()
    url = await _serve(nursery, backend)
    assert backend.started == 1  # serve_openai starts the backend before listening
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "echo-1", "messages": [{"role": "user", "content": "to be or not"}]},
        )
        assert response.status_code == 200
        body = response.json()
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"] == {"role": "assistant", "content": "not or be to"}
        assert body["usage"]["total_tokens"] == 8

        # A bug in the backend answers 500 for that request only.
        boom = await http.post(
            "/v1/chat/completions",
            json={"model": "boom", "messages": [{"role": "user", "content": "x"}]},
        )
        assert boom.status_code == 500
        assert boom.json()["error"] == {
            "message": "internal error (RuntimeError)",
            "type": "server_error",
            "param": None,
            "code": None,
        }
        assert (await http.get("/health")).status_code == 200

        # Embeddings on a chat-only backend: a clear 400.
        emb = await http.post("/v1/embeddings", json={"model": "echo-1", "input": "x"})
        assert emb.status_code == 400
        assert "does not support embeddings" in emb.json()["error"]["message"]

        await backend.close()
        unready = await http.get("/health")
        assert (unready.status_code, unready.json()["status"]) == (503, "unavailable")
