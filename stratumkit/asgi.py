"""The one ASGI toolkit of our two apps (the HTTP API, the OpenAI-compatible inference server).

Both are plain ASGI apps served by hypercorn's trio worker; a framework would add a dependency
for a handful of routes. What they share lives here, so that both read bodies, parse JSON,
check tokens and answer errors the same way:

* `AsgiApp` -- lifespan, websocket refusal, and one request path: `respond` -> `Reply`, or an
  exception turned into the app's own error shape (`error_reply`), a bug answered 500;
* `Request` -- the body read under a size cap (413), parsed as a JSON object that refuses
  NaN and Infinity (400: JSON has neither, and our answers could not carry them back);
* `Router` -- path patterns to handler names, 404 / 405 with ``Allow``, unknown query
  parameters refused (400) where a route lists the ones it takes;
* `BearerAuth` -- ``Authorization: Bearer`` compared in constant time (401);
* `listen` -- hypercorn's configuration and start (HTTP, or HTTPS with `https_context`),
  reporting the address bound.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast
from urllib.parse import parse_qs

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework

__all__ = [
    "AsgiApp",
    "BearerAuth",
    "Disconnected",
    "HTTPError",
    "Headers",
    "Message",
    "Receive",
    "Reply",
    "Request",
    "Route",
    "Router",
    "Scope",
    "Send",
    "bind_address",
    "encode_json",
    "https_context",
    "listen",
    "parse_json_object",
    "route",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_JSON_TYPE = b"application/json"
_TEXT_TYPE = b"text/plain; charset=utf-8"


class HTTPError(Exception):
    """An answer decided by the HTTP layer (routing, auth, body, fields); each app renders it in
    its own error shape. ``code`` is a machine-readable reason for shapes that carry one."""

    def __init__(self, status: int, message: str, *, code: str | None = None, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or []


class Disconnected(Exception):
    """The client went away before its request body arrived: there is no one to answer."""


def encode_json(value: Any) -> bytes:
    """Compact JSON; NaN and Infinity raise ValueError (they are not JSON)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str).encode()


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not, and neither do our answers.
    raise ValueError(f"{name} is not a JSON value")


def parse_json_object(raw: bytes, *, optional: bool = False) -> dict[str, Any]:
    """``raw`` as a JSON object ({} for an empty body when `optional`); HTTPError 400 says what
    is wrong, NaN and Infinity included."""
    if not raw.strip():
        if optional:
            return {}
        raise HTTPError(400, "request body is empty; expected a JSON object")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HTTPError(400, f"request body must be a JSON object, not {type(value).__name__}")
    return value


@dataclass
class Request:
    """One HTTP request; `params` and `query` are filled in by the router."""

    scope: Scope
    receive: Receive
    max_body_bytes: int
    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, list[str]] = field(default_factory=dict)

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lower case), or None."""
        for key, value in self.scope["headers"]:
            if key.lower() == name:
                return bytes(value)
        return None

    def _too_large(self) -> HTTPError:
        return HTTPError(413, f"request body exceeds {self.max_body_bytes} bytes", code="too_large")

    async def body(self) -> bytes:
        """The whole body; 413 as soon as it is known to exceed `max_body_bytes` (declared or
        counted as it arrives), so an oversized body is never held in memory."""
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def json_object(self, *, optional: bool = False) -> dict[str, Any]:
        """The body as a JSON object ({} for an empty body when `optional`)."""
        return parse_json_object(await self.body(), optional=optional)


@dataclass
class Reply:
    """An answer: JSON `body`, or `text` sent as `content_type` instead (the metrics page)."""

    status: int
    body: Any = None
    headers: Headers = field(default_factory=list)
    text: str | None = None
    content_type: bytes = _TEXT_TYPE

    def render(self) -> tuple[bytes, Headers]:
        """(payload, headers); ValueError when the body holds a value JSON cannot carry."""
        if self.text is not None:
            return self.text.encode(), [(b"content-type", self.content_type), *self.headers]
        return encode_json(self.body), [(b"content-type", _JSON_TYPE), *self.headers]


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: Mapping[str, str]  # HTTP method -> handler name
    query: frozenset[str] | None  # query parameters the route takes; None: any, unchecked


def route(pattern: str, methods: Mapping[str, str], query: Iterable[str] | None = ()) -> Route:
    """A route matching all of the path against `pattern` (named groups become `params`)."""
    return Route(re.compile(pattern), methods, None if query is None else frozenset(query))


class Router:
    """Routes tried in order; the first whose pattern matches the path decides."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)

    def resolve(self, request: Request) -> str:
        """The handler name for `request`, with its `params` and `query` filled in; HTTPError 404
        (no pattern matches), 405 (with ``Allow``) or 400 (a query parameter the route does not take)."""
        path, method = request.path, request.method
        for candidate in self.routes:
            match = candidate.pattern.fullmatch(path)
            if match is None:
                continue
            name = candidate.methods.get(method)
            if name is None:
                allowed = ", ".join(sorted(candidate.methods))
                raise HTTPError(
                    405,
                    f"{method} is not allowed on {path} (allowed: {allowed})",
                    headers=[(b"allow", allowed.encode())],
                )
            raw_query = bytes(request.scope.get("query_string", b"")).decode("latin-1")
            query = parse_qs(raw_query, keep_blank_values=True)
            if candidate.query is not None:
                unknown = sorted(set(query) - candidate.query)
                if unknown:
                    raise HTTPError(400, f"unknown query parameter(s) on {path}: {', '.join(unknown)}")
            request.params = match.groupdict()
            request.query = query
            return name
        raise HTTPError(404, f"no route for {method} {path}", code="not_found")


