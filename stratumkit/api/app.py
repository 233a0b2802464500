"""The pool's HTTP JSON API for operators and integrators: plain ASGI on hypercorn's trio worker.

Routes (every /v1 route needs ``Authorization: Bearer <api_token>`` when a token is set)::

    GET  /health                      200 {"status": "ok"} while the pool listens, else 503
    GET  /metrics                     Prometheus text: shares, rejects, blocks, connections, ...
    GET  /v1/stats                    {"pool": Pool.snapshot(), "leases": LeaseService.stats()}
    GET  /v1/rigs                     registered rigs
    GET  /v1/leases[?state=S[,S]]     leases, optionally only those in the given states
    POST /v1/leases                   {count, queue, duration_s, gpu_model?, min_vram_mb?, model?,
                                       min_count?, priority?, owner?} -> 201 the lease
    GET  /v1/leases/{id}              one lease
    POST /v1/leases/{id}/extend       {seconds} -> the lease
    POST /v1/leases/{id}/cancel       (no body, or {}) -> the lease
    POST /v1/queues/{queue}/jobs      {payload, job_id?} -> 201 {job_id};
                                      {jobs: [{payload, job_id?}, ...]} -> 201 {job_ids}
    GET  /v1/jobs/{id}                {job_id, status: pending|done, result, ...}
    GET  /v1/events                   newline-delimited JSON events, one chunk per event

Rules:
* Every error answer is ``{"error": "<message>"}``: 400 bad JSON or bad fields (the lease
  layer's RequestError, the queue's InvalidArgument, unknown query parameters), 401 missing or
  wrong token, 404 unknown path / lease / job, 405 wrong method (with ``Allow``), 413 body over
  ``max_body_bytes``, 503 queue closed. Anything else is a bug: logged, answered 500, and it ends
  that request only, never the server.
* Request bodies are JSON objects; unknown fields are refused, so a typo is never ignored.
* The event stream subscribes before it sends its headers: an event published after a client
  has the response headers reaches that client. It ends when the client disconnects, when the
  server shuts down (`ApiApp.close`), or when the client falls ``EVENT_BUFFER`` events behind
  (then its last line is ``{"type": "stream.dropped"}``).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast
from urllib.parse import parse_qs

import structlog
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework

from stratumkit.asgi import AsgiApp, Receive, Scope, Send, bind_address
from stratumkit.lease.errors import UnknownLease
from stratumkit.lease.service import LeaseService, RequestError
from stratumkit.queue.engine import QueueClosed, QueueError, UnknownJob, check_name
from stratumkit.server.pool import Pool

from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import render_metrics

__all__ = ["DEFAULT_MAX_BODY_BYTES", "EVENT_BUFFER", "MAX_BATCH_JOBS", "ApiApp", "serve_api"]

#: A batch of a few thousand jobs with prompts of a few KB each fits.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Jobs one POST may enqueue.
MAX_BATCH_JOBS = 10_000
#: Events an event-stream client may fall behind before it is dropped.
EVENT_BUFFER = 1000

log = structlog.get_logger("stratumkit.api")
_hypercorn_log = logging.getLogger("stratumkit.api.http")

_JSON = [(b"content-type", b"application/json")]


class HTTPError(Exception):
    """An error answer: status and message, sent as ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class _Disconnected(Exception):
    """The client went away before its request body arrived."""


