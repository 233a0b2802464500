"""`stratumkit mine`: the built-in CPU miner as a plain standalone stratum miner.

``stratumkit mine -o stratum+tcp://host:port -u user -p x -t threads`` mines for any Stratum V1
SHA-256d pool, like cpuminer. It is also the external miner the rig agent's tests run under
``--miner-cmd``. Each thread is a CpuMiner on its own extranonce2 lane of the one connection. It
subscribes to ``mining.set_extranonce`` (``--no-extranonce-subscribe`` to not), follows
``client.reconnect``, and reconnects with backoff through keep_connected, failing over between
several ``-o`` URLs. It logs every share's answer ("share accepted" / "share rejected") and its
hash rate every ``--report`` seconds.
"""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial

import structlog
import trio

from stratumkit.protocol.events import ErrorReply, Event, Reconnect, SubmitResult

from .cpu_miner import CpuMiner
from .keep_connected import keep_connected
from .pools import PoolEndpoint, PoolPlan, parse_pool_url
from .signals import run_until_stopped
from .stratum import StratumClient, tls_context

log = structlog.get_logger("stratumkit.mine")


def add_arguments(mine: argparse.ArgumentParser) -> None:
    mine.add_argument(
        "-o",
        "--url",
        action="append",
        required=True,
        help="pool URL: stratum+tcp://HOST:PORT, stratum+ssl://HOST:PORT or HOST:PORT; several for failover",
    )
    mine.add_argument("-u", "--user", required=True, help="worker name (address.worker)")
    mine.add_argument("-p", "--pass", dest="password", default="x", help="password (default x)")
    mine.add_argument("-t", "--threads", type=int, default=1, help="hashing threads (default 1)")
    mine.add_argument("--insecure", action="store_true", help="stratum+ssl: do not verify the pool's certificate")
    mine.add_argument("--no-extranonce-subscribe", action="store_true", help="do not ask for mining.set_extranonce")
    mine.add_argument("--report", type=float, default=10.0, help="seconds between hash rate lines (default 10)")
    mine.add_argument("--log-format", default="console", choices=["console", "json"])
    mine.add_argument("--log-level", default="info")


class Miner:
    """One standalone miner: `threads` CpuMiners on each connection, counts kept across them."""

    def __init__(self, user: str, password: str, threads: int, *, extranonce_subscribe: bool = True) -> None:
        self.user = user
        self.password = password
        self.threads = threads
        self.extranonce_subscribe = extranonce_subscribe
        self.accepted = 0
        self.rejected = 0
        self.hashes = 0  # from connections that ended
        self.cpus: list[CpuMiner] = []
        self.context = tls_context()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, SubmitResult):
            if event.accepted:
                self.accepted += 1
                log.info("share accepted", accepted=self.accepted, rejected=self.rejected)
            else:
                self.rejected += 1
                log.warning("share rejected", code=event.code, reason=event.message, rejected=self.rejected)
            return
        for cpu in self.cpus:
            cpu.on_event(event)

    @property
    def total_hashes(self) -> int:
        return self.hashes + sum(cpu.hashes for cpu in self.cpus)

    async def session(self, endpoint: PoolEndpoint, task_status: trio.TaskStatus[None]) -> Reconnect | None:
        async with trio.open_nursery() as nursery:
            client = await StratumClient.open(
                nursery, endpoint, self.context, on_event=self._on_event, user_agent="stratumkit-mine/0.1"
            )
            self.cpus = [CpuMiner(client, self.user, lane=i, lanes=self.threads) for i in range(self.threads)]
            try:
                sub = await client.handshake(self.user, self.password)
                for cpu in self.cpus:
                    cpu.attach(sub.extranonce1, sub.extranonce2_size)
                if self.extranonce_subscribe:
                    reply = await client.call(client.conn.extranonce_subscribe)
                    if isinstance(reply, ErrorReply):
                        log.info("the pool does not send mining.set_extranonce", reason=reply.message)
                for cpu in self.cpus:
                    nursery.start_soon(cpu.run)
                task_status.started()
                await client.closed.wait()
                nursery.cancel_scope.cancel()
            finally:
                self.hashes += sum(cpu.hashes for cpu in self.cpus)
                self.cpus = []
        return client.reconnect

    async def report(self, every: float) -> None:
        last, t0 = self.total_hashes, trio.current_time()
        while True:
            await trio.sleep(every)
            now, total = trio.current_time(), self.total_hashes
            log.info("hashrate", hashes_per_s=round((total - last) / (now - t0)), accepted=self.accepted)
            last, t0 = total, now


def main(args: argparse.Namespace) -> int:
    from stratumkit.server.logs import configure_logging

    try:
        if args.log_level.upper() not in logging.getLevelNamesMapping():
            raise ValueError(f"--log-level must be debug, info, warning or error, got {args.log_level!r}")
        if not 1 <= args.threads <= 256:
            raise ValueError(f"-t/--threads must be 1..256, got {args.threads}")
        if not args.report > 0:
            raise ValueError("--report must be a positive number of seconds")
        pools = [parse_pool_url(url) for url in args.url]
    except ValueError as exc:
        print(f"stratumkit mine: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_format, args.log_level)
    miner = Miner(args.user, args.password, args.threads, extranonce_subscribe=not args.no_extranonce_subscribe)
    if args.insecure:
        miner.context = tls_context(insecure=True)

    trio.run(
        run_until_stopped,
        partial(miner.report, args.report),
        partial(keep_connected, miner.session, PoolPlan(pools)),
    )
    return 0
