"""A small OpenAI-compatible HTTP server in front of any InferenceBackend.

It lets a rig without vLLM serve the MiniLM model (``stratumkit infer serve``), and gives the
tests a real OpenAI endpoint with a real model. hypercorn runs it on its trio worker; the app
is plain ASGI with a route table, so there is no web framework to keep in step with trio.

Routes:
    POST /v1/embeddings         -> run through handle_request("embeddings")
    POST /v1/chat/completions   -> run through handle_request("chat.completions")
    GET  /v1/models             -> the backend's models()
    GET  /health                -> 200 when backend.ready(), else 503 (never needs a key)

Rules:
* Every error answer has OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``,
  with the status the InferenceError carries (400 bad request, 404 unknown model, 503 backend
  unavailable, 502 upstream fault); unknown paths give 404, wrong methods 405, bodies over
  ``max_body_bytes`` 413, a missing or wrong API key 401.
* An exception that is not an InferenceError is a bug: it is logged and answered with 500; it
  ends that request only, never the server.
"""

from __future__ import annotations

import hmac
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework

from stratumkit.asgi import AsgiApp, Receive, Scope, Send, bind_address

from .backend import InferenceBackend, handle_request
from .errors import InferenceError, InvalidRequestError
from .wire import CHAT, EMBEDDINGS, error_body, models_response

__all__ = ["DEFAULT_MAX_BODY_BYTES", "OpenAIApp", "run_server", "serve_openai"]


#: 2048 inputs of a few KB each fit well inside this.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024

_log = logging.getLogger(__name__)

_ROUTES: dict[str, dict[str, str]] = {
    "/v1/embeddings": {"POST": EMBEDDINGS},
    "/v1/chat/completions": {"POST": CHAT},
    "/v1/models": {"GET": "models"},
    "/health": {"GET": "health"},
}
_OPEN_ROUTES = frozenset({"/health"})


class _HTTPError(Exception):
    """An error answer decided before the backend is involved (routing, auth, body)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
        self.headers = headers or []


class _Disconnected(Exception):
    """The client went away before its body arrived."""


class OpenAIApp(AsgiApp):
    """The ASGI application. ``api_key``, when given, is required as ``Authorization: Bearer``
    on every route but /health."""

    def __init__(
        self,
        backend: InferenceBackend,
        *,
        api_key: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.backend = backend
        self._api_key = api_key.encode() if api_key else None
        self._max_body_bytes = max_body_bytes

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = []
        try:
            status, body = await self._dispatch(scope, receive)
        except _Disconnected:
            return
        except _HTTPError as exc:
            status, body, headers = exc.status, exc.body, exc.headers
        except InferenceError as exc:
            status, body = exc.http_status, error_body(exc)
        except Exception as exc:
            _log.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            status = 500
            body = {
                "error": {
                    "message": f"internal error ({type(exc).__name__})",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _dispatch(self, scope: Scope, receive: Receive) -> tuple[int, Any]:
        path: str = scope["path"]
        method: str = scope["method"]
        methods = _ROUTES.get(path)
        if methods is None:
            raise _HTTPError(404, f"no route for {method} {path}", code="not_found")
        action = methods.get(method)
        if action is None:
            allowed = ", ".join(sorted(methods))
            raise _HTTPError(
                405,
                f"{method} is not allowed on {path} (allowed: {allowed})",
                headers=[(b"allow", allowed.encode())],
            )
        if path not in _OPEN_ROUTES:
            self._check_key(scope)

        if action == "health":
            ready = await self.backend.ready()
            if ready:
                return 200, {"status": "ok", "models": self.backend.models()}
            return 503, {"status": "unavailable"}
        if action == "models":
            return 200, models_response(self.backend.models())

        body = await self._read_json(receive)
        return 200, await handle_request(self.backend, action, body)

    def _check_key(self, scope: Scope) -> None:
        if self._api_key is None:
            return
        given = b""
        for name, value in scope["headers"]:
            if name.lower() == b"authorization":
                scheme, _, token = bytes(value).partition(b" ")
                if scheme.lower() == b"bearer":
                    given = token.strip()
        if not hmac.compare_digest(given, self._api_key):
            raise _HTTPError(
                401,
                "missing or invalid API key (send Authorization: Bearer <key>)",
                code="invalid_api_key",
                headers=[(b"www-authenticate", b"Bearer")],
            )

    async def _read_json(self, receive: Receive) -> object:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body_bytes:
                raise _HTTPError(413, f"request body exceeds {self._max_body_bytes} bytes", code="too_large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        if not raw.strip():
            raise InvalidRequestError("request body is empty; expected a JSON object")
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None


async def serve_openai(
    backend: InferenceBackend,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start ``backend``, then serve it over HTTP until cancelled or ``shutdown_trigger``
    returns (then in-flight requests get a few seconds to finish).

    For ``nursery.start``: reports the base URL actually bound (``http://127.0.0.1:54321``
    when ``port`` is 0), which OpenAIHTTPBackend takes as it is.
    """
    await backend.start()
    config = Config()
    config.bind = [bind_address(host, port)]
    config.accesslog = None
    config.errorlog = _log
    config.include_server_header = False
    app = OpenAIApp(backend, api_key=api_key, max_body_bytes=max_body_bytes)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(
                hypercorn_serve,
                cast(ASGIFramework, app),
                config,
                shutdown_trigger=shutdown_trigger,
            )
        )
        task_status.started(binds[0])


async def _until_interrupted() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def run_server(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    upstream: str | None = None,
    upstream_api_key: str | None = None,
    api_key: str | None = None,
    threads: int | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Blocking entry point for ``stratumkit infer serve``: serve all-MiniLM-L6-v2 on the CPU
    (or, with ``upstream``, relay another OpenAI-compatible server) until SIGINT or SIGTERM.
    ``announce`` is told the bound URL once the server listens."""

    async def main() -> None:
        backend: InferenceBackend
        if upstream is None:
            from .minilm import MiniLMBackend

            backend = MiniLMBackend(threads=threads)
        else:
            from .openai_http import OpenAIHTTPBackend

            backend = OpenAIHTTPBackend(upstream, upstream_api_key)
        try:
            async with trio.open_nursery() as nursery:
                url = await nursery.start(
                    partial(
                        serve_openai,
                        backend,
                        host,
                        port,
                        api_key=api_key,
                        shutdown_trigger=_until_interrupted,
                    )
                )
                announce(f"serving {', '.join(backend.models())} at {url}/v1")
        finally:
            await backend.close()

    trio.run(main)
