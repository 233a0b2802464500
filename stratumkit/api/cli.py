"""`stratumkit lease|rig|job|stats|blocks`: the integrator's commands, each one call to the HTTP API.

    stratumkit lease create --count 2 --queue embed --duration 1h --gpu-model "RTX 4090"
    stratumkit lease ls --state serving
    stratumkit lease extend lease-1 30m
    stratumkit lease cancel lease-1
    stratumkit rig ls
    stratumkit job submit embed --json-payload '{"kind": "embeddings", "input": ["hello"]}'
    stratumkit job submit embed --file jobs.jsonl        (one JSON payload per line; - is stdin)
    stratumkit job get JOB_ID [--wait 60]
    stratumkit stats
    stratumkit blocks [--limit 20] [--before CURSOR]
    stratumkit report daily [--date 2026-12-01]      (the operator's; default: yesterday, UTC)

Rules: the API is ``--api URL`` (else $STRATUMKIT_API, else http://127.0.0.1:8080) and the token
``--token`` (else $STRATUMKIT_API_TOKEN). Output is a table for people, or the API's JSON with
``--json``. Exit status: 0 done, 1 the API refused (its message goes to stderr) or could not be
reached, 2 bad arguments or input files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import trio

from stratumkit.client import APIError, APIUnreachable, PoolClient, PoolClientError

__all__ = ["DEFAULT_API", "ENV_API", "ENV_TOKEN", "add_subcommands", "main"]

DEFAULT_API = "http://127.0.0.1:8080"
ENV_API = "STRATUMKIT_API"
ENV_TOKEN = "STRATUMKIT_API_TOKEN"
#: Jobs sent per request by `job submit --file`.
SUBMIT_BATCH = 1000

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([smhd]?)\s*")


class UsageError(Exception):
    """Bad local input (a payload that is not JSON, a missing file): exit status 2."""


def duration(text: str) -> float:
    """Seconds from "90", "90s", "15m", "2h" or "1d"."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90, 90s, 15m, 2h, 1d)")
    seconds = float(match[1]) * _UNITS[match[2]]
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"a duration must be positive, got {text!r}")
    return seconds


def utc_day(text: str) -> str:
    """A UTC day as YYYY-MM-DD (checked here, sent as given)."""
    try:
        if len(text) == 10:
            date.fromisoformat(text)
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"not a UTC day: {text!r} (YYYY-MM-DD)")


# ------------------------------------------------------------------------------ commands
# Each command returns (the API's JSON, the text for people).

Command = Callable[[PoolClient, argparse.Namespace], Awaitable[tuple[Any, str]]]


