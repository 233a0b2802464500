"""The pool's HTTP JSON API for operators and integrators: plain ASGI on hypercorn's trio worker.

Routes (who needs a token on the /v1 routes, and whose leases a token sees:
`stratumkit.api.access`; the admin ``api_token`` or an integrator's: `stratumkit.api.tenants`)::

    GET  /                            the operator's dashboard (`stratumkit.dashboard`), no token
    GET  /dashboard/{file}            its static files; /dashboard/session: what the page may call
    GET  /health                      200 {"status": "ok", "queue": ..., "lease_store": ...} while the
                                      pool listens and its queue and lease store answer, else 503
    GET  /metrics                     Prometheus text: shares, rejects, blocks, connections, ...
    GET  /v1/stats                    {"pool": PoolView.snapshot(), "leases": LeaseAPI.stats()}
    GET  /v1/blocks[?limit=N&before=C] found blocks newest first, with effort; 7d/30d summaries
    GET  /v1/reports/daily[?date=D]   per-worker earnings and balances of a UTC day (the operator only)
    GET  /v1/history[?bucket=minute|hour&since=UNIX&worker=W&top=N]  hashrate and share counts
    GET  /v1/rigs                     registered rigs
    GET  /v1/leases[?state=S[,S]]     leases, optionally only those in the given states
    POST /v1/leases                   {count, queue, duration_s, gpu_model?, min_vram_mb?, model?,
                                       min_count?, priority?, owner?} -> 201 the lease
    GET  /v1/leases/{id}              one lease
    POST /v1/leases/{id}/extend       {seconds} -> the lease
    POST /v1/leases/{id}/cancel       (no body, or {}) -> the lease
    GET  /v1/leases/{id}/jobs         the jobs its rigs ran: status, rig, claimed_at, finished_at
    POST /v1/integrators              {name} -> 201 {name, token} (the operator only)
    POST /v1/queues/{queue}/jobs      {payload, job_id?} -> 201 {job_id};
                                      {jobs: [{payload, job_id?}, ...]} -> 201 {job_ids}
                                      (one queue call: the whole batch or none of it)
    GET  /v1/jobs/{id}                {job_id, status: pending|done|failed|dead, result, cause?, ...}
    GET  /v1/events                   newline-delimited JSON events, one chunk per event
    GET|POST /v1/prices, GET /v1/policy, GET|POST /v1/curtail, POST /v1/curtail/release,
    GET  /v1/energy                   the power layer (`stratumkit.power`), when it runs

Rules:
* Every error answer is ``{"error": "<message>"}``: 400 bad JSON or bad fields (the lease
  layer's RequestError, the queue's InvalidArgument, unknown query parameters), 401 missing or
  layer's RequestError, the queue's InvalidArgument, unknown query parameters), 401 missing or
  wrong token, 403 not from this host with no token set (or an integrator asking for the
  operator's routes), 404 unknown path / lease / job, 405 wrong method (with ``Allow``), 413 body
  over ``max_body_bytes``, 503 queue or lease store unavailable (an outage, not the request's
  fault). Anything else is a bug: logged, answered 500, and it ends that request only, never the
  server.
* Request bodies are JSON objects; unknown fields are refused, so a typo is never ignored.
* The event stream subscribes before it sends its headers: an event published after a client
  has the response headers reaches that client. It ends when the client disconnects, when the
  server shuts down (`ApiApp.close`), or when the client falls ``EVENT_BUFFER`` events behind
  (then its last line is ``{"type": "stream.dropped"}``).
* The app reads the pool and the lease layer through the protocols of `stratumkit.api.ports`;
  request bodies, tokens, routing and replies go through `stratumkit.asgi`, as in the inference
  server.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
import trio

from stratumkit.asgi import AsgiApp, HTTPError, Reply, Request, Router, Send, encode_json, listen, route
from stratumkit.dashboard.files import INDEX, PANEL_ROUTES, dashboard_file
from stratumkit.lease.errors import RequestError, Unavailable
from stratumkit.lease.queue_health import is_outage
from stratumkit.queue.engine import QueueClosed, QueueError, UnknownJob, check_name

from .access import REFUSAL, ApiAccess
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import render_metrics, render_operator_metrics
from .operator import OperatorPort, blocks_query, daily_query, history_query
from .ports import LeaseAPI, PoolView, PowerAPI
from .tenants import Principal, Tenants, principal, require_operator

__all__ = ["DEFAULT_MAX_BODY_BYTES", "EVENT_BUFFER", "MAX_BATCH_JOBS", "ApiApp", "serve_api"]

#: A batch of a few thousand jobs with prompts of a few KB each fits.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Jobs one POST may enqueue.
MAX_BATCH_JOBS = 10_000
#: Events an event-stream client may fall behind before it is dropped.
EVENT_BUFFER = 1000
#: Routes answered only when the API has the pool's operator port (history, blocks).
_OPERATOR_PATHS = frozenset({"/v1/blocks", "/v1/history", "/v1/reports/daily"})
#: Routes answered only when the power layer runs in this process.
_POWER_PATHS = frozenset({"/v1/policy"})
#: Routes that read rigs, leases or lease stats (the lease layer's ``refresh`` comes first).
_LEASE_READS = frozenset({"rigs", "list_leases", "get_lease", "extend_lease", "cancel_lease", "lease_jobs", "stats",
                          "metrics"})  # fmt: skip
#: The longest operator message sent to miners (what their screens can show).
MAX_MESSAGE_CHARS = 512

log = structlog.get_logger("stratumkit.api")
_hypercorn_log = logging.getLogger("stratumkit.api.http")

Handler = Callable[[Request], Awaitable[Reply]]

# Path parameters: lease ids have no "/"; queue names and job ids may (see queue.engine names).
_ROUTER = Router(
    [
        route(r"/", {"GET": "dashboard"}),
        route(r"/dashboard/session", {"GET": "dashboard_session"}),
        route(r"/dashboard/(?P<name>[\w./-]+)", {"GET": "dashboard_file"}, None),
        route(r"/health", {"GET": "health"}),
        route(r"/metrics", {"GET": "metrics"}),
        route(r"/v1/stats", {"GET": "stats"}),
        route(r"/v1/blocks", {"GET": "blocks"}, ("limit", "before")),
        route(r"/v1/history", {"GET": "history"}, ("bucket", "since", "worker", "top")),
        route(r"/v1/reports/daily", {"GET": "daily_report"}, ("date",)),
        route(r"/v1/rigs", {"GET": "rigs"}),
        route(r"/v1/messages", {"POST": "message"}),
        route(r"/v1/integrators", {"POST": "issue_token"}),
        route(r"/v1/leases", {"GET": "list_leases", "POST": "create_lease"}, ("state",)),
        route(r"/v1/leases/(?P<lease_id>[^/]+)", {"GET": "get_lease"}),
        route(r"/v1/leases/(?P<lease_id>[^/]+)/extend", {"POST": "extend_lease"}),
        route(r"/v1/leases/(?P<lease_id>[^/]+)/cancel", {"POST": "cancel_lease"}),
        route(r"/v1/leases/(?P<lease_id>[^/]+)/jobs", {"GET": "lease_jobs"}),
        route(r"/v1/queues/(?P<queue>.+)/jobs", {"POST": "enqueue"}),
        route(r"/v1/jobs/(?P<job_id>.+)", {"GET": "get_job"}),
        route(r"/v1/events", {"GET": "events"}),
        route(r"/v1/prices", {"GET": "power", "POST": "power"}),
        route(r"/v1/policy", {"GET": "power"}),
        route(r"/v1/curtail", {"GET": "power", "POST": "power"}),
        route(r"/v1/curtail/release", {"POST": "power"}),
        route(r"/v1/energy", {"GET": "power"}),
    ]
)


#: The dashboard's files load nothing from elsewhere and are framed by no one.
_DASHBOARD_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-cache"),
]


def _is_protected(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


class ApiApp(AsgiApp):
    """The ASGI application over a running pool and lease layer."""

    def __init__(
        self,
        pool: PoolView,
        leases: LeaseAPI,
        *,
        api_token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        operator: OperatorPort | None = None,
        power: PowerAPI | None = None,
    ) -> None:
        self.pool = pool
        self.leases = leases
        self.operator = operator
        self.power = power
        self._access = ApiAccess(Tenants(api_token, leases))
        self.max_body_bytes = max_body_bytes
        self._closing = trio.Event()

    def close(self) -> None:
        """End every event stream (the server is shutting down); other requests are unaffected."""
        self._closing.set()

    def on_shutdown(self) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    async def respond(self, request: Request, send: Send) -> Reply | None:
        if _is_protected(request.path):
            # Before routing, so that an unauthenticated client learns nothing about the paths.
            self._access.check(request)
        name = _ROUTER.resolve(request)
        if name == "events":
            try:
                await self._stream_events(request, send)
            except Exception:  # the headers are sent: all that is left is to end the stream
                log.exception("event stream failed", path=request.path)
            return None
        handler: Handler = getattr(self, "_" + name)
        if name in _LEASE_READS:
            await self.leases.refresh(name, request.params.get("lease_id"))
        return await handler(request)

    def error_reply(self, error: HTTPError) -> Reply:
        return Reply(error.status, {"error": error.message}, error.headers)

    def refusal(self, exc: Exception) -> Reply | None:
        if isinstance(exc, RequestError):
            return Reply(400, {"error": str(exc)})
        if isinstance(exc, QueueClosed | Unavailable) or (isinstance(exc, QueueError) and is_outage(exc)):
            return Reply(503, {"error": str(exc)})
        if isinstance(exc, QueueError):
            return Reply(400, {"error": str(exc)})
        return None

    def report_failure(self, request: Request, exc: BaseException) -> None:
        log.error("API request failed", method=request.method, path=request.path, exc_info=exc)

    def _require_lease(self, request: Request) -> str:
        # The lease layer reports an unknown lease as a RequestError (400); the API says 404,
        # also for another integrator's lease.
        lease_id = request.params["lease_id"]
        if not self.leases.has_lease(lease_id) or not principal(request).owns(self.leases.lease_owner(lease_id)):
            raise HTTPError(404, f"no lease {lease_id!r}")
        return lease_id

    # ------------------------------------------------------------------ routes

    async def _dashboard(self, request: Request) -> Reply:
        return await self._dashboard_file(request, INDEX)

    async def _dashboard_file(self, request: Request, name: str | None = None) -> Reply:
        found = dashboard_file(name or request.params["name"])
        if found is None:
            raise HTTPError(404, f"no dashboard file {request.path!r}")
        return Reply(200, text=found.text, content_type=found.content_type, headers=list(_DASHBOARD_HEADERS))

    async def _dashboard_session(self, request: Request) -> Reply:
        """What the page may do from where it is: the optional routes this API has, and whether
        its calls need the token (or are refused), so that it never asks for what fails."""
        body = {
            "routes": [panel for panel, path in PANEL_ROUTES.items() if self._serves_get(path)],
            "token_needed": self._access.token_needed(request),
            "refused": REFUSAL if self._access.refused(request) else None,
        }
        return Reply(200, body, [(b"cache-control", b"no-store")])

    async def _health(self, request: Request) -> Reply:
        port = self.pool.port
        if port is None:
            return Reply(503, {"status": "starting"})
        parts = await self.leases.health()
        body: dict[str, Any] = {"stratum_port": port, **parts}
        if self.power is not None:
            body["power"] = self.power.health()
        if any(part["status"] != "ok" for part in parts.values()):  # miners are served; integrators are not
            return Reply(503, {"status": "degraded", **body})
        return Reply(200, {"status": "ok", **body})

    async def _metrics(self, request: Request) -> Reply:
        text = render_metrics(self.pool.snapshot(), self.leases.stats())
        if self.operator is not None:
            text += render_operator_metrics(await self.operator.figures())
        if self.power is not None:
            text += self.power.metrics()
        return Reply(200, text=text, content_type=METRICS_CONTENT_TYPE.encode())

    async def _stats(self, request: Request) -> Reply:
        return Reply(200, {"pool": self.pool.snapshot(), "leases": self.leases.stats()})

    def _serves_get(self, path: str) -> bool:
        """A GET of `path` is routed here and has what it needs (blocks, history: the operator port;
        the policy: the power layer)."""
        if (path in _OPERATOR_PATHS and self.operator is None) or (path in _POWER_PATHS and self.power is None):
            return False
        return any(r.pattern.fullmatch(path) and "GET" in r.methods for r in _ROUTER.routes)

    def _operator(self) -> OperatorPort:
        if self.operator is None:
            raise HTTPError(404, "this API serves no pool history")
        return self.operator

    async def _blocks(self, request: Request) -> Reply:
        return Reply(200, await self._operator().blocks(*blocks_query(request)))

    async def _history(self, request: Request) -> Reply:
        return Reply(200, await self._operator().history(*history_query(request)))

    async def _daily_report(self, request: Request) -> Reply:
        require_operator(request)
        return Reply(200, await self._operator().daily(daily_query(request)))

    async def _message(self, request: Request) -> Reply:
        """An operator's message shown by the miners (`client.show_message`): {text, worker?}."""
        require_operator(request)
        body = await request.json_object()
        _only(body, {"text", "worker"})
        text, worker = body.get("text"), body.get("worker")
        if type(text) is not str or not 1 <= len(text) <= MAX_MESSAGE_CHARS:
            raise HTTPError(400, f"text must be a string of 1..{MAX_MESSAGE_CHARS} characters")
        if worker is not None and (type(worker) is not str or not worker):
            raise HTTPError(400, "worker must be a worker name (leave it out for every miner)")
        return Reply(200, {"sent": self.pool.send_message(text, worker)})

    async def _issue_token(self, request: Request) -> Reply:
        """The operator issues an integrator a token: {name} -> 201 {name, token}."""
        require_operator(request)
        body = await request.json_object()
        _only(body, {"name"})
        token = await self.leases.issue_token(body.get("name"))
        return Reply(201, {"name": body["name"], "token": token})

    def _visible(self, caller: Principal, event: Mapping[str, Any]) -> bool:
        """An integrator's event stream leaves out the events of others' leases (by the owner the
        event carries, or else the lease's)."""
        lease_id = event.get("lease_id")
        if lease_id is None:
            return True
        if "owner" in event:
            owner = event["owner"]
            return caller.owns(owner if isinstance(owner, str) else None)
        if not isinstance(lease_id, str) or not self.leases.has_lease(lease_id):
            return False
        return caller.owns(self.leases.lease_owner(lease_id))

    async def _power(self, request: Request) -> Reply:
        if self.power is None:
            raise HTTPError(404, "the power layer is not running in this process")
        if request.method == "POST":
            require_operator(request)  # prices and curtailment are the operator's
        body = await request.json_object(optional=True) if request.method == "POST" else None
        try:
            return Reply(200, await self.power.call(request.method, request.path, body))
        except ValueError as exc:  # BadPrice, BadCurtail: the reason is the answer
            raise HTTPError(400, str(exc)) from None

    async def _rigs(self, request: Request) -> Reply:
        return Reply(200, {"rigs": self.leases.rigs()})

    async def _list_leases(self, request: Request) -> Reply:
        states = [s for value in request.query.get("state", []) for s in value.split(",") if s]
        caller = principal(request)
        leases = [view for view in self.leases.list_leases(states or None) if caller.owns(view.get("owner"))]
        return Reply(200, {"leases": leases})

    async def _create_lease(self, request: Request) -> Reply:
        body = await request.json_object()
        caller = principal(request)
        if not caller.operator:  # a lease belongs to the integrator who made it
            if body.get("owner", caller.name) != caller.name:
                raise HTTPError(400, "owner is the integrator whose token made the lease; leave it out")
            body["owner"] = caller.name
        lease = await self.leases.create_lease(body)
        location = f"/v1/leases/{lease['lease_id']}".encode()
        return Reply(201, lease, [(b"location", location)])

    async def _get_lease(self, request: Request) -> Reply:
        lease_id = self._require_lease(request)
        return Reply(200, self.leases.lease_view(lease_id))

    async def _extend_lease(self, request: Request) -> Reply:
        lease_id = self._require_lease(request)
        body = await request.json_object()
        _only(body, {"seconds"})
        if "seconds" not in body:
            raise HTTPError(400, "missing field: seconds")
        return Reply(200, await self.leases.extend_lease(lease_id, body["seconds"]))

    async def _lease_jobs(self, request: Request) -> Reply:
        lease_id = self._require_lease(request)
        return Reply(200, {"jobs": await self.leases.lease_jobs(lease_id)})

    async def _cancel_lease(self, request: Request) -> Reply:
        lease_id = self._require_lease(request)
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
            try:
                done = await self.leases.enqueue_many(queue, jobs)
            except QueueClosed:
                raise
            except Unavailable as exc:
                raise HTTPError(503, f"jobs: {exc} (none of the batch was enqueued)") from None
            except (RequestError, QueueError) as exc:
                raise HTTPError(400, f"{exc} (none of the batch was enqueued)") from None
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
                caller = principal(request)
                async for event in events:
                    if not caller.operator and not self._visible(caller, event):
                        continue
                    await send({"type": "http.response.body", "body": encode_json(event) + b"\n", "more_body": True})
                # The iteration ended: this subscriber fell too far behind and was dropped.
                dropped = {"type": "stream.dropped", "reason": f"fell more than {EVENT_BUFFER} events behind"}
                await send({"type": "http.response.body", "body": encode_json(dropped) + b"\n", "more_body": True})
                nursery.cancel_scope.cancel()
        if not disconnected:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


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
    pool: PoolView,
    leases: LeaseAPI,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    api_token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    operator: OperatorPort | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    sock: socket.socket | None = None,
    tls: ssl.SSLContext | None = None,
    power: PowerAPI | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API until cancelled, or until `shutdown_trigger` returns (then event streams end
    at once and other requests in flight get hypercorn's graceful timeout to finish). `sock`,
    when given, is the listening socket bound to `host`:`port` already; `tls` makes it HTTPS (see
    `asgi.listen`).

    For ``nursery.start``: reports the TCP port actually bound (useful with ``port=0``).
    """
    app = ApiApp(pool, leases, api_token=api_token, max_body_bytes=max_body_bytes, operator=operator, power=power)

    async def trigger() -> None:
        assert shutdown_trigger is not None
        await shutdown_trigger()
        app.close()

    async with trio.open_nursery() as nursery:
        bind = await listen(
            nursery,
            app,
            host,
            port,
            errorlog=_hypercorn_log,
            shutdown_trigger=trigger if shutdown_trigger is not None else None,
            sock=sock,
            tls=tls,
        )
        bound = int(bind.rsplit(":", 1)[1])
        log.info("API listening", host=host, port=bound, token=api_token is not None, https=tls is not None)
        task_status.started(bound)
