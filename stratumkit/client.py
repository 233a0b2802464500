"""A trio-native Python client of the pool's HTTP API (``stratumkit.api``), for integrators.

    async with PoolClient("http://127.0.0.1:8080", token="...") as pool:
        lease = await pool.create_lease(count=1, queue="embed", duration_s=600, model="bge-m3")
        job_id = await pool.submit_job("embed", {"kind": "embeddings", "input": ["hi"]})
        done = await pool.wait_job(job_id, timeout=60)

Every method mirrors one route. A refusal by the API raises `APIError` (its HTTP status and the
API's message); a pool that cannot be reached raises `APIUnreachable`. Both are `PoolClientError`,
so a caller that only reports failures catches one type. httpx runs on trio through anyio, so
nothing here starts a thread.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import h11
import httpx
import trio

__all__ = ["APIError", "APIUnreachable", "EventStream", "PoolClient", "PoolClientError"]


class PoolClientError(Exception):
    """Base class of the client's errors."""


class APIError(PoolClientError):
    """The API answered with an error status; `message` is its ``{"error": ...}`` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class JobDead(PoolClientError):
    """The job was taken out of circulation (dead-lettered): it will never have a result."""

    def __init__(self, job_id: str, reason: str, job: dict[str, Any]) -> None:
        super().__init__(f"job {job_id} is dead: {reason}")
        self.job_id = job_id
        self.reason = reason
        self.job = job


class APIUnreachable(PoolClientError):
    """No answer from the API: connection refused, timed out, or cut off."""


class PoolClient:
    """Client of one pool's API. Use as an async context manager (it holds a connection pool)."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> PoolClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ plumbing

    async def _call(
        self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        try:
            response = await self._http.request(method, path, json=json_body, params=params)
        except httpx.TransportError as exc:
            raise APIUnreachable(f"{method} {self.base_url}{path}: {exc!r}") from exc
        if response.status_code >= 400:
            raise _error_of(response.status_code, response.content)
        try:
            return response.json()
        except ValueError as exc:
            raise APIError(response.status_code, f"answer is not JSON: {exc}") from None

    # ------------------------------------------------------------------ routes

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/health")
        return result

    async def stats(self) -> dict[str, Any]:
        """{"pool": shares, hashrate, blocks, ...; "leases": rigs, live leases, latencies}."""
        result: dict[str, Any] = await self._call("GET", "/v1/stats")
        return result

    async def blocks(self, limit: int | None = None, before: str | None = None) -> dict[str, Any]:
        """{"blocks": newest first, "next": the cursor for `before` or None, "summary": 7d/30d}."""
        params = {k: v for k, v in (("limit", limit), ("before", before)) if v is not None}
        result: dict[str, Any] = await self._call("GET", "/v1/blocks", params=params or None)
        return result

    async def daily_report(self, day: str | None = None) -> dict[str, Any]:
        """The settlement of a UTC day (YYYY-MM-DD; default yesterday): workers, blocks, totals."""
        params = None if day is None else {"date": day}
        result: dict[str, Any] = await self._call("GET", "/v1/reports/daily", params=params)
        return result

    async def history(
        self, bucket: str = "minute", since: float | None = None, worker: str | None = None
    ) -> dict[str, Any]:
        """{"bucket", "series": {"pool": [{t, hashrate, accepted, rejected}], worker: [...]}}."""
        params: dict[str, Any] = {"bucket": bucket}
        if since is not None:
            params["since"] = since
        if worker is not None:
            params["worker"] = worker
        result: dict[str, Any] = await self._call("GET", "/v1/history", params=params)
        return result

    async def rigs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", "/v1/rigs"))["rigs"]
        return result

    async def leases(self, state: str | Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Every lease, or those in `state` (one state name, or several)."""
        params = None
        if state is not None:
            params = {"state": state if isinstance(state, str) else ",".join(state)}
        result: list[dict[str, Any]] = (await self._call("GET", "/v1/leases", params=params))["leases"]
        return result

    async def lease(self, lease_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/v1/leases/{_segment(lease_id)}")
        return result

    async def create_lease(self, *, count: int, queue: str, duration_s: float, **selector: Any) -> dict[str, Any]:
        """Lease `count` rigs to `queue` for `duration_s` seconds. `selector` takes gpu_model,
        min_vram_mb, model, min_count, rigs (rig ids), priority, owner and availability (an SLA target)."""
        body = {"count": count, "queue": queue, "duration_s": duration_s, **selector}
        result: dict[str, Any] = await self._call("POST", "/v1/leases", json_body=body)
        return result

    async def extend_lease(self, lease_id: str, seconds: float) -> dict[str, Any]:
        path = f"/v1/leases/{_segment(lease_id)}/extend"
        result: dict[str, Any] = await self._call("POST", path, json_body={"seconds": seconds})
        return result

    async def cancel_lease(self, lease_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/v1/leases/{_segment(lease_id)}/cancel")
        return result

    async def prices(self) -> dict[str, Any]:
        """The prices in force, their source and age, and whether the safe mode applies."""
        result: dict[str, Any] = await self._call("GET", "/v1/prices")
        return result

    async def set_prices(self, **prices: Any) -> dict[str, Any]:
        """Push prices (power_usd_per_kwh, hashprice_usd_per_th_day, gpu_usd_per_hour, ...)."""
        result: dict[str, Any] = await self._call("POST", "/v1/prices", json_body=prices)
        return result

    async def policy(self) -> dict[str, Any]:
        """Each unit's latest decision with its inputs and reason, recent orders, the curtailment."""
        result: dict[str, Any] = await self._call("GET", "/v1/policy")
        return result

    async def curtail(self, **target: Any) -> dict[str, Any]:
        """Curtail by kw=, fraction=, rigs=[...] or all=True (until= or duration_s= optional)."""
        result: dict[str, Any] = await self._call("POST", "/v1/curtail", json_body=target)
        return result

    async def release_curtailment(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/v1/curtail/release", json_body={})
        return result

    async def energy(self) -> dict[str, Any]:
        """kWh and dollars per unit and mode, and leases with their wall-clock start and end."""
        result: dict[str, Any] = await self._call("GET", "/v1/energy")
        return result

    async def submit_job(self, queue: str, payload: dict[str, Any], job_id: str | None = None) -> str:
        """Enqueue one job; returns its id. With `job_id`, resubmitting is a no-op."""
        body: dict[str, Any] = {"payload": payload}
        if job_id is not None:
            body["job_id"] = job_id
        result = await self._call("POST", f"/v1/queues/{_segment(queue, slash=True)}/jobs", json_body=body)
        return str(result["job_id"])

    async def submit_jobs(
        self, queue: str, payloads: Iterable[dict[str, Any]], job_ids: Sequence[str] | None = None
    ) -> list[str]:
        """Enqueue a batch in one request; returns the ids in order."""
        jobs: list[dict[str, Any]] = [{"payload": payload} for payload in payloads]
        if job_ids is not None:
            if len(job_ids) != len(jobs):
                raise ValueError(f"{len(job_ids)} job ids for {len(jobs)} payloads")
            for job, job_id in zip(jobs, job_ids, strict=True):
                job["job_id"] = job_id
        result = await self._call("POST", f"/v1/queues/{_segment(queue, slash=True)}/jobs", json_body={"jobs": jobs})
        return [str(job_id) for job_id in result["job_ids"]]

    async def job(self, job_id: str) -> dict[str, Any]:
        """{"job_id", "status": "pending"} or {"status": "done", "result", "rig", ...}."""
        result: dict[str, Any] = await self._call("GET", f"/v1/jobs/{_segment(job_id, slash=True)}")
        return result

    async def wait_job(self, job_id: str, timeout: float, *, poll_interval: float = 0.2) -> dict[str, Any]:
        """Poll until the job is done; `JobDead` if it was dead-lettered (it never will be),
        `trio.TooSlowError` after `timeout` seconds."""
        with trio.fail_after(timeout):
            while True:
                job = await self.job(job_id)
                if job["status"] == "done":
                    return job
                if job["status"] == "dead":
                    raise JobDead(job_id, job.get("reason", ""), job)
                await trio.sleep(poll_interval)

    def events(self) -> EventStream:
        """The pool's event stream. ``async with pool.events() as events:`` returns once the
        server is subscribed (every event published after that arrives); a bare ``async for``
        over it works too, subscribing on the first iteration."""
        return EventStream(self)


class EventStream:
    """Events from GET /v1/events as dicts, in order; the iteration ends when the server ends
    the stream. Close it (or leave its `async with`) to end the request.

    It speaks HTTP/1.1 itself (h11 over a trio stream) rather than through httpx: a stream that
    is closed before its end would leave httpx's chain of async generators unfinished, which
    trio reports as a ResourceWarning. Here there are no generators to abandon.
    """

    def __init__(self, client: PoolClient, *, max_line_bytes: int = 1 << 20) -> None:
        self._client = client
        self._max_line = max_line_bytes
        self._stream: trio.abc.Stream | None = None
        self._conn = h11.Connection(h11.CLIENT)
        self._buffer = bytearray()
        self._ended = False

    async def open(self) -> None:
        """Connect and wait for the response headers: from then on no event is missed."""
        if self._stream is not None or self._ended:
            return
        url = urlsplit(self._client.base_url)
        host = url.hostname or "127.0.0.1"
        port = url.port or (443 if url.scheme == "https" else 80)
        target = f"{url.path.rstrip('/')}/v1/events"
        headers = [("host", url.netloc), ("accept", "application/x-ndjson")]
        headers += [
            (name, value) for name, value in self._client._http.headers.items() if name.lower() == "authorization"
        ]
        try:
            with trio.fail_after(self._client.timeout):
                stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
                self._stream = stream
                if url.scheme == "https":
                    tls = trio.SSLStream(stream, ssl.create_default_context(), server_hostname=host)
                    self._stream = tls
                    await tls.do_handshake()
                await self._send(h11.Request(method="GET", target=target, headers=headers))
                await self._send(h11.EndOfMessage())
                response = await self._next_event()
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, h11.ProtocolError) as exc:
            await self.aclose()
            raise APIUnreachable(f"GET {self._client.base_url}/v1/events: {exc!r}") from exc
        if not isinstance(response, h11.Response):
            await self.aclose()
            raise APIUnreachable(f"GET {self._client.base_url}/v1/events: no response")
        if response.status_code >= 400:
            body = bytearray()
            with trio.move_on_after(self._client.timeout):
                while isinstance(event := await self._next_event(), h11.Data):
                    body += event.data
            await self.aclose()
            raise _error_of(response.status_code, bytes(body))

    async def _send(self, event: h11.Event) -> None:
        assert self._stream is not None
        data = self._conn.send(event)
        if data:
            await self._stream.send_all(data)

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        assert self._stream is not None
        while True:
            event = self._conn.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            self._conn.receive_data(bytes(await self._stream.receive_some(65536)))

    async def aclose(self) -> None:
        self._ended = True
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await trio.aclose_forcefully(stream)

    async def __aenter__(self) -> EventStream:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        await self.open()
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                if line.strip():
                    event: dict[str, Any] = json.loads(line)
                    return event
                continue
            if self._stream is None:
                raise StopAsyncIteration
            if len(self._buffer) > self._max_line:
                await self.aclose()
                raise PoolClientError(f"an event line is longer than {self._max_line} bytes")
            try:
                item = await self._next_event()
            except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
                await self.aclose()
                raise APIUnreachable(f"event stream cut off: {exc!r}") from exc
            if isinstance(item, h11.Data):
                self._buffer += item.data
            else:  # EndOfMessage or ConnectionClosed: the server ended the stream
                await self.aclose()
                raise StopAsyncIteration


def _segment(value: str, *, slash: bool = False) -> str:
    """`value` as a path segment. Queue names and job ids may hold "/", which the API's routes
    accept as it is; everything else that is not URL-safe is percent-encoded."""
    return quote(value, safe="/" if slash else "")


def _error_of(status: int, content: bytes) -> APIError:
    try:
        message = json.loads(content)["error"]
        if not isinstance(message, str):
            message = json.dumps(message)
    except (ValueError, KeyError, TypeError):
        message = content.decode("utf-8", "replace").strip() or f"HTTP {status}"
    return APIError(status, message)