async def _lease_create(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    keys = ("gpu_model", "min_vram_mb", "model", "min_count", "rigs", "priority", "owner", "availability", "wait_s")
    selector = {key: getattr(args, key) for key in keys}
    lease = await client.create_lease(
        count=args.count,
        queue=args.queue,
        duration_s=args.duration,
        **{k: v for k, v in selector.items() if v is not None},
    )
    return lease, leases_table([lease])


async def _lease_extend(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    lease = await client.extend_lease(args.lease_id, args.seconds)
    return lease, leases_table([lease])


async def _lease_cancel(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    lease = await client.cancel_lease(args.lease_id)
    return lease, leases_table([lease])


async def _lease_ls(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    leases = await client.leases(args.state or None)
    return leases, leases_table(leases)


async def _rig_ls(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    rigs = await client.rigs()
    return rigs, rigs_table(rigs)


async def _job_submit(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    payloads = _read_payloads(args)  # blocking reads are fine: nothing else runs in this process
    if args.json_payload is not None:
        job_id = await client.submit_job(args.queue, payloads[0], args.job_id)
        return {"job_id": job_id}, job_id
    job_ids: list[str] = []
    for start in range(0, len(payloads), SUBMIT_BATCH):
        try:
            job_ids += await client.submit_jobs(args.queue, payloads[start : start + SUBMIT_BATCH])
        except APIError as exc:
            if job_ids:  # earlier batches are in the queue: say so
                raise APIError(exc.status, f"{exc.message} (after {len(job_ids)} jobs were enqueued)") from None
            raise
    return {"job_ids": job_ids}, "\n".join(job_ids)


async def _job_get(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    if args.wait is not None:
        try:
            job = await client.wait_job(args.job_id, args.wait)
        except trio.TooSlowError:
            raise APIError(408, f"job {args.job_id} not done after {args.wait:g} s") from None
    else:
        job = await client.job(args.job_id)
    return job, job_text(job)


async def _curtail(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    if args.release:
        released = await client.release_curtailment()
        return released, f"released: {', '.join(released['released']) or 'nothing was curtailed'}"
    target: dict[str, Any] = {}
    if args.kw is not None:
        target["kw"] = args.kw
    if args.fraction is not None:
        target["fraction"] = args.fraction
    if args.rig:
        target["rigs"] = args.rig
    if args.all:
        target["all"] = True
    if args.duration is not None:
        target["duration_s"] = args.duration
    if args.override_leases:
        target["override_leases"] = True
    if not target:
        raise UsageError("give a target: --kw, --fraction, --rig (repeatable) or --all; or --release")
    shed = await client.curtail(**target)
    wanted = "-" if shed["target_kw"] is None else f"{shed['target_kw']:g}"
    lines = [f"shed {shed['shed_kw']:g} kW of {wanted} kW: {', '.join(shed['curtailed']) or 'no rigs'}"]
    if shed["not_curtailable"]:
        lines.append(f"not curtailable (plain miners, sent no work): {', '.join(shed['not_curtailable'])}")
    if shed["leases_overridden"]:
        lines.append(f"leases ended (overridden): {', '.join(shed['leases_overridden'])}")
    if shed["kept_leased"]:
        lines.append(f"kept (integrator leases): {', '.join(shed['kept_leased'])}")
    if shed["unknown"]:
        lines.append(f"unknown: {', '.join(shed['unknown'])}")
    return shed, "\n".join(lines)


async def _prices(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    given = {
        "power_usd_per_kwh": args.power,
        "hashprice_usd_per_th_day": args.hashprice,
        "gpu_usd_per_hour": args.gpu_hour,
    }
    update = {k: v for k, v in given.items() if v is not None}
    view = await (client.set_prices(**update) if update else client.prices())
    prices = view["prices"] or {}
    rows = [(k, prices.get(k)) for k in ("power_usd_per_kwh", "hashprice_usd_per_th_day", "gpu_usd_per_hour")]
    state = "fresh" if view["fresh"] else f"safe mode {view['safe_mode']}: {view['safe_mode_reason']}"
    return view, table(["price", "value"], rows) + f"\nsource {view['source'] or '-'}, {state}"


async def _policy(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    view = await client.policy()
    prices = view["prices"]
    head = f"prices from {prices['source'] or 'nowhere'}: {prices['prices'] or '-'}"
    if prices["safe_mode_reason"]:
        head += f"\nsafe mode {prices['safe_mode']}: {prices['safe_mode_reason']}"
    rows = [(u["unit"], u["mode"], u["actual"], u["reason"]) for u in view["units"]]
    return view, head + "\n" + table(["unit", "wanted", "now", "reason"], rows)


async def _stats(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    stats = await client.stats()
    return stats, stats_text(stats)


async def _blocks(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    page = await client.blocks(args.limit, args.before)
    return page, blocks_text(page)


async def _report_daily(client: PoolClient, args: argparse.Namespace) -> tuple[Any, str]:
    report = await client.daily_report(args.date)
    return report, daily_text(report)


# ------------------------------------------------------------------------------ text


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def leases_table(leases: Sequence[dict[str, Any]]) -> str:
    if not leases:
        return "(no leases)"
    rows = [
        (
            lease["lease_id"],
            lease["state"],
            lease["queue"],
            ",".join(r["rig_id"] for r in lease["rigs"]) or "-",
            _seconds_text(lease["remaining_s"]),
            lease["usage"]["jobs_done"],
            f"{lease['usage']['gpu_seconds']:.0f}",
            _sla_text(lease.get("sla")),
            lease["owner"],
        )
        for lease in leases
    ]
    return table(("LEASE", "STATE", "QUEUE", "RIGS", "LEFT", "JOBS", "GPU-S", "SLA", "OWNER"), rows)


def _sla_text(sla: dict[str, Any] | None) -> str | None:
    """availability/target and the rig-seconds credited so far, e.g. `92.5%/99% +13s`."""
    if sla is None:
        return None
    return f"{sla['availability']:.1%}/{sla['target'] * 100:.3g}% +{sla['credited_rig_s']:.0f}s"


def rigs_table(rigs: Sequence[dict[str, Any]]) -> str:
    if not rigs:
        return "(no rigs)"
    rows = []
    for rig in rigs:
        caps = rig["capabilities"]
        gpus = ", ".join(f"{g['model']} {g['vram_mb'] // 1024} GB" for g in caps["gpus"])
        rows.append(
            (
                rig["rig_id"],
                rig["worker"],
                rig["mode"] if rig["connected"] else "offline",
                rig["lease_id"],
                gpus,
                ",".join(caps["models"]) or "-",
                hashrate_text(caps["hashrate"]),
                rig["accepted_shares"],
            )
        )
    return table(("RIG", "WORKER", "MODE", "LEASE", "GPUS", "MODELS", "HASHRATE", "SHARES"), rows)


def job_text(job: dict[str, Any]) -> str:
    if job["status"] != "done":
        return f"{job['job_id']}  {job['status']}"
    head = f"{job['job_id']}  done  rig={job['rig']}  deliveries={job['deliveries']}"
    return head + "\n" + json.dumps(job["result"], indent=2)


def stats_text(stats: dict[str, Any]) -> str:
    pool, leases = stats["pool"], stats["leases"]
    rejected = pool.get("rejected") or {}
    lines = [
        ("source", f"{pool.get('source')} (height {pool.get('height')})"),
        ("connections", pool.get("connections")),
        ("hashrate", hashrate_text(pool.get("hashrate") or 0.0)),
        ("shares accepted", pool.get("accepted")),
        (
            "shares rejected",
            f"{sum(rejected.values())}"
            + (f" ({', '.join(f'{k} {v}' for k, v in sorted(rejected.items()))})" if rejected else ""),
        ),
        ("blocks found", pool.get("blocks")),
        ("rigs", leases.get("rigs")),
        ("live leases", leases.get("leases_live")),
    ]
    for key, label in (
        ("divert_latency_s", "divert latency"),
        ("return_latency_s", "return latency"),
    ):
        summary = leases.get(key)
        if summary:
            lines.append(
                (
                    label,
                    f"p50 {summary['p50']:.3f} s, p99 {summary['p99']:.3f} s (n={summary['n']})",
                )
            )
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in lines)


def daily_text(report: dict[str, Any]) -> str:
    """The day's workers (shares, difficulty, earned, balance), its blocks, and the totals."""
    usd = report.get("earned_usd") is not None
    workers = [
        (w["worker"], w["shares"], f"{w['difficulty']:.6g}", w["earned_sats"], w["balance_sats"])
        + ((f"{w['earned_usd']:.6f}",) if usd else ())
        for w in report["workers"]
    ]
    head = (
        f"{report['date']} (UTC) {report['scheme']}"
        + (f" window {report['pplns_window']:g}x" if report["scheme"] == "pplns" else "")
        + f" fee {report['pool_fee']:g}: {report['shares']} shares, difficulty {report['difficulty']:.6g}"
    )
    headers = ["WORKER", "SHARES", "DIFFICULTY", "EARNED", "BALANCE"] + (["USD"] if usd else [])
    lines = [head, table(headers, workers)]
    if report["blocks"]:
        rows = [
            (b["hash"][:16], b["status"], b["reward_sats"], b["paid_sats"], b["fee_sats"]) for b in report["blocks"]
        ]
        lines.append(table(["BLOCK", "STATUS", "REWARD", "PAID", "FEE"], rows))
    lines.append(f"earned {report['earned_sats']} sats, pool fee {report['fee_sats']} sats")
    if usd:
        lines[-1] += f"; {report['earned_usd']:.6f} USD at {report['hashprice_usd_per_th_day']:g} USD/TH/day"
    return "\n".join(lines)


def blocks_text(page: dict[str, Any]) -> str:
    """The found blocks as a table, the 7- and 30-day summaries, and the next page's cursor."""
    rows = [
        (
            b["height"],
            b["hash"][:16],
            b["worker"],
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(b["time"])),
            b["status"],
            None if b["reward_sats"] is None else f"{b['reward_sats'] / 1e8:.8f}",
            f"{b['network_difficulty']:.6g}",
            None if b["effort"] is None else f"{b['effort'] * 100:.1f}%",
        )
        for b in page["blocks"]
    ]
    lines = [
        table(("HEIGHT", "HASH", "WORKER", "FOUND (UTC)", "STATUS", "REWARD", "NET DIFF", "EFFORT"), rows)
        if rows
        else "(no blocks)"
    ]
    for window, summary in page["summary"].items():
        average = summary["average_effort"]
        lines.append(
            f"{window}: {summary['blocks']} blocks"
            + (f", average effort {average * 100:.1f}%" if average is not None else "")
        )
    if page["next"]:
        lines.append(f"older: --before {page['next']}")
    return "\n".join(lines)


def hashrate_text(hashes_per_s: float) -> str:
    value = float(hashes_per_s)
    for unit in ("H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s"):
        if abs(value) < 1000 or unit == "PH/s":
            return f"{value:.3g} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _seconds_text(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


# ------------------------------------------------------------------------------ running


def _read_payloads(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.job_id is not None and args.json_payload is None:
        raise UsageError("--job-id goes with --json-payload, not --file")
    if args.json_payload is not None:
        sources = [("--json-payload", args.json_payload)]
    else:
        try:
            text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
        sources = [(f"{args.file}:{n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if not sources:
            raise UsageError(f"{args.file} holds no jobs")
    payloads = []
    for where, raw in sources:
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise UsageError(f"{where}: not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise UsageError(f"{where}: a job payload must be a JSON object")
        payloads.append(value)
    return payloads


def _runner(name: str, command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        api = args.api or os.environ.get(ENV_API) or DEFAULT_API
        token = args.token or os.environ.get(ENV_TOKEN) or None

        async def call() -> tuple[Any, str]:
            async with PoolClient(api, token) as client:
                return await command(client, args)

        try:
            value, text = trio.run(call)
        except UsageError as exc:
            print(f"stratumkit {name}: {exc}", file=sys.stderr)
            return 2
        except APIUnreachable as exc:
            print(f"stratumkit {name}: cannot reach the API at {api}: {exc}", file=sys.stderr)
            return 1
        except APIError as exc:
            print(f"stratumkit {name}: {exc.message} (HTTP {exc.status})", file=sys.stderr)
            return 1
        except PoolClientError as exc:
            print(f"stratumkit {name}: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(value, indent=2) if args.as_json else text)
        return 0

    return run


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `lease`, `rig`, `job`, `stats`, `blocks`, `report`, `curtail`, `policy` and `prices` to the
    `stratumkit` parser's subcommands. Each leaf sets ``func(args) -> int`` (the exit status)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", metavar="URL", help=f"the pool's HTTP API (default ${ENV_API} or {DEFAULT_API})")
    common.add_argument("--token", help=f"API bearer token (default ${ENV_TOKEN})")
    common.add_argument("--json", dest="as_json", action="store_true", help="print the API's JSON")

    def leaf(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        full: str,
        command: Command,
        text: str,
    ) -> argparse.ArgumentParser:
        parser = group.add_parser(name, parents=[common], help=text, description=text)
        parser.set_defaults(func=_runner(full, command))
        return parser

    lease = subparsers.add_parser("lease", help="lease rigs to an inference queue")
    leases = lease.add_subparsers(dest="lease_command", required=True, metavar="{create,extend,cancel,ls}")
    create = leaf(leases, "create", "lease create", _lease_create, "lease rigs to a queue for a while")
    create.add_argument("--count", type=int, required=True, help="rigs wanted")
    create.add_argument("--queue", required=True, help="the job queue the rigs consume")
    create.add_argument("--duration", type=duration, required=True, help="how long: 600, 600s, 10m, 2h, 1d")
    create.add_argument("--gpu-model", help='only rigs with this GPU model (e.g. "RTX 4090")')
    create.add_argument("--min-vram-mb", type=int, help="only rigs with a GPU of at least this much VRAM")
    create.add_argument("--model", help="only rigs that serve this model")
    create.add_argument("--min-count", type=int, help="grant the lease with this many rigs (default: --count)")
    create.add_argument("--priority", type=int, help="higher leases draft rigs first (default 0)")
    create.add_argument("--owner", help="who the lease is for (free text)")
    create.add_argument(
        "--rig", dest="rigs", action="append", help="only this rig (its id; once per rig): lend particular rigs"
    )
    create.add_argument(
        "--availability", type=float, help="SLA target, e.g. 0.99: rig-seconds served short of it are credited"
    )
    create.add_argument(
        "--wait", dest="wait_s", type=duration, help="too few idle rigs: wait this long for them (pending lease)"
    )
    extend = leaf(leases, "extend", "lease extend", _lease_extend, "make a live lease last longer")
    extend.add_argument("lease_id")
    extend.add_argument("seconds", type=duration, help="extra time: 600, 10m, 1h")
    cancel = leaf(
        leases,
        "cancel",
        "lease cancel",
        _lease_cancel,
        "end a lease now; its rigs go back to mining",
    )
    cancel.add_argument("lease_id")
    ls = leaf(leases, "ls", "lease ls", _lease_ls, "list leases")
    ls.add_argument("--state", action="append", help="only leases in this state (repeatable)")

    rig = subparsers.add_parser("rig", help="rigs registered for leasing")
    rigs = rig.add_subparsers(dest="rig_command", required=True, metavar="{ls}")
    leaf(rigs, "ls", "rig ls", _rig_ls, "list registered rigs")

    job = subparsers.add_parser("job", help="inference jobs")
    jobs = job.add_subparsers(dest="job_command", required=True, metavar="{submit,get}")
    submit = leaf(jobs, "submit", "job submit", _job_submit, "enqueue jobs on a queue")
    submit.add_argument("queue")
    source = submit.add_mutually_exclusive_group(required=True)
    source.add_argument("--json-payload", metavar="JSON", help="one job's payload, a JSON object")
    source.add_argument("--file", metavar="PATH", help="JSON lines, one payload per line (- reads stdin)")
    submit.add_argument("--job-id", help="with --json-payload: the job's id (resubmitting is a no-op)")
    get = leaf(jobs, "get", "job get", _job_get, "a job's status and result")
    get.add_argument("job_id")
    get.add_argument("--wait", type=duration, metavar="SECONDS", help="wait up to this long for the result")

    leaf(subparsers, "stats", "stats", _stats, "pool and lease statistics")
    blocks = leaf(subparsers, "blocks", "blocks", _blocks, "blocks the pool found, newest first, with effort")
    blocks.add_argument("--limit", type=int, help="blocks per page (default 50)")
    blocks.add_argument("--before", metavar="CURSOR", help="the page older than this (from a previous page)")

    report = subparsers.add_parser("report", help="the operator's reports")
    reports = report.add_subparsers(dest="report_command", required=True, metavar="{daily}")
    daily = leaf(reports, "daily", "report daily", _report_daily, "per-worker earnings and balances of a UTC day")
    daily.add_argument("--date", type=utc_day, help="the UTC day, YYYY-MM-DD (default: yesterday)")

    curtail = leaf(
        subparsers, "curtail", "curtail", _curtail, "shed power now: rigs stop hashing, least efficient first"
    )
    curtail.add_argument("--kw", type=float, help="shed at least this many kW")
    curtail.add_argument("--fraction", type=float, help="shed this fraction (0..1) of the fleet's declared power")
    curtail.add_argument("--rig", action="append", help="this rig (id or worker name; repeatable)")
    curtail.add_argument("--all", action="store_true", help="every rig, and no work to plain miners")
    curtail.add_argument("--duration", type=duration, help="end on its own after this long: 600, 10m, 2h")
    curtail.add_argument("--release", action="store_true", help="end the curtailment: back to mining")
    curtail.add_argument("--override-leases", action="store_true", help="shed leased rigs too, ending their leases")
    leaf(subparsers, "policy", "policy", _policy, "the power policy's latest decision for every unit")
    prices = leaf(subparsers, "prices", "prices", _prices, "the prices in force; with a flag, push new ones")
    prices.add_argument("--power", type=float, help="power price, USD/kWh (negative allowed)")
    prices.add_argument("--hashprice", type=float, help="hashprice, USD per TH/s per day")
    prices.add_argument("--gpu-hour", type=float, help="GPU-hour price, USD")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratumkit", description="the pool's integrator commands")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
