"""Prometheus text exposition (format 0.0.4) of the pool's and the lease layer's numbers.

Pure: it renders the dicts `Pool.snapshot()` and `LeaseService.stats()` return, so it can be
tested without a server. Counters carry the `_total` suffix; label values are escaped as the
format requires (backslash, double quote, newline). Worker names are unbounded, so per-worker
series (`render_operator_metrics`) label only the fastest `WORKER_LABELS` workers and sum the rest.
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
        "Shares rejected, by reason (kept across restarts up to the last share-history flush).",
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


#: Workers given their own label in the per-worker families; the rest are summed as "other".
WORKER_LABELS = 50
OTHER_WORKERS = "other"


def render_operator_metrics(figures: Mapping[str, Any], worker_labels: int = WORKER_LABELS) -> str:
    """The families an operator alerts on, from `OperatorPort.figures()`: per-worker hashrate and
    shares (the `worker_labels` fastest workers by name, the rest as worker="other", so a scrape
    stays small with thousands of miners), node health, the network, queue depths, the share
    log's sync latency, connections by state and rigs by mode."""
    out: list[str] = []
    workers = figures.get("workers") or {}
    ranked = sorted(workers.items(), key=lambda kv: (-float(kv[1].get("hashrate", 0.0)), kv[0]))
    shown: dict[str, list[float]] = {}
    for i, (name, w) in enumerate(ranked):
        label = name if i < worker_labels else OTHER_WORKERS
        row = shown.setdefault(label, [0.0, 0.0, 0.0])
        row[0] += float(w.get("hashrate", 0.0))
        row[1] += float(w.get("accepted", 0))
        row[2] += float(sum((w.get("rejected") or {}).values()))
    _family(
        out,
        "stratumkit_worker_hashrate_hashes_per_second",
        "gauge",
        f"Worker hashrate (ten-minute window); workers past the {worker_labels} fastest are summed as other.",
        [({"worker": name}, row[0]) for name, row in shown.items()],
    )
    _family(
        out,
        "stratumkit_worker_shares_accepted_total",
        "counter",
        "Shares accepted per worker (kept across restarts by the share history).",
        [({"worker": name}, row[1]) for name, row in shown.items()],
    )
    _family(
        out,
        "stratumkit_worker_shares_rejected_total",
        "counter",
        "Shares rejected per worker (kept across restarts up to the last history flush).",
        [({"worker": name}, row[2]) for name, row in shown.items()],
    )
    node = figures.get("node") or {}
    _family(
        out,
        "stratumkit_node_up",
        "gauge",
        "1 while the template source answers (the embedded chain always does), else 0.",
        [({"source": str(node.get("source", ""))}, 1 if node.get("up") else 0)],
    )
    age = node.get("last_template_age_s")
    if age is not None:
        _family(
            out, "stratumkit_template_age_seconds", "gauge", "Seconds since the current job's template.", [({}, age)]
        )
    if figures.get("network_difficulty") is not None:
        _family(
            out,
            "stratumkit_network_difficulty",
            "gauge",
            "Network difficulty of the current job.",
            [({}, figures["network_difficulty"])],
        )
    if figures.get("height") is not None:
        _family(out, "stratumkit_network_height", "gauge", "Height the current job builds.", [({}, figures["height"])])
    queues = figures.get("queues") or {}
    _family(
        out,
        "stratumkit_queue_jobs",
        "gauge",
        "Jobs per queue a lease has named, by state (ready: waiting for a rig).",
        [({"queue": q, "state": state}, n) for q, counts in sorted(queues.items()) for state, n in counts.items()],
    )
    sync = figures.get("share_log_sync")
    if sync:
        name = "stratumkit_share_log_sync_seconds"
        out.append(f"# HELP {name} Share-log batch write + fdatasync time (every reply waits for one).")
        out.append(f"# TYPE {name} histogram")
        for le, n in sync["buckets"]:
            out.append(f'{name}_bucket{{le="{le if isinstance(le, str) else _number(le)}"}} {_number(n)}')
        out.append(f"{name}_sum {_number(sync['sum'])}")
        out.append(f"{name}_count {_number(sync['count'])}")
    _family(
        out,
        "stratumkit_connections_by_state",
        "gauge",
        "Open stratum connections by protocol state (connected, subscribed, authorized) and transport.",
        [({"state": c["state"], "transport": c["transport"]}, c["count"]) for c in figures.get("connections") or ()],
    )
    _family(
        out,
        "stratumkit_rigs_by_mode",
        "gauge",
        "Registered rigs by mode: mining, diverted (serving a lease), curtailed, offline.",
        [({"mode": mode}, n) for mode, n in sorted((figures.get("rigs_by_mode") or {}).items())],
    )
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
