"""`stratumkit mine`: the built-in CPU miner as a plain standalone stratum miner.

``stratumkit mine -o stratum+tcp://host:port -u user -p x -t threads`` mines for any Stratum V1
SHA-256d pool, like cpuminer. It is also the external miner the rig agent's tests run under
``--miner-cmd``. Each thread is a CpuMiner on its own extranonce2 lane of the one connection. It
subscribes to ``mining.set_extranonce`` (``--no-extranonce-subscribe`` to not), follows
``client.reconnect``, and reconnects with backoff through keep_connected, failing over between
several ``-o`` URLs. It logs every share's answer ("share accepted" / "share rejected") and its
hash rate every ``--report`` seconds. This module is only the command (it is imported by every
`stratumkit` command line, so it imports nothing heavy); the miner is in standalone_miner.
"""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial

from .pools import parse_pool_url


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


def main(args: argparse.Namespace) -> int:
    import trio

    from stratumkit.server.logs import configure_logging

    from .keep_connected import keep_connected
    from .pools import PoolPlan
    from .signals import run_until_stopped
    from .standalone_miner import Miner
    from .stratum import tls_context

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