@dataclass
class Request:
    scope: Scope
    receive: Receive
    params: dict[str, str]
    query: dict[str, list[str]]
    max_body_bytes: int

    async def body(self) -> bytes:
        for name, value in self.scope["headers"]:
            if name.lower() == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                raise HTTPError(413, f"request body exceeds {self.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise HTTPError(413, f"request body exceeds {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def json_object(self, *, optional: bool = False) -> dict[str, Any]:
        """The body as a JSON object ({} for an empty body when `optional`)."""
        raw = await self.body()
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
class Reply:
    status: int
    body: Any
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    text: str | None = None  # sent as text/plain instead of JSON (the metrics page)


Handler = Callable[[Request], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: Mapping[str, str]  # HTTP method -> ApiApp method name
    query: frozenset[str] = frozenset()  # query parameters the route accepts


def _route(pattern: str, methods: Mapping[str, str], query: tuple[str, ...] = ()) -> Route:
    return Route(re.compile(pattern), methods, frozenset(query))


# Path parameters: lease ids have no "/"; queue names and job ids may (see queue.engine names).
_ROUTES = (
    _route(r"/health", {"GET": "health"}),
    _route(r"/metrics", {"GET": "metrics"}),
    _route(r"/v1/stats", {"GET": "stats"}),
    _route(r"/v1/rigs", {"GET": "rigs"}),
    _route(r"/v1/leases", {"GET": "list_leases", "POST": "create_lease"}, ("state",)),
    _route(r"/v1/leases/(?P<lease_id>[^/]+)", {"GET": "get_lease"}),
    _route(r"/v1/leases/(?P<lease_id>[^/]+)/extend", {"POST": "extend_lease"}),
    _route(r"/v1/leases/(?P<lease_id>[^/]+)/cancel", {"POST": "cancel_lease"}),
    _route(r"/v1/queues/(?P<queue>.+)/jobs", {"POST": "enqueue"}),
    _route(r"/v1/jobs/(?P<job_id>.+)", {"GET": "get_job"}),
    _route(r"/v1/events", {"GET": "events"}),
)
_STREAMING = frozenset({"events"})


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not, and neither do our answers.
    raise ValueError(f"{name} is not a JSON value")


def _is_protected(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def bearer_token(scope: Scope) -> bytes:
    """The token of an ``Authorization: Bearer <token>`` header, or b"" when there is none."""
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            scheme, _, token = bytes(value).partition(b" ")
            if scheme.lower() == b"bearer":
                return token.strip()
    return b""


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str).encode()


class ApiApp(AsgiApp):
    """The ASGI application over a running Pool and LeaseService."""

    def __init__(
        self,
        pool: Pool,
        leases: LeaseService,
        *,
        api_token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.pool = pool
        self.leases = leases
        self._token = api_token.encode() if api_token else None
        self._max_body_bytes = max_body_bytes
        self._closing = trio.Event()

    def close(self) -> None:
        """End every event stream (the server is shutting down); other requests are unaffected."""
        self._closing.set()

    def on_shutdown(self) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            name, request = self._resolve(scope, receive)
            if name in _STREAMING:
                try:
                    await self._stream_events(request, send)
                except Exception:  # the headers are sent: all that is left is to end the stream
                    log.exception("event stream failed", path=scope["path"])
                return
            handler: Handler = getattr(self, "_" + name)
            reply = await handler(request)
        except _Disconnected:
            return
        except HTTPError as exc:
            reply = Reply(exc.status, {"error": exc.message}, exc.headers)
        except RequestError as exc:
            reply = Reply(400, {"error": str(exc)})
        except QueueClosed as exc:
            reply = Reply(503, {"error": str(exc)})
        except QueueError as exc:
            reply = Reply(400, {"error": str(exc)})
        except Exception as exc:
            reply = _internal_error(scope, exc)
        try:
            payload, headers = _render(reply)
        except ValueError as exc:  # a value JSON cannot carry (inf, nan)
            reply = _internal_error(scope, exc)
            payload, headers = _render(reply)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    *headers,
                    (b"content-length", str(len(payload)).encode()),
                    *reply.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _resolve(self, scope: Scope, receive: Receive) -> tuple[str, Request]:
        path: str = scope["path"]
        method: str = scope["method"]
        if self._token is not None and _is_protected(path):
            # Before routing, so that an unauthenticated client learns nothing about the paths.
            if not hmac.compare_digest(bearer_token(scope), self._token):
                raise HTTPError(
                    401,
                    "missing or invalid API token (send Authorization: Bearer <token>)",
                    [(b"www-authenticate", b"Bearer")],
                )
        for route in _ROUTES:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            name = route.methods.get(method)
            if name is None:
                allowed = ", ".join(sorted(route.methods))
                raise HTTPError(
                    405,
                    f"{method} is not allowed on {path} (allowed: {allowed})",
                    [(b"allow", allowed.encode())],
                )
            query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"), keep_blank_values=True)
            unknown = sorted(set(query) - route.query)
            if unknown:
                raise HTTPError(400, f"unknown query parameter(s) on {path}: {', '.join(unknown)}")
            return name, Request(scope, receive, match.groupdict(), query, self._max_body_bytes)
        raise HTTPError(404, f"no route for {method} {path}")

    def _require_lease(self, lease_id: str) -> None:
        # The service reports an unknown lease as a RequestError (400); the API says 404.
        try:
            self.leases.controller.get(lease_id)
        except UnknownLease as exc:
            raise HTTPError(404, str(exc)) from None

    # ------------------------------------------------------------------ routes

    async def _health(self, request: Request) -> Reply:
        if self.pool.port is None:
            return Reply(503, {"status": "starting"})
        return Reply(200, {"status": "ok", "stratum_port": self.pool.port})

    async def _metrics(self, request: Request) -> Reply:
        return Reply(200, None, text=render_metrics(self.pool.snapshot(), self.leases.stats()))

    async def _stats(self, request: Request) -> Reply:
        return Reply(200, {"pool": self.pool.snapshot(), "leases": self.leases.stats()})

    async def _rigs(self, request: Request) -> Reply:
        return Reply(200, {"rigs": self.leases.rigs()})

    async def _list_leases(self, request: Request) -> Reply:
        states = [s for value in request.query.get("state", []) for s in value.split(",") if s]
        return Reply(200, {"leases": self.leases.list_leases(states or None)})

    async def _create_lease(self, request: Request) -> Reply:
        body = await request.json_object()
        lease = await self.leases.create_lease(body)
        location = f"/v1/leases/{lease['lease_id']}".encode()
        return Reply(201, lease, [(b"location", location)])

    async def _get_lease(self, request: Request) -> Reply:
        lease_id = request.params["lease_id"]
        self._require_lease(lease_id)
        return Reply(200, self.leases.lease_view(lease_id))

    async def _extend_lease(self, request: Request) -> Reply:
        lease_id = request.params["lease_id"]
        self._require_lease(lease_id)
        body = await request.json_object()
        _only(body, {"seconds"})
        if "seconds" not in body:
            raise HTTPError(400, "missing field: seconds")
        return Reply(200, await self.leases.extend_lease(lease_id, body["seconds"]))

    async def _cancel_lease(self, request: Request) -> Reply:
        lease_id = request.params["lease_id"]
        self._require_lease(lease_id)
        _only(await request.json_object(optional=True), set())
        return Reply(200, await self.leases.cancel_lease(lease_id))

    async def _enqueue(self, request: Request) -> Reply:
        queue = check_name("queue", request.params["queue"])
        body = await request.json_object()
        if "jobs" in body:
            _only(body, {"jobs"})
            items = body["jobs"]
            if not isinstance(items, list) or not items:
                raise HTTPError(400, "jobs must be a non-empty list of {payload, job_id?} objects")
            if len(items) > MAX_BATCH_JOBS:
                raise HTTPError(400, f"at most {MAX_BATCH_JOBS} jobs per request, got {len(items)}")
            jobs = [_job_item(item, f"jobs[{i}]") for i, item in enumerate(items)]
            done: list[str] = []
            for i, (payload, job_id) in enumerate(jobs):
                try:
                    done.append(await self.leases.enqueue(queue, payload, job_id))
                except (RequestError, QueueError) as exc:
                    # Earlier jobs are in the queue: say which, so a retry can reuse their ids.
                    raise HTTPError(
                        400,
                        f"jobs[{i}]: {exc} (jobs before it were enqueued: {', '.join(done) or 'none'})",
                    ) from None
            return Reply(201, {"job_ids": done})
        payload, job_id = _job_item(body, "body")
        return Reply(201, {"job_id": await self.leases.enqueue(queue, payload, job_id)})

    async def _get_job(self, request: Request) -> Reply:
        job_id = check_name("job_id", request.params["job_id"])
        try:
            return Reply(200, await self.leases.job(job_id))
        except UnknownJob as exc:
            raise HTTPError(404, str(exc)) from None

    async def _stream_events(self, request: Request, send: Send) -> None:
        disconnected = False
        async with self.leases.events(EVENT_BUFFER) as events:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/x-ndjson"),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            async with trio.open_nursery() as nursery:

                async def until_disconnect() -> None:
                    nonlocal disconnected
                    while (await request.receive())["type"] != "http.disconnect":
                        pass
                    disconnected = True
                    nursery.cancel_scope.cancel()

                async def until_closing() -> None:
                    await self._closing.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(until_disconnect)
                nursery.start_soon(until_closing)
                async for event in events:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": _encode(event) + b"\n",
                            "more_body": True,
                        }
                    )
                # The channel ended: this subscriber fell too far behind and was dropped.
                dropped = {
                    "type": "stream.dropped",
                    "reason": f"fell more than {EVENT_BUFFER} events behind",
                }
                await send(
                    {
                        "type": "http.response.body",
                        "body": _encode(dropped) + b"\n",
                        "more_body": True,
                    }
                )
                nursery.cancel_scope.cancel()
        if not disconnected:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _internal_error(scope: Scope, exc: Exception) -> Reply:
    log.error("API request failed", method=scope["method"], path=scope["path"], exc_info=exc)
    return Reply(500, {"error": f"internal error ({type(exc).__name__})"})


def _render(reply: Reply) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    if reply.text is not None:
        return reply.text.encode(), [(b"content-type", METRICS_CONTENT_TYPE.encode())]
    return _encode(reply.body), _JSON


def _only(body: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise HTTPError(400, f"unknown field(s): {', '.join(unknown)}")


def _job_item(item: Any, where: str) -> tuple[dict[str, Any], str | None]:
    """(payload, job_id) from {payload, job_id?}, checked before anything is enqueued."""
    if not isinstance(item, dict):
        raise HTTPError(400, f"{where} must be a JSON object {{payload, job_id?}}")
    unknown = sorted(set(item) - {"payload", "job_id"})
    if unknown:
        raise HTTPError(400, f"{where}: unknown field(s): {', '.join(unknown)}")
    if "payload" not in item:
        raise HTTPError(400, f"{where}: missing field: payload")
    if not isinstance(item["payload"], dict):
        raise HTTPError(400, f"{where}: payload must be a JSON object")
    job_id = item.get("job_id")
    if job_id is not None:
        try:
            check_name("job_id", job_id)
        except QueueError as exc:
            raise HTTPError(400, f"{where}: {exc}") from None
    return item["payload"], job_id


async def serve_api(
    pool: Pool,
    leases: LeaseService,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    api_token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API until cancelled, or until `shutdown_trigger` returns (then event streams end
    at once and other requests in flight get hypercorn's graceful timeout to finish).

    For ``nursery.start``: reports the TCP port actually bound (useful with ``port=0``).
    """
    config = Config()
    config.bind = [bind_address(host, port)]
    config.accesslog = None
    config.errorlog = _hypercorn_log
    config.include_server_header = False
    app = ApiApp(pool, leases, api_token=api_token, max_body_bytes=max_body_bytes)

    async def trigger() -> None:
        assert shutdown_trigger is not None
        await shutdown_trigger()
        app.close()

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(
                hypercorn_serve,
                cast(ASGIFramework, app),
                config,
                shutdown_trigger=trigger if shutdown_trigger is not None else None,
            )
        )
        bound = int(binds[0].rsplit(":", 1)[1])
        log.info("API listening", host=host, port=bound, token=api_token is not None)
        task_status.started(bound)
