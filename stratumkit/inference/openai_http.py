"""A client of an OpenAI-compatible HTTP server (vLLM, llama.cpp server, Ollama, or our own
``stratumkit infer serve``) as an InferenceBackend.

httpx's AsyncClient runs on trio: httpcore does its I/O through anyio, which detects the
running trio loop. Every failure becomes an InferenceError that says what happened and where:

* nothing listening, DNS failure, reset, timeout  -> BackendUnavailableError (retryable);
* a non-2xx answer -> UpstreamError with the server's status and its own error message;
* a 2xx answer that is not JSON or not the OpenAI shape -> UpstreamError(status=None).

Responses are validated field by field, so a job never completes with a half-read result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from stratumkit.causes import connection_refused

from .errors import BackendUnavailableError, InferenceError, UpstreamError
from .values import ChatMessage, ChatResult, EmbeddingResult, Usage

__all__ = ["OpenAIHTTPBackend"]

_SNIPPET = 200


def _api_base(base_url: str) -> str:
    """``http://host:8000``, ``http://host:8000/`` and ``http://host:8000/v1`` all name the
    same API root, ``http://host:8000/v1``: OpenAI clients are configured both ways."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"base_url must not carry a query or fragment, got {base_url!r}")
    root = base_url.rstrip("/")
    return root if root.endswith("/v1") else f"{root}/v1"


