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
  ``max_body_bytes`` 413, a missing or wrong API key 401. A body must be a JSON object;
  NaN and Infinity are refused (400), as JSON has neither.
* An exception that is not an InferenceError is a bug: it is logged and answered with 500; it
  ends that request only, never the server.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from stratumkit.asgi import AsgiApp, BearerAuth, HTTPError, Reply, Request, Router, Send, listen, route
from stratumkit.failures import StartupFailure
from stratumkit.server.listeners import bind_socket

from .backend import InferenceBackend, handle_request
from .errors import BackendUnavailableError, InferenceError
from .wire import CHAT, EMBEDDINGS, error_body, error_object, models_response

__all__ = ["DEFAULT_MAX_BODY_BYTES", "OpenAIApp", "run_server", "serve_openai"]


#: 2048 inputs of a few KB each fit well inside this.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024

_log = logging.getLogger(__name__)

# Query parameters are not checked: OpenAI clients may add their own (``api-version``).
_ROUTER = Router(
    [
        route(r"/v1/embeddings", {"POST": EMBEDDINGS}, None),
        route(r"/v1/chat/completions", {"POST": CHAT}, None),
        route(r"/v1/models", {"GET": "models"}, None),
        route(r"/health", {"GET": "health"}, None),
    ]
)
_OPEN_ROUTES = frozenset({"health"})


class OpenAIApp(AsgiApp):
    """The ASGI application. ``api_key``, when given, is required as ``Authorization: Bearer``
    on every route but /health."""

    log = _log

    def __init__(
        self,
        backend: InferenceBackend,
        *,
        api_key: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.backend = backend
        self._auth = BearerAuth(api_key, noun="key")
        self.max_body_bytes = max_body_bytes

    async def respond(self, request: Request, send: Send) -> Reply:
        action = _ROUTER.resolve(request)
        if action not in _OPEN_ROUTES:
            self._auth.check(request)
        if action == "health":
            if await self.backend.ready():
                return Reply(200, {"status": "ok", "models": self.backend.models()})
            return Reply(503, {"status": "unavailable"})
        if action == "models":
            return Reply(200, models_response(self.backend.models()))
        body = await request.json_object()
        return Reply(200, await handle_request(self.backend, action, body))

    def error_reply(self, error: HTTPError) -> Reply:
        kind = "server_error" if error.status >= 500 else "invalid_request_error"
        return Reply(error.status, error_object(error.message, kind, code=error.code), error.headers)

    def refusal(self, exc: Exception) -> Reply | None:
        if isinstance(exc, InferenceError):
            return Reply(exc.http_status, error_body(exc))
        return None


async def serve_openai(
    backend: InferenceBackend,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    sock: socket.socket | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start ``backend``, then serve it over HTTP until cancelled or ``shutdown_trigger``
    returns (then in-flight requests get a few seconds to finish). ``sock``, when given, is the
    listening socket bound to ``host``:``port`` already (see `stratumkit.asgi.listen`).

    For ``nursery.start``: reports the base URL actually bound (``http://127.0.0.1:54321``
    when ``port`` is 0), which OpenAIHTTPBackend takes as it is.
    """
    await backend.start()
    app = OpenAIApp(backend, api_key=api_key, max_body_bytes=max_body_bytes)
    async with trio.open_nursery() as nursery:
        url = await listen(nursery, app, host, port, errorlog=_log, shutdown_trigger=shutdown_trigger, sock=sock)
        task_status.started(url)


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
    model: str = "minilm",
    announce: Callable[[str], None] = print,
) -> None:
    """Blocking entry point for ``stratumkit infer serve``: serve all-MiniLM-L6-v2 (``model``
    "minilm") or SmolLM2-135M-Instruct ("smollm2", chat) on the CPU (or, with ``upstream``,
    relay another OpenAI-compatible server) until SIGINT or SIGTERM.
    ``announce`` is told the bound URL once the server listens. The port is bound first; a port
    that cannot be bound, or an upstream that does not answer, is an OperatorError (one line)."""

    async def main() -> None:
        backend: InferenceBackend
        if upstream is None and model == "smollm2":
            from .smollm2 import SmolLM2Backend

            backend = SmolLM2Backend(threads=threads)
            await backend.start()
        elif upstream is None:
            from .minilm import MiniLMBackend

            backend = MiniLMBackend(threads=threads)
        else:
            from .openai_http import OpenAIHTTPBackend

            backend = OpenAIHTTPBackend(upstream, upstream_api_key)
        try:
            with bind_socket(host, port, port_key="port", host_key="host") as sock:
                async with trio.open_nursery() as nursery:
                    url = await nursery.start(
                        partial(
                            serve_openai,
                            backend,
                            host,
                            port,
                            api_key=api_key,
                            shutdown_trigger=_until_interrupted,
                            sock=sock,
                        )
                    )
                    announce(f"serving {', '.join(backend.models())} at {url}/v1")
        except* BackendUnavailableError as group:
            raise StartupFailure(f"--upstream {upstream}: {group.exceptions[0]}") from None
        finally:
            await backend.close()

    trio.run(main)
