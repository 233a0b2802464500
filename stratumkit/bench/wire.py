"""`stratumkit bench wire`: what a real miner and the pool said to each other, and whether the
pool credited the miner at the targets it was mining at.

A recording stratum proxy: point a miner (cpuminer, cpuminer-opt, bfgminer, an ASIC) at
`--listen`; every connection is forwarded to `--pool` and every line recorded with its time and
direction. After `--duration` seconds (or Ctrl-C) it prints, per connection:
- shares submitted, accepted and rejected (by error code), as the pool answered them;
- per job, the miner's share difficulty (the last mining.set_difficulty before the job's notify:
  cpuminer's and bfgminer's rule, a new difficulty applies from the next job) beside the job's
  network difficulty (its nbits); a job sent above its network difficulty is flagged, since a
  miner sends no hash that misses its share target and a block between the two would be lost;
- answers to notifications (a reply with a null id, which bfgminer reads as garbage) and
  client.reconnect requests;
- with `--data-dir` (the pool's), each accepted share's credited difficulty from the share log
  against the miner's difficulty for its job (they must be equal), and the accepted difficulty as
  a hashrate over the connection's time (`d * 2**32` hashes a share).
`--save FILE` writes the lines as JSON (t, conn, dir, line) for a later look.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

from stratumkit.chain.targets import network_difficulty
from stratumkit.shares.log import ShareRecord, read_records

#: Where the stratum proxy reads at most at once.
READ_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Wire:
    """One line on one connection: `direction` ">" is miner to pool, "<" pool to miner. An empty
    line marks the connection's opening (its first wire) and each side's close."""

    t: float
    conn: int
    direction: str
    line: bytes


@dataclass(slots=True)
class JobView:
    difficulty: float | None  # the miner's share difficulty for the job (None: no set_difficulty yet)
    network: float
    accepted: int = 0
    credited: float = 0.0  # from the share log
    mismatched: int = 0  # accepted shares credited at another difficulty than `difficulty`


@dataclass(slots=True)
class ConnectionReport:
    conn: int
    agent: str = ""
    opened: float = 0.0
    last: float = 0.0
    submitted: int = 0
    accepted: int = 0
    rejected: Counter[int] = field(default_factory=Counter)
    notification_replies: int = 0
    reconnects: list[Any] = field(default_factory=list)
    jobs: dict[str, JobView] = field(default_factory=dict)
    unlogged: int = 0  # accepted by the pool but not found in the share log (with records only)

    @property
    def above_network(self) -> list[str]:
        return [j for j, v in self.jobs.items() if v.difficulty is not None and v.difficulty > v.network]

    @property
    def mismatched(self) -> int:
        return sum(v.mismatched for v in self.jobs.values())

    @property
    def target_sum(self) -> float:
        """The difficulty of the accepted shares at the miner's own targets."""
        return sum(v.accepted * (v.difficulty or 0.0) for v in self.jobs.values())

    @property
    def credited_sum(self) -> float:
        return sum(v.credited for v in self.jobs.values())

    def hashrate(self) -> float:
        span = self.last - self.opened
        return self.target_sum * 2**32 / span if span > 0 else math.nan


def analyse(wires: Iterable[Wire], records: Iterable[ShareRecord] | None = None) -> list[ConnectionReport]:
    """Each connection's figures from its lines, and the share log's credit when `records` given."""
    logged = None if records is None else {(r.job_id, r.extranonce2.hex(), r.nonce): r for r in records}
    reports: dict[int, ConnectionReport] = {}
    difficulty: dict[int, float | None] = {}
    pending: dict[int, list[tuple[Any, list[Any]]]] = {}  # submits awaiting their answer, in order
    for wire in wires:
        report = reports.get(wire.conn)
        if report is None:
            report = reports[wire.conn] = ConnectionReport(wire.conn, opened=wire.t)
            difficulty[wire.conn], pending[wire.conn] = None, []
        report.last = wire.t
        try:
            message = json.loads(wire.line)
        except ValueError:
            continue  # not JSON (a TLS probe, garbage): the pool's answer to it is the close
        if not isinstance(message, dict):
            continue
        method, params = message.get("method"), message.get("params")
        if wire.direction == ">":
            if method == "mining.submit" and isinstance(params, list) and len(params) >= 5:
                report.submitted += 1
                pending[wire.conn].append((message.get("id"), params))
            elif method == "mining.subscribe" and isinstance(params, list) and params:
                report.agent = str(params[0])
            continue
        if method == "mining.set_difficulty" and isinstance(params, list) and params:
            difficulty[wire.conn] = float(params[0])
        elif method == "mining.notify" and isinstance(params, list) and len(params) >= 9:
            report.jobs[params[0]] = JobView(difficulty[wire.conn], network_difficulty(params[6]))
        elif method == "client.reconnect":
            report.reconnects.append(params)
        elif method is None and ("result" in message or "error" in message):
            if message.get("id") is None:
                report.notification_replies += 1
                continue
            waiting = pending[wire.conn]
            index = next((i for i, (ident, _) in enumerate(waiting) if ident == message["id"]), None)
            if index is None:
                continue  # the answer to something else (subscribe, authorize, ...)
            _, share = waiting.pop(index)
            error = message.get("error")
            if message.get("result") is not True or error:
                code = error[0] if isinstance(error, list) and error and isinstance(error[0], int) else 20
                report.rejected[code] += 1
                continue
            report.accepted += 1
            job = report.jobs.setdefault(str(share[1]), JobView(None, math.inf))
            job.accepted += 1
            if logged is not None:
                record = logged.get((share[1], str(share[2]).lower(), int(share[4], 16)))
                if record is None:
                    report.unlogged += 1
                else:
                    job.credited += record.difficulty
                    job.mismatched += record.difficulty != job.difficulty
    return list(reports.values())