def _upstream_message(response: httpx.Response) -> tuple[str, str | None]:
    """The error message (and param) the server put in its body, in whichever of the common
    shapes it used: OpenAI's ``{"error": {"message"}}``, ``{"error": "..."}`` (Ollama),
    ``{"detail": ...}`` (FastAPI), ``{"message": ...}``; else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            param = err.get("param")
            return err["message"], param if isinstance(param, str) else None
        for key in ("error", "detail", "message"):
            if isinstance(body.get(key), str):
                return body[key], None
        if "detail" in body:
            return json.dumps(body["detail"])[:_SNIPPET], None
    text = response.text.strip()
    return (text[:_SNIPPET] or response.reason_phrase or "(empty body)"), None


class _Malformed(Exception):
    """Raised inside response parsing; turned into UpstreamError with the URL attached."""


def _field(obj: object, key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise _Malformed(f"{where} is not an object")
    if key not in obj:
        raise _Malformed(f"{where} has no {key!r}")
    return obj[key]


def _token_count(usage: object, key: str) -> int:
    if not isinstance(usage, dict):
        return 0
    value = usage.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Malformed(f"usage.{key} is not a non-negative integer")
    return value


def _parse_embeddings(body: object, model: str, count: int) -> EmbeddingResult:
    data = _field(body, "data", "response")
    if not isinstance(data, list):
        raise _Malformed("'data' is not a list")
    if len(data) != count:
        raise _Malformed(f"'data' holds {len(data)} embeddings for {count} inputs")
    by_index: dict[int, tuple[float, ...]] = {}
    for pos, item in enumerate(data):
        index = _field(item, "index", f"data[{pos}]")
        raw = _field(item, "embedding", f"data[{pos}]")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            raise _Malformed(f"data[{pos}].index is not an integer in 0..{count - 1}")
        if index in by_index:
            raise _Malformed(f"index {index} appears twice in 'data'")
        if not isinstance(raw, list) or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw):
            raise _Malformed(f"data[{pos}].embedding is not a list of numbers")
        by_index[index] = tuple(float(x) for x in raw)
    vectors = tuple(by_index[i] for i in range(count))
    if len({len(v) for v in vectors}) > 1:
        raise _Malformed("embeddings differ in length")
    served = body.get("model", model) if isinstance(body, dict) else model
    usage = body.get("usage") if isinstance(body, dict) else None
    return EmbeddingResult(
        model=served if isinstance(served, str) else model,
        vectors=vectors,
        usage=Usage(prompt_tokens=_token_count(usage, "prompt_tokens")),
    )


def _parse_chat(body: object, model: str) -> ChatResult:
    choices = _field(body, "choices", "response")
    if not isinstance(choices, list) or not choices:
        raise _Malformed("'choices' is not a non-empty list")
    message = _field(choices[0], "message", "choices[0]")
    content = _field(message, "content", "choices[0].message")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise _Malformed("choices[0].message.content is not a string")
    finish = choices[0].get("finish_reason") or "stop"
    if not isinstance(finish, str):
        raise _Malformed("choices[0].finish_reason is not a string")
    assert isinstance(body, dict)  # _field checked it
    usage = body.get("usage")
    served = body.get("model", model)
    response_id = body.get("id")
    return ChatResult(
        model=served if isinstance(served, str) else model,
        content=content,
        finish_reason=finish,
        usage=Usage(
            prompt_tokens=_token_count(usage, "prompt_tokens"),
            completion_tokens=_token_count(usage, "completion_tokens"),
        ),
        response_id=response_id if isinstance(response_id, str) and response_id else None,
    )


def _parse_models(body: object) -> list[str]:
    data = _field(body, "data", "response")
    if not isinstance(data, list):
        raise _Malformed("'data' is not a list")
    ids = []
    for pos, item in enumerate(data):
        model_id = _field(item, "id", f"data[{pos}]")
        if not isinstance(model_id, str):
            raise _Malformed(f"data[{pos}].id is not a string")
        ids.append(model_id)
    return ids


class OpenAIHTTPBackend:
    """An InferenceBackend that forwards to an OpenAI-compatible server at ``base_url``.

    ``timeout`` bounds each request (connect, each read, each write), in seconds; a model
    that takes longer to answer one request needs a larger value. ``ready()`` uses the
    shorter ``ready_timeout``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        *,
        ready_timeout: float = 5.0,
    ) -> None:
        if timeout <= 0 or ready_timeout <= 0:
            raise ValueError("timeouts must be > 0")
        self.api_base = _api_base(base_url)
        self._api_key = api_key
        self._timeout = timeout
        self._ready_timeout = ready_timeout
        self._client: httpx.AsyncClient | None = None
        self._models: list[str] = []

    def __repr__(self) -> str:
        # Never the API key.
        return f"<OpenAIHTTPBackend {self.api_base}>"

    async def __aenter__(self) -> OpenAIHTTPBackend:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- HTTP ------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Accept": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._client = httpx.AsyncClient(headers=headers, timeout=self._timeout)
        return self._client

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        url = f"{self.api_base}{path}"
        try:
            response = await self._http().request(
                method,
                url,
                json=body,
                timeout=timeout if timeout is not None else self._timeout,
            )
        except httpx.TimeoutException as exc:
            limit = timeout if timeout is not None else self._timeout
            raise BackendUnavailableError(f"{method} {url} timed out after {limit:g}s ({type(exc).__name__})") from exc
        except httpx.ConnectError as exc:
            reason = "connection refused" if connection_refused(exc) else str(exc)
            raise BackendUnavailableError(
                f"cannot connect to {url}: {reason} (is the inference server running?)"
            ) from exc
        except httpx.TransportError as exc:
            raise BackendUnavailableError(f"{method} {url} failed: {exc!r}") from exc

        if not response.is_success:
            message, param = _upstream_message(response)
            raise UpstreamError(
                f"{method} {url} answered {response.status_code}: {message}",
                status=response.status_code,
                param=param,
            )
        try:
            return json.loads(response.content)
        except ValueError:
            snippet = response.text[:_SNIPPET]
            raise UpstreamError(
                f"{method} {url} answered {response.status_code} with a body that is not JSON: {snippet!r}",
                status=None,
            ) from None

    def _malformed(self, path: str, exc: _Malformed) -> UpstreamError:
        return UpstreamError(f"malformed response from {self.api_base}{path}: {exc}", status=None)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Fetch the model list; raises if the server cannot be reached or answers badly."""
        body = await self._call("GET", "/models")
        try:
            self._models = _parse_models(body)
        except _Malformed as exc:
            raise self._malformed("/models", exc) from None

    async def wake(self) -> None:
        await self.start()

    async def ready(self) -> bool:
        try:
            body = await self._call("GET", "/models", timeout=self._ready_timeout)
            self._models = _parse_models(body)
        except (InferenceError, _Malformed):
            return False
        return True

    def models(self) -> list[str]:
        return list(self._models)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- inference ---------------------------------------------------------------------------

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        if not inputs:
            return EmbeddingResult(model=model, vectors=(), usage=Usage(0))
        body = await self._call(
            "POST",
            "/embeddings",
            {"model": model, "input": list(inputs), "encoding_format": "float"},
        )
        try:
            return _parse_embeddings(body, model, len(inputs))
        except _Malformed as exc:
            raise self._malformed("/embeddings", exc) from None

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
        request: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        optional: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "stop": list(stop) or None,
            "seed": seed,
        }
        request.update({k: v for k, v in optional.items() if v is not None})
        body = await self._call("POST", "/chat/completions", request)
        try:
            return _parse_chat(body, model)
        except _Malformed as exc:
            raise self._malformed("/chat/completions", exc) from None
