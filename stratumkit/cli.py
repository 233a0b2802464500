"""The `stratumkit` command: serve the pool, run benchmarks, lease rigs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, cast, get_origin


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
    elif args.what == "report":
        from stratumkit.bench import report as bench_report

        bench_report.run(args.records, args.json)
    elif args.what == "lease":
        from stratumkit.bench import lease as bench_lease

        if args.front_ends > 1:
            if args.restarts:
                raise SystemExit("stratumkit bench lease: --restarts runs with one front end only")
            bench_lease.run_front_ends(args.rounds, args.rigs, args.inference, args.front_ends)
        else:
            bench_lease.run(args.rounds, args.rigs, args.inference, args.restarts)
    elif args.what == "mining":
        from stratumkit.bench import mining as bench_mining

        bench_mining.run(args.figure, args.duration, args.restarts, args.reconnect_wait, args.json)
    elif args.what == "wire":
        from stratumkit.bench import wire as bench_wire

        bench_wire.run(args.pool, args.listen, args.duration, args.data_dir, args.save, args.json)
    elif args.what == "queue":
        from stratumkit.bench import queue as bench_queue

        bench_queue.run(
            args.engine,
            args.jobs,
            args.batch,
            claim_batch=args.claim_batch,
            shape=args.queue_shape,
            prefetch=args.prefetch,
            held=args.held,
            runs=args.runs,
            redis_url=args.redis_url,
            redis_fsync=args.redis_fsync,
            as_json=args.json,
            ack_with_claim=args.ack_with_claim,
        )
    elif args.what == "curtail":
        from stratumkit.bench import curtail as bench_curtail

        bench_curtail.run(args.rounds, args.rigs)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from stratumkit.power import simulate

    return simulate.run(args)


def _serve(args: argparse.Namespace) -> int:
    import trio

    from stratumkit.app import check_config, serve
    from stratumkit.server.config import config_keys, load_config
    from stratumkit.server.logs import configure_logging

    config = load_config(args.config, **{key.name: getattr(args, key.name) for key in config_keys()})
    if args.check_config:
        check_config(config)
        print(f"stratumkit serve: the configuration is valid ({args.config or 'defaults and flags'})")
        return 0
    configure_logging(config.log_format, config.log_level)
    try:
        trio.run(serve, config)
    except KeyboardInterrupt:
        pass
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
        model=args.model,
        announce=lambda text: print(text, flush=True),
    )
    return 0


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line on stderr and exit code 2, like a bad configuration."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _integer(text: str) -> int:
    """An int flag's text: decimal, or 0x / 0o / 0b prefixed (version_mask)."""
    return int(text, 0)


_integer.__name__ = "int"  # argparse names the type in its error: "invalid int value"

_METAVARS: dict[type, str] = {int: "N", float: "NUM", str: "TEXT"}


