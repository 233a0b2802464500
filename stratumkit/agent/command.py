"""`stratumkit agent`: its flags, and the main that keeps the rig connected to its pools.

Bad flags are one line on stderr and exit code 2. Nothing the pool or the backend does ends the
agent: keep_connected plans every reconnect, the backend is waited for with backoff; only SIGINT
or SIGTERM stop it (exit 0).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from stratumkit.server.logs import LOG_LEVELS

from .pools import PoolEndpoint, parse_pool_url

if TYPE_CHECKING:
    from stratumkit.inference.backend import InferenceBackend

    from .rig import AgentConfig


def add_arguments(agent: argparse.ArgumentParser) -> None:
    agent.add_argument(
        "--pool",
        action="append",
        default=[],
        help="pool stratum URL: HOST:PORT, stratum+tcp://HOST:PORT or stratum+ssl://HOST:PORT; "
        "give it several times for failover in order (default 127.0.0.1:3333)",
    )
    agent.add_argument(
        "--insecure", action="store_true", help="stratum+ssl: do not verify the pool's certificate (self-signed)"
    )
    agent.add_argument("--ca-file", help="stratum+ssl: trust this PEM CA bundle instead of the system's")
    agent.add_argument("--worker", required=True, help="worker name (address.worker)")
    agent.add_argument("--password", default="x")
    agent.add_argument("--rig-id", help="stable rig id (default: hostname-worker)")
    agent.add_argument("--rig-secret", help="this rig's (or its fleet's) secret, for a pool that wants one")
    agent.add_argument("--gpu", action="append", default=[], help="MODEL:VRAM_MB, once per GPU")
    agent.add_argument(
        "--power-w", type=float, default=0.0, help="power draw while mining, watts (default: nvidia-smi's, if any)"
    )
    agent.add_argument(
        "--nvidia-smi",
        default="nvidia-smi",
        help="GPUs are detected with this nvidia-smi where it exists; --gpu is the fallback",
    )
    agent.add_argument("--duty", type=float, default=1.0, help="fraction of time the CPU miner hashes")
    agent.add_argument(
        "--inference",
        help="'minilm' (built-in CPU embedding model), 'smollm2' (built-in CPU chat model) "
        "or the URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama)",
    )
    agent.add_argument("--claim-batch", type=int, default=1, help="jobs claimed at a time while leased (1..64)")
    agent.add_argument("--inference-threads", type=int, default=None, help="minilm, smollm2: model threads")
    agent.add_argument("--config", help="TOML file: its [miner] table holds the --miner-* settings (flags win)")
    agent.add_argument(
        "--miner-cmd",
        help="run this stratum miner against the agent's local endpoint instead of the built-in CPU miner; "
        "{url} {host} {port} {user} {password} are replaced, e.g. 'cpuminer -a sha256d -o {url} -u {user} -p x'",
    )
    agent.add_argument(
        "--miner-stop",
        choices=["stop", "signal", "withhold"],  # StopMethod's values, without importing it for --help
        default=None,
        help="how a divert stops the miner: stop the process (default), signal (SIGSTOP/SIGCONT), withhold work",
    )
    agent.add_argument("--miner-port", type=int, default=None, help="local endpoint port on 127.0.0.1 (default: any)")
    agent.add_argument("--miner-log-lines", type=int, default=None, help="miner output lines kept (default 200)")
    agent.add_argument(
        "--inference-cmd",
        help="start this inference server on divert (e.g. 'stratumkit infer serve --port 8011'); "
        "--inference must be its URL",
    )
    agent.add_argument("--inference-model", help="ready only once GET /v1/models lists this model")
    agent.add_argument(
        "--inference-ready-timeout", type=float, default=None, help="seconds to wait for it to be ready (default 120)"
    )
    agent.add_argument(
        "--inference-keep-warm", action="store_true", help="start it with the agent and keep it running after a lease"
    )
    agent.add_argument("--log-format", default="console", choices=["console", "json"])
    agent.add_argument("--log-level", default="info", choices=LOG_LEVELS)


def pools_from(args: argparse.Namespace) -> list[PoolEndpoint]:
    from .settings import UsageError

    try:
        return [parse_pool_url(url) for url in (args.pool or ["127.0.0.1:3333"])]
    except ValueError as exc:
        raise UsageError(f"--pool: {exc}") from None


def gpus_from(specs: list[str]) -> list[tuple[str, int]]:
    from .settings import UsageError

    gpus = []
    for spec in specs:
        model, _, vram = spec.rpartition(":")
        if not model or not vram.isdigit():
            raise UsageError(f"--gpu takes MODEL:VRAM_MB, got {spec!r}")
        gpus.append((model, int(vram)))
    return gpus


async def use_detected_gpus(config: AgentConfig, nvidia_smi: str) -> bool:
    """What nvidia-smi reports replaces the declared GPUs; its summed draw is the default power.
    False: nothing detected, the declared GPUs stand."""
    import structlog

    from .gpus import detect_gpus

    log = structlog.get_logger("stratumkit.agent")
    detected = await detect_gpus(nvidia_smi)
    if not detected:
        log.info("no GPUs detected: using the declared --gpu", declared=config.gpus)
        return False
    declared, config.gpus = config.gpus, [(g.model, g.vram_mb) for g in detected]
    draws = [g.power_w for g in detected]
    if not config.power_w and all(d is not None for d in draws):
        config.power_w = sum(d for d in draws if d is not None)
    log.info("GPUs detected", gpus=config.gpus, power_w=config.power_w, declared=declared)
    return True


def main(args: argparse.Namespace) -> int:
    import structlog
    import trio

    from stratumkit.server.logs import configure_logging

    from .external import ExternalMiner
    from .gpus import total_power
    from .inference_server import InferenceServer
    from .keep_connected import keep_connected
    from .pools import PoolPlan
    from .rig import AgentConfig, RigAgent
    from .settings import UsageError, inference_settings, load_document, miner_settings
    from .signals import run_until_stopped
    from .stratum import tls_context

    try:
        configure_logging(args.log_format, args.log_level)
        pools = pools_from(args)
        gpus = gpus_from(args.gpu)
        context = tls_context(insecure=args.insecure, cafile=args.ca_file) if any(p.tls for p in pools) else None
        config = AgentConfig(
            host=pools[0].host,
            port=pools[0].port,
            worker=args.worker,
            password=args.password,
            rig_id=args.rig_id,
            gpus=gpus,
            power_w=args.power_w,
            duty=args.duty,
            claim_batch=args.claim_batch,
            ssl_context=context,
            rig_secret=args.rig_secret,
        )
        document = load_document(args.config)
        settings = miner_settings(document, args)
        server_settings = inference_settings(document, args)
        if server_settings is not None and not (args.inference or "").startswith(("http://", "https://")):
            raise UsageError("--inference-cmd needs --inference URL: where the server it starts will listen")
    except (UsageError, ValueError, KeyError, OSError) as exc:
        print(f"stratumkit agent: {exc}", file=sys.stderr)
        return 2
    log = structlog.get_logger("stratumkit.agent")

    async def run() -> None:
        detected = await use_detected_gpus(config, args.nvidia_smi)
        backend: InferenceBackend | None = None
        if args.inference == "minilm":
            from stratumkit.inference.minilm import MiniLMBackend

            backend = MiniLMBackend(threads=args.inference_threads)
        elif args.inference == "smollm2":
            from stratumkit.inference.smollm2 import SmolLM2Backend

            backend = SmolLM2Backend(threads=args.inference_threads)
        elif args.inference:
            from stratumkit.inference.openai_http import OpenAIHTTPBackend

            backend = OpenAIHTTPBackend(args.inference)
        external = ExternalMiner(settings, config.worker) if settings is not None else None
        server = InferenceServer(server_settings) if server_settings is not None else None
        agent = RigAgent(config, backend, external, server)  # one agent across reconnects: it keeps its lease token
        if detected:
            agent.power_probe = partial(total_power, args.nvidia_smi)
        if backend is not None and server is None:  # a server we start is not up before a divert
            try:
                await backend.start()
                agent.backend_ok = True
            except Exception as exc:  # an unreachable backend is waited for on divert, not fatal
                log.warning("inference backend unavailable at start", error=str(exc), retried="on divert")
        tasks: list[Callable[[], Awaitable[object]]] = [partial(keep_connected, agent.session, PoolPlan(pools))]
        if external is not None:
            tasks.insert(0, external.serve)
        if server is not None:
            tasks.insert(0, server.run)
        await run_until_stopped(*tasks)

    trio.run(run)
    return 0
