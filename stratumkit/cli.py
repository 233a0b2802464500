"""The `stratumkit` command: serve the pool, run benchmarks, lease rigs."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stratumkit.inference.backend import InferenceBackend


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

        bench_lease.run(args.rounds, args.rigs or 2, args.inference)
    elif args.what == "curtail":
        from stratumkit.bench import curtail as bench_curtail

        bench_curtail.run(args.rounds, args.rigs or 100)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from stratumkit.power import simulate

    return simulate.run(args)


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
    import trio

    from stratumkit.agent.rig import AgentConfig, RigAgent
    from stratumkit.agent.stratum import StratumClientError
    from stratumkit.server.logs import configure_logging

    configure_logging(args.log_format, args.log_level)
    host, _, port = args.pool.removeprefix("stratum+tcp://").rpartition(":")
    if not host or not port.isdigit():
        print("stratumkit agent: --pool must be HOST:PORT (or stratum+tcp://HOST:PORT)", file=sys.stderr)
        return 2
    gpus = []
    for spec in args.gpu:
        model, _, vram = spec.rpartition(":")
        if not model or not vram.isdigit():
            print(f"stratumkit agent: --gpu takes MODEL:VRAM_MB, got {spec!r}", file=sys.stderr)
            return 2
        gpus.append((model, int(vram)))
    config = AgentConfig(
        host=host,
        port=int(port),
        worker=args.worker,
        password=args.password,
        rig_id=args.rig_id,
        gpus=gpus,
        power_w=args.power_w,
        duty=args.duty,
        claim_batch=args.claim_batch,
    )

    async def main() -> None:
        backend: InferenceBackend | None = None
        if args.inference == "minilm":
            from stratumkit.inference.minilm import MiniLMBackend

            backend = MiniLMBackend(threads=args.inference_threads)
            await backend.start()
        elif args.inference:
            from stratumkit.inference.openai_http import OpenAIHTTPBackend

            backend = OpenAIHTTPBackend(args.inference)
            await backend.start()
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(stop_on_signal)
                delay = 1.0
                agent = RigAgent(config, backend)  # one agent across reconnects: it keeps its lease token
                while True:  # a rig keeps coming back to its pool
                    try:
                        await agent.run()
                        delay = 1.0
                    except* (OSError, StratumClientError) as group:
                        print(
                            f"stratumkit agent: pool {args.pool}: {group.exceptions[0]}; retrying in {delay:g} s",
                            file=sys.stderr,
                        )
                    await trio.sleep(delay)
                    delay = min(delay * 2, 30.0)

    trio.run(main)
    return 0


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
    agent.add_argument("--pool", default="127.0.0.1:3333", help="pool stratum address HOST:PORT")
    agent.add_argument("--worker", required=True, help="worker name (address.worker)")
    agent.add_argument("--password", default="x")
    agent.add_argument("--rig-id", help="stable rig id (default: hostname-worker)")
    agent.add_argument("--gpu", action="append", default=[], help="MODEL:VRAM_MB, once per GPU")
    agent.add_argument("--power-w", type=float, default=0.0, help="power draw while mining, watts")
    agent.add_argument("--duty", type=float, default=1.0, help="fraction of time the CPU miner hashes")
    agent.add_argument(
        "--inference",
        help="'minilm' (built-in CPU model) or the URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama)",
    )
    agent.add_argument("--claim-batch", type=int, default=1, help="jobs claimed at a time while leased (1..64)")
    agent.add_argument("--inference-threads", type=int, default=None, help="minilm: onnxruntime threads")
    agent.add_argument("--log-format", default="console", choices=["console", "json"])
    agent.add_argument("--log-level", default="info")
    agent.set_defaults(func=_agent)
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

    replay = sub.add_parser("simulate", help="replay a price series: the policy against naive strategies")
    replay.add_argument("--prices", required=True, help="CSV: timestamp,power_usd_per_kwh[,hashprice..,gpu..]")
    replay.add_argument("--fleet", required=True, help="TOML with [[rig]] tables")
    replay.add_argument("--policy", help="TOML [power] table: policy settings and price constants")
    replay.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    replay.set_defaults(func=_simulate)

    bench = sub.add_parser("bench", help="measure performance")
    bench.add_argument("what", choices=["hash", "pool", "lease", "curtail"], help="what to measure")
    bench.add_argument("--rounds", type=int, default=30, help="lease, curtail: rounds (default 30)")
    bench.add_argument(
        "--rigs", type=int, default=None, help="lease: agent processes (default 2); curtail: agents (100)"
    )
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