class _NamedValues(argparse.Action):
    """A table key's flag (rig_secrets, integrator_tokens): NAME=VALUE, once per entry."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        name, sep, value = str(values).partition("=")
        if not sep or not name or not value:
            parser.error(f"{option} takes NAME=VALUE, got {values!r}")
        table = dict(getattr(namespace, self.dest) or {})
        table[name] = value
        setattr(namespace, self.dest, table)


#: Flags beside a key's own --key-name.
_FLAG_ALIASES = {"node_url": ["--node"]}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per key of the pool's configuration, made from its key table."""
    from stratumkit.server.config import config_keys

    for key in config_keys():
        names = [key.flag, *_FLAG_ALIASES.get(key.name, [])]
        default = "none" if key.default is None else key.default
        text = f"{key.help} (default {default})" if key.help else f"config key {key.name} (default {default})"
        if key.kind is bool:
            parser.add_argument(*names, dest=key.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif get_origin(key.kind) is dict:
            parser.add_argument(
                *names, dest=key.name, action=_NamedValues, default=None, metavar="NAME=VALUE", help=text
            )
        else:
            kind: Callable[[str], Any] = _integer if key.kind is int else key.kind
            parser.add_argument(*names, dest=key.name, type=kind, default=None, metavar=_METAVARS[key.kind], help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stratumkit", description=__doc__)
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]", parser.add_subparsers(dest="command", required=True)
    )
    serve = sub.add_parser("serve", help="run the pool (embedded chain unless --node-url is given)")
    serve.add_argument("--config", help="TOML file with PoolConfig keys (flags override it)")
    serve.add_argument(
        "--check-config", action="store_true", help="check the configuration and exit (0 valid, 2 not): binds no port"
    )
    _add_config_flags(serve)
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
    infer_serve = infer_sub.add_parser("serve", help="an OpenAI-compatible server for a CPU model")
    infer_serve.add_argument("--host", default="127.0.0.1")
    infer_serve.add_argument("--port", type=int, default=8000)
    infer_serve.add_argument("--upstream", help="relay this OpenAI-compatible server instead of MiniLM")
    infer_serve.add_argument("--api-key", help="require this bearer token")
    infer_serve.add_argument("--threads", type=int, default=None, help="model threads (onnxruntime, llama.cpp)")
    infer_serve.add_argument(
        "--model", choices=["minilm", "smollm2"], default="minilm",
        help="the CPU model: minilm (embeddings) or smollm2 (SmolLM2-135M-Instruct, chat)",
    )  # fmt: skip
    infer_serve.set_defaults(func=_infer_serve, prog=infer_serve.prog)

    replay = sub.add_parser("simulate", help="replay a price series: the policy against naive strategies")
    replay.add_argument("--prices", required=True, help="CSV: timestamp,power_usd_per_kwh[,hashprice..,gpu..]")
    replay.add_argument("--fleet", required=True, help="TOML with [[rig]] tables")
    replay.add_argument("--policy", help="TOML [power] table: policy settings and price constants")
    replay.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    replay.add_argument(
        "--plot", metavar="PNG", help="also draw price, the policy's modes and cumulative net (needs matplotlib)"
    )
    replay.set_defaults(func=_simulate)

    bench = sub.add_parser("bench", help="measure performance")
    benches = bench.add_subparsers(dest="what", required=True, metavar="WHAT")

    b_hash = benches.add_parser("hash", help="header, scan and share-check rates vs the SHA-NI limit")
    b_hash.add_argument("--seconds", type=float, default=1.0, help="time per figure (default 1)")

    b_pool = benches.add_parser("pool", help="N miners over TCP (and TLS) against a serve process")
    b_pool.add_argument(
        "--connections", type=int, nargs="+", default=[1000], help="miners to connect; one run per value (default 1000)"
    )
    b_pool.add_argument(
        "--shape",
        choices=["open", "closed"],
        default="open",
        help="open = shares on a timer at --rate; closed = each miner waits for replies (default open)",
    )
    b_pool.add_argument("--in-flight", type=int, default=1, help="closed shape: shares outstanding per miner")
    b_pool.add_argument("--tls", action="store_true", help="each run again over the server's TLS port")
    b_pool.add_argument("--no-fanout", action="store_true", help="skip the block fan-out and send floor")
    b_pool.add_argument("--rate", type=float, default=20000, help="shares/s offered in total (default 20000)")
    b_pool.add_argument("--duration", type=float, default=10.0, help="seconds of load (default 10)")
    b_pool.add_argument(
        "--transactions",
        type=int,
        default=2500,
        help="template transactions, for a realistic merkle branch (default 2500)",
    )

    b_lease = benches.add_parser("lease", help="lease switch latencies over the HTTP API")
    b_lease.add_argument("--rounds", type=int, default=30, help="switch rounds (default 30)")
    b_lease.add_argument("--rigs", type=int, default=2, help="agent processes (default 2)")
    b_lease.add_argument("--inference", default=None, help="agents' inference backend (e.g. minilm)")
    b_lease.add_argument("--restarts", type=int, default=0, help="pool restarts under a lease (default 0)")
    b_lease.add_argument(
        "--front-ends",
        type=int,
        default=1,
        help="serve processes sharing one lease plane on a private redis-server, the rigs spread over them; "
        "the rounds take the rigs in turn (default 1: one pool, as before)",
    )

    b_curtail = benches.add_parser(
        "curtail", help="curtail and release a fleet of agents: how soon hashing stops and resumes"
    )
    b_curtail.add_argument("--rounds", type=int, default=30, help="curtail/release rounds (default 30)")
    b_curtail.add_argument("--rigs", type=int, default=100, help="agent processes (default 100)")

    b_mining = benches.add_parser("mining", help="hashrate estimate, credit per job, reconnect after a restart")
    b_mining.add_argument(
        "--figure",
        choices=["all", "hashrate", "credit", "reconnect"],
        default="all",
        help="hashrate estimate, credit through a vardiff ramp, or reconnect after a restart (default all)",
    )
    b_mining.add_argument("--duration", type=float, default=60.0, help="seconds per figure (default 60)")
    b_mining.add_argument("--restarts", type=int, default=5, help="graceful restarts to time (default 5)")
    b_mining.add_argument(
        "--reconnect-wait", type=float, default=2.0, help="the pool's reconnect_wait in those restarts (default 2)"
    )

    b_wire = benches.add_parser("wire", help="a real miner through a recording proxy: its targets vs the credit")
    b_wire.add_argument("--pool", default="127.0.0.1:3333", help="the pool to forward to (default 127.0.0.1:3333)")
    b_wire.add_argument("--listen", type=int, default=3334, help="the port the miner connects to (default 3334)")
    b_wire.add_argument("--duration", type=float, default=180.0, help="seconds to record (default 180)")
    b_wire.add_argument("--data-dir", default=None, help="the pool's data_dir, to check its share log's credit")
    b_wire.add_argument("--save", default=None, help="write the recorded lines to this file (JSON lines)")

    b_report = benches.add_parser("report", help="the daily report's reading rate over a share log (records/s)")
    b_report.add_argument("--records", type=int, default=1_000_000, help="shares in the log (default 1,000,000)")
    b_report.add_argument("--json", action="store_true", help="one JSON object instead of the text")
    b_queue = benches.add_parser("queue", help="job queue throughput: enqueue, claim, ack")
    b_queue.add_argument(
        "--engine", nargs="+", choices=["sqlite", "redis"], default=["sqlite", "redis"], help="engines (default both)"
    )
    b_queue.add_argument("--jobs", type=int, nargs="+", default=[20000], help="jobs per run (default 20000)")
    b_queue.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=[1, 256],
        help="jobs per enqueue call; 1 = enqueue and ack one at a time (default 1 256)",
    )
    b_queue.add_argument("--claim-batch", type=int, default=16, help="jobs per claim (default 16)")
    b_queue.add_argument(
        "--queue-shape",
        choices=["phases", "concurrent"],
        default="phases",
        help="enqueue all then drain, or producer and consumer at once (default phases)",
    )
    b_queue.add_argument("--prefetch", action="store_true", help="send the next claim with each batch's acks")
    b_queue.add_argument(
        "--ack-with-claim", action="store_true", help="hand in each batch's results and claim the next in one call"
    )
    b_queue.add_argument("--held", type=int, default=0, help="jobs another consumer holds in flight (default 0)")
    b_queue.add_argument("--runs", type=int, default=1, help="runs of each engine and batch size (default 1)")
    b_queue.add_argument("--redis-url", default=None, help="an existing Redis (default: start a private one)")
    b_queue.add_argument(
        "--redis-fsync",
        choices=["always", "everysec", "no"],
        default="always",
        help="appendfsync of the private redis-server (default always)",
    )
    for with_json in (b_pool, b_mining, b_wire, b_queue):
        with_json.add_argument("--json", action="store_true", help="one JSON object per run instead of text")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. An OperatorError (a bad configuration, a port in use, a service down) is
    one line on stderr and its exit code, however deep in the pool's nurseries it was raised."""
    from stratumkit import failures

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `stratumkit rig ls | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        failure = failures.find(exc)
        if failure is None:
            raise
        print(f"{getattr(args, 'prog', None) or 'stratumkit ' + args.command}: {failure}", file=sys.stderr)
        return failure.exit_code


if __name__ == "__main__":
    sys.exit(main())
