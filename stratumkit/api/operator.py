"""What the operator's routes read: block history, share history and the figures `/metrics`
adds for alerting, behind one small protocol so the API stays testable without a pool.

    GET /v1/blocks?limit=N&before=CURSOR             newest first, with effort and summaries
    GET /v1/history?bucket=minute|hour&since=UNIX&worker=NAME&top=N
    GET /v1/reports/daily?date=YYYY-MM-DD             the day's settlement (default: yesterday, UTC)

`stratumkit.server.operator.PoolOperator` is the implementation the composition root gives the API.
The query parsing lives here so the routes in `stratumkit.api.app` stay one line each.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from stratumkit.asgi import HTTPError, Request
from stratumkit.jobs.block_history import CursorError, parse_cursor

__all__ = ["DEFAULT_BLOCKS", "DEFAULT_TOP", "OperatorPort", "blocks_query", "daily_query", "history_query"]

DEFAULT_BLOCKS = 50
MAX_BLOCKS = 500
#: Worker series /v1/history returns without `worker=` (`top=` changes it).
DEFAULT_TOP = 10
MAX_TOP = 100
BUCKET_NAMES = ("minute", "hour")


class OperatorPort(Protocol):
    async def blocks(self, limit: int, before: str | None) -> dict[str, Any]:
        """{"blocks": [...], "next": cursor | None, "summary": {"7d": ..., "30d": ...}}; `before`
        is a cursor a page gave (`blocks_query` checks it)."""
        ...

    async def history(self, bucket: str, since: float | None, worker: str | None, top: int) -> dict[str, Any]:
        """{"bucket": bucket, "series": {"pool": [...], worker: [...]}}."""
        ...

    async def daily(self, day: date) -> dict[str, Any]:
        """The settlement of one UTC day (`stratumkit.shares.payouts.daily_report`)."""
        ...

    async def figures(self) -> dict[str, Any]:
        """The operator's figures `stratumkit.api.metrics.render_operator_metrics` renders."""
        ...


def _one(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise HTTPError(400, f"{name} given more than once")
    return values[0]


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = _one(request, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPError(400, f"{name} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise HTTPError(400, f"{name} must be {low}..{high}, got {value}")
    return value


def blocks_query(request: Request) -> tuple[int, str | None]:
    """(limit, before) of a /v1/blocks request."""
    before = _one(request, "before")
    if before is not None:
        try:
            parse_cursor(before)
        except CursorError as exc:
            raise HTTPError(400, str(exc)) from None
    return _int(request, "limit", DEFAULT_BLOCKS, 1, MAX_BLOCKS), before


def history_query(request: Request) -> tuple[str, float | None, str | None, int]:
    """(bucket, since, worker, top) of a /v1/history request."""
    bucket = _one(request, "bucket") or "minute"
    if bucket not in BUCKET_NAMES:
        raise HTTPError(400, f"bucket must be one of {', '.join(BUCKET_NAMES)}, got {bucket!r}")
    since_text = _one(request, "since")
    since = None
    if since_text is not None:
        try:
            since = float(since_text)
        except ValueError:
            raise HTTPError(400, f"since must be a unix time in seconds, got {since_text!r}") from None
        if not math.isfinite(since):
            raise HTTPError(400, f"since must be a unix time in seconds, got {since_text!r}")
    worker = _one(request, "worker")
    if worker == "":
        raise HTTPError(400, "worker must be a worker name (leave it out for the top workers)")
    return bucket, since, worker, _int(request, "top", DEFAULT_TOP, 0, MAX_TOP)


def daily_query(request: Request, today: date | None = None) -> date:
    """The `date` of a /v1/reports/daily request (YYYY-MM-DD; default: yesterday, UTC)."""
    text = _one(request, "date")
    if text is None:
        return (today or datetime.now(UTC).date()) - timedelta(days=1)
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise HTTPError(400, f"date must be a UTC day as YYYY-MM-DD, got {text!r}")
    return day