def render(reports: list[ConnectionReport], with_log: bool) -> str:
    out = []
    for r in reports:
        rejected = ", ".join(f"{n} x {code}" for code, n in sorted(r.rejected.items())) or "none"
        out.append(
            f"connection {r.conn} ({r.agent or 'no subscribe'}), {r.last - r.opened:.1f} s: "
            f"{r.submitted} shares submitted, {r.accepted} accepted, rejected: {rejected}"
        )
        out.append(
            f"  difficulty at the miner's targets {r.target_sum:.6g} = {r.hashrate() / 1e3:.1f} kH/s; "
            f"replies to notifications: {r.notification_replies}; client.reconnect: {r.reconnects or 'none'}"
        )
        if r.above_network:
            out.append(f"  SENT ABOVE THE NETWORK DIFFICULTY: jobs {', '.join(r.above_network)}")
        if with_log:
            out.append(
                f"  share log: credited {r.credited_sum:.6g}, {r.mismatched} shares credited at another "
                f"difficulty than their job's, {r.unlogged} accepted shares not in the log"
            )
        for job_id, job in r.jobs.items():
            if job.accepted:
                credited = f", credited {job.credited:.6g}" if with_log else ""
                out.append(
                    f"    job {job_id}: difficulty {job.difficulty} (network {job.network:.6g}), "
                    f"{job.accepted} accepted{credited}"
                )
    return "\n".join(out)


async def record(
    listen_port: int,
    pool_host: str,
    pool_port: int,
    wires: list[Wire],
    *,
    listen_host: str = "127.0.0.1",
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Forward every connection on `listen_port` to the pool, appending each line to `wires`;
    `task_status.started` gets the bound port (pass 0 for any)."""
    numbers = iter(range(1, 1 << 62))

    async def pump(source: trio.SocketStream, sink: trio.SocketStream, conn: int, direction: str) -> None:
        tail = b""
        try:
            while data := await source.receive_some(READ_SIZE):
                now = time.time()
                *complete, tail = (tail + data).split(b"\n")
                wires.extend(Wire(now, conn, direction, line + b"\n") for line in complete)
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        if tail:
            wires.append(Wire(time.time(), conn, direction, tail))
        wires.append(Wire(time.time(), conn, direction, b""))
        await sink.aclose()

    async def handle(miner: trio.SocketStream) -> None:
        conn = next(numbers)
        wires.append(Wire(time.time(), conn, ">", b""))
        async with miner:
            try:
                pool = await trio.open_tcp_stream(pool_host, pool_port)
            except OSError:
                return  # the pool is down: the miner sees its connection closed
            async with pool, trio.open_nursery() as nursery:
                nursery.start_soon(pump, miner, pool, conn, ">")
                nursery.start_soon(pump, pool, miner, conn, "<")

    listeners = await trio.open_tcp_listeners(listen_port, host=listen_host)
    async with trio.open_nursery() as nursery:
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(handle, listeners, handler_nursery=nursery)


def run(
    pool: str,
    listen: int,
    duration: float,
    data_dir: str | None = None,
    save: str | None = None,
    as_json: bool = False,
) -> list[ConnectionReport]:
    host, _, port = pool.rpartition(":")
    wires: list[Wire] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(record, listen, host or "127.0.0.1", int(port), wires)
            print(f"recording: point the miner at stratum+tcp://127.0.0.1:{bound} ({duration:g} s)", flush=True)
            await trio.sleep(duration)
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except KeyboardInterrupt:
        pass
    if save is not None:
        with open(save, "w") as f:
            for w in wires:
                f.write(json.dumps({"t": w.t, "conn": w.conn, "dir": w.direction, "line": w.line.decode("latin-1")}))
                f.write("\n")
    records = None if data_dir is None else list(read_records(Path(data_dir) / "shares"))
    reports = analyse(wires, records)
    if as_json:
        for r in reports:
            print(json.dumps(asdict(r) | {"hashrate": r.hashrate(), "above_network": r.above_network}, default=str))
    else:
        print(render(reports, records is not None))
    return reports


__all__ = ["ConnectionReport", "JobView", "Wire", "analyse", "record", "render", "run"]
