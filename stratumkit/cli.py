"""The `stratumkit` command: serve the pool, run benchmarks, lease rigs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _bench(args: argparse.Namespace) -> int:
    if args.what == "hash":
        from stratumkit.bench import hash as bench_hash

        bench_hash.run(args.seconds)
    elif args.what == "pool":
        from stratumkit.bench import pool as bench_pool

        bench_pool.run(
            args.connections,
            args.rate,
            args.duration,
            args.transactions,
            shape=args.shape,
            in_flight=args.in_flight,
            tls=args.tls,
            fanout=not args.no_fanout,
            as_json=args.json,
        )
    elif args.what == "lease":
        from stratumkit.bench import lease as bench_lease

        bench_lease.run(args.rounds, args.rigs, args.inference)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import trio

    from stratumkit.app import serve
    from stratumkit.server.config import ConfigError, load_config
    from stratumkit.server.logs import configure_logging

    overrides = {key: getattr(args, key) for key in (*_SERVE_FLAGS, "solo")}
    try:
        config = load_config(args.config, **overrides)
    except ConfigError as exc:
        print(f"stratumkit serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_format, config.log_level)
    try:
        trio.run(serve, config)
    except KeyboardInterrupt:
        pass
    except (ConfigError, ValueError, OSError) as exc:
        print(f"stratumkit serve: {exc}", file=sys.stderr)
        return 1
    return 0


def _agent(args: argparse.Namespace) -> int:
    from stratumkit.agent.command import main

    return main(args)


def _mine(args: argparse.Namespace) -> int:
    from stratumkit.agent.mine import main

    return main(args)


def _infer_serve(args: argparse.Namespace) -> int:
    from stratumkit.inference.server import run_server

    run_server(
        args.host,
        args.port,
        upstream=args.upstream,
        api_key=args.api_key,
        threads=args.threads,
        announce=lambda text: print(text, flush=True),
    )
    return 0


# flag -> (type, help); each is also a config key of the same name (dashes -> underscores)
_SERVE_FLAGS: dict[str, tuple[type, str]] = {
    "host": (str, "address to listen on for miners (default 0.0.0.0)"),
    "port": (int, "stratum port (default 3333)"),
    "api_host": (str, "HTTP API address (default 127.0.0.1)"),
    "api_port": (int, "HTTP API port (default 8080; 0 picks a free one)"),
    "data_dir": (str, "where the share log, blocks and chain state live (default var/stratumkit)"),
    "node_url": (str, "bitcoind JSON-RPC URL, e.g. http://user:pass@127.0.0.1:8332 (default: embedded chain)"),
    "node_cookie": (str, "bitcoind .cookie file for RPC auth"),
    "network": (str, "mainnet | testnet | signet | regtest (address encoding)"),
    "payout_address": (str, "address the coinbase pays"),
    "pool_tag": (str, "text in the coinbase scriptSig"),
    "start_difficulty": (float, "first share difficulty of a miner (default 0.001)"),
    "min_difficulty": (float, "lowest share difficulty"),
    "max_difficulty": (float, "highest share difficulty"),
    "share_interval": (float, "vardiff aims at one share per this many seconds (default 10)"),
    "embedded_difficulty": (float, "block difficulty of the embedded chain (default 0.01)"),
    "max_connections_per_ip": (int, "connections one IP address may hold (default 64)"),
    "instance_id": (int, "extranonce1 prefix byte of this pool process (0..255)"),
    "log_format": (str, "console | json"),
    "log_level": (str, "debug | info | warning | error"),
    "queue_url": (str, "inference queue engine: redis://host:port/db (default: SQLite in data_dir)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratumkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the pool (embedded chain unless --node-url is given)")
    serve.add_argument("--config", help="TOML file with PoolConfig keys (flags override it)")
    for key, (kind, text) in _SERVE_FLAGS.items():
        names = ["--" + key.replace("_", "-")] + (["--node"] if key == "node_url" else [])
        serve.add_argument(*names, dest=key, type=kind, default=None, help=text)
    serve.add_argument(
        "--solo",
        action="store_const",
        const=True,
        default=None,
        help="pay each worker's own address (worker name = address.worker)",
    )
    serve.set_defaults(func=_serve)

    agent = sub.add_parser("agent", help="run a rig: mine for the pool, serve inference while leased")
    from stratumkit.agent.command import add_arguments as add_agent_arguments

    add_agent_arguments(agent)
    agent.set_defaults(func=_agent)
    mine = sub.add_parser("mine", help="mine with the built-in CPU miner for any stratum pool (like cpuminer)")
    from stratumkit.agent.mine import add_arguments as add_mine_arguments

    add_mine_arguments(mine)
    mine.set_defaults(func=_mine)
    from stratumkit.api.cli import add_subcommands

    add_subcommands(sub)

    infer = sub.add_parser("infer", help="inference tools")
    infer_sub = infer.add_subparsers(dest="infer_command", required=True)
    infer_serve = infer_sub.add_parser("serve", help="an OpenAI-compatible server for the MiniLM CPU model")
    infer_serve.add_argument("--host", default="127.0.0.1")
    infer_serve.add_argument("--port", type=int, default=8000)
    infer_serve.add_argument("--upstream", help="relay this OpenAI-compatible server instead of MiniLM")
    infer_serve.add_argument("--api-key", help="require this bearer token")
    infer_serve.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    infer_serve.set_defaults(func=_infer_serve)

    bench = sub.add_parser("bench", help="measure performance")
    bench.add_argument("what", choices=["hash", "pool", "lease"], help="what to measure")
    bench.add_argument("--rounds", type=int, default=30, help="lease: switch rounds (default 30)")
    bench.add_argument("--rigs", type=int, default=2, help="lease: agent processes (default 2)")
    bench.add_argument("--inference", default=None, help="lease: agents' inference backend (e.g. minilm)")
    bench.add_argument("--seconds", type=float, default=1.0, help="hash: time per figure (default 1)")
    bench.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=[1000],
        help="pool: miners to connect; one run per value (default 1000)",
    )
    bench.add_argument(
        "--shape",
        choices=["open", "closed"],
        default="open",
        help="pool: open = shares on a timer at --rate; closed = each miner waits for replies (default open)",
    )
    bench.add_argument("--in-flight", type=int, default=1, help="pool, closed shape: shares outstanding per miner")
    bench.add_argument("--tls", action="store_true", help="pool: each run again over the server's TLS port")
    bench.add_argument("--no-fanout", action="store_true", help="pool: skip the block fan-out and send floor")
    bench.add_argument("--json", action="store_true", help="pool: one JSON object per run instead of the table")
    bench.add_argument("--rate", type=float, default=20000, help="pool: shares/s offered in total (default 20000)")
    bench.add_argument("--duration", type=float, default=10.0, help="pool: seconds of load (default 10)")
    bench.add_argument(
        "--transactions",
        type=int,
        default=2500,
        help="pool: template transactions, for a realistic merkle branch (default 2500)",
    )
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `stratumkit rig ls | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