class BearerAuth:
    """``Authorization: Bearer <secret>`` when a secret is set; no check when it is not.

    ``noun`` names the secret in the 401 message ("token", "key"), as each app documents it.
    """

    def __init__(self, secret: str | None, *, noun: str = "token") -> None:
        self._secret = secret.encode() if secret else None
        self._noun = noun

    @property
    def enabled(self) -> bool:
        return self._secret is not None

    def check(self, request: Request) -> None:
        """HTTPError 401 unless the request carries the secret (compared in constant time)."""
        if self._secret is None:
            return
        if not hmac.compare_digest(bearer_token(request), self._secret):
            raise HTTPError(
                401,
                f"missing or invalid API {self._noun} (send Authorization: Bearer <{self._noun}>)",
                code="invalid_api_key",
                headers=[(b"www-authenticate", b"Bearer")],
            )


def bearer_token(request: Request) -> bytes:
    """The token of the first ``Authorization: Bearer <token>`` header, or b"" when there is none."""
    for name, value in request.scope["headers"]:
        if name.lower() == b"authorization":
            scheme, _, token = bytes(value).partition(b" ")
            if scheme.lower() == b"bearer":
                return token.strip()
    return b""


def bind_address(host: str, port: int) -> str:
    """hypercorn's bind string: IPv6 hosts go in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AsgiApp:
    """Dispatch by scope type; lifespan is acknowledged (the caller starts what the app serves),
    websockets are refused.

    Subclasses implement `respond` and `error_reply`, and may override `refusal` (their domain
    errors that are the client's fault), `report_failure` and `on_shutdown`.
    """

    max_body_bytes: int = 16 * 1024 * 1024
    log: logging.Logger = logging.getLogger("stratumkit.asgi")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def respond(self, request: Request, send: Send) -> Reply | None:
        """The answer to `request`, or None when the handler sent its own response (a stream)."""
        raise NotImplementedError

    def error_reply(self, error: HTTPError) -> Reply:
        """`error` in this app's error shape."""
        raise NotImplementedError

    def refusal(self, exc: Exception) -> Reply | None:
        """The answer to a domain error that is the client's fault; None for anything else (a bug)."""
        return None

    def report_failure(self, request: Request, exc: BaseException) -> None:
        """Log a request that failed with a bug."""
        self.log.error("request failed: %s %s", request.method, request.path, exc_info=exc)

    def on_shutdown(self) -> None:
        """The server is shutting down (end long-lived responses here)."""

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, self.max_body_bytes)
        try:
            reply = await self.respond(request, send)
        except Disconnected:
            return
        except Exception as exc:
            reply = self._failure(request, exc)
        if reply is None:
            return
        try:
            payload, headers = reply.render()
        except ValueError as exc:  # a value JSON cannot carry (inf, nan): a bug, not the client's
            reply = self._internal_error(request, exc)
            payload, headers = reply.render()
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _failure(self, request: Request, exc: Exception) -> Reply:
        if isinstance(exc, HTTPError):
            return self.error_reply(exc)
        reply = self.refusal(exc)
        return reply if reply is not None else self._internal_error(request, exc)

    def _internal_error(self, request: Request, exc: Exception) -> Reply:
        # Ends this request only, never the server.
        self.report_failure(request, exc)
        return self.error_reply(HTTPError(500, f"internal error ({type(exc).__name__})"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def https_context() -> ssl.SSLContext:
    """A server context with hypercorn's HTTPS settings (its ciphers, TLS 1.2+, no compression,
    ALPN h2 and http/1.1) and no certificate yet: the caller loads its own."""
    defaults = Config()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_ciphers(defaults.ciphers)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(defaults.alpn_protocols)
    return context


class _HttpsConfig(Config):
    """hypercorn's configuration serving HTTPS with a context the caller made and may reload."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self._context = context

    @property
    def ssl_enabled(self) -> bool:
        return True

    def create_ssl_context(self) -> ssl.SSLContext:
        return self._context


async def listen(
    nursery: trio.Nursery,
    app: AsgiApp,
    host: str,
    port: int,
    *,
    errorlog: logging.Logger,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    sock: socket.socket | None = None,
    tls: ssl.SSLContext | None = None,
) -> str:
    """Serve `app` with hypercorn in `nursery`; returns the first address bound
    (``http://127.0.0.1:54321``, the real port when `port` is 0). No access log, no Server header.

    `sock`, when given, is a listening socket already bound to `host`:`port` (a caller that binds
    every port before it starts anything): hypercorn serves a duplicate of it, so the caller may
    close its own once this returns. `tls`, when given, makes it HTTPS with that context (see
    `https_context`); every new connection uses the context as it is then, so a certificate
    loaded into it later reaches new connections only."""
    config = Config() if tls is None else _HttpsConfig(tls)
    config.bind = [bind_address(host, port) if sock is None else f"fd://{os.dup(sock.fileno())}"]
    config.accesslog = None
    config.errorlog = errorlog
    config.include_server_header = False
    binds: list[str] = await nursery.start(
        partial(hypercorn_serve, cast(ASGIFramework, app), config, shutdown_trigger=shutdown_trigger)
    )
    return binds[0]
