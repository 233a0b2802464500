"""Prometheus text exposition (format 0.0.4) of the pool's and the lease layer's numbers.

Pure: it renders the dicts `Pool.snapshot()` and `LeaseService.stats()` return, so it can be
tested without a server. Counters carry the `_total` suffix; label values are escaped as the
format requires (backslash, double quote, newline). Per-worker series are left out on purpose:
worker names are unbounded, and a scrape must stay small with thousands of miners.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_Sample = tuple[Mapping[str, str], float]


def render_metrics(pool: Mapping[str, Any], leases: Mapping[str, Any]) -> str:
    """The /metrics page: shares, rejects by reason, blocks, connections, hashrate, rigs, leases."""
    out: list[str] = []
    _family(
        out,
        "stratumkit_shares_accepted_total",
        "counter",
        "Shares accepted, ever (the share log's records: a restart keeps the count).",
        [({}, pool.get("accepted", 0))],
    )
    rejected = pool.get("rejected", {}) or {}
    _family(
        out,
        "stratumkit_shares_rejected_total",
        "counter",
        "Shares rejected since the pool started, by reason.",
        [({"reason": str(reason)}, count) for reason, count in sorted(rejected.items())],
    )
    _family(
        out,
        "stratumkit_blocks_found_total",
        "counter",
        "Blocks found, ever (the block ledger's rows: a restart keeps the count).",
        [({}, pool.get("blocks", 0))],
    )
    _family(
        out,
        "stratumkit_connections",
        "gauge",
        "Open stratum connections.",
        [({}, pool.get("connections", 0))],
    )
    _family(
        out,
        "stratumkit_hashrate_hashes_per_second",
        "gauge",
        "Pool hashrate estimated from accepted share difficulty (ten-minute window).",
        [({}, pool.get("hashrate", 0.0))],
    )
    height = pool.get("height")
    if height is not None:
        _family(
            out,
            "stratumkit_block_height",
            "gauge",
            "Height of the block the current job builds.",
            [({}, height)],
        )
    _family(
        out,
        "stratumkit_uptime_seconds",
        "gauge",
        "Seconds since the pool started.",
        [({}, pool.get("uptime", 0.0))],
    )
    _family(
        out,
        "stratumkit_rigs",
        "gauge",
        "Rigs registered for leasing.",
        [({}, leases.get("rigs", 0))],
    )
    _family(
        out,
        "stratumkit_leases_live",
        "gauge",
        "Leases requested, draining or serving.",
        [({}, leases.get("leases_live", 0))],
    )
    _family(
        out,
        "stratumkit_queue_up",
        "gauge",
        "1 while the job queue answers, 0 during an outage.",
        [({}, 1 if leases.get("queue_up", True) else 0)],
    )
    _family(
        out,
        "stratumkit_queue_outages_total",
        "counter",
        "Job queue outages seen (a run of failed calls counts once).",
        [({}, leases.get("queue_outages", 0))],
    )
    for key, name, text in (
        (
            "divert_latency_s",
            "stratumkit_lease_divert_latency_seconds",
            "Lease created -> rig serving.",
        ),
        (
            "return_latency_s",
            "stratumkit_lease_return_latency_seconds",
            "Return sent -> rig's first accepted share.",
        ),
    ):
        summary = leases.get(key)
        if summary:
            samples: list[_Sample] = [
                ({"quantile": "0.5"}, summary["p50"]),
                ({"quantile": "0.99"}, summary["p99"]),
            ]
            _family(out, name, "summary", text, samples)
            out.append(f"{name}_count {_number(summary['n'])}")
    return "\n".join(out) + "\n"


def _family(out: list[str], name: str, kind: str, text: str, samples: Iterable[_Sample]) -> None:
    out.append(f"# HELP {name} {text}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        if labels:
            inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
            out.append(f"{name}{{{inner}}} {_number(value)}")
        else:
            out.append(f"{name} {_number(value)}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Any) -> str:
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number)
