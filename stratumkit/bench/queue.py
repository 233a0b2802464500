"""`stratumkit bench queue`: job queue throughput through the `QueueEngine`, per engine and batch size.

One producer and one consumer, each with its own engine on one store (an SQLite file in a temporary
directory, or a key prefix on Redis), as the pool's lease service and a second pool process would be:
- enqueue: the producer puts `jobs` small jobs on the queue, `batch` at a time (batch 1: `enqueue`
  per job, the one-round-trip-per-call path; more: `enqueue_many`);
- drain: the consumer claims `claim_batch` at a time and acks each claimed batch (batch 1: `ack`
  per job; more: one `ack_many` per claimed batch);
- cycle: jobs / (enqueue time + drain time), the whole life of a job through the queue.
`--prefetch` has the consumer send its next claim while its acks are on their way (two calls in
flight, as a rig that asks for work before it hands in results): on Redis both share a round
trip, on SQLite a group commit. `--held N` has another consumer hold N claimed jobs through the
run, as leased rigs do (a claim then looks through N jobs in flight for expired ones).
`--ack-with-claim` has the consumer hand in each batch's results and claim the next batch in one
`ack_and_claim` call (one round trip and one script on Redis, one transaction on SQLite).
`--queue-shape concurrent` runs producer and consumer at once instead (cycle: jobs / time to the last ack).

Each run also gives CPU per job: the bench process's own (all its threads: SQLite works in worker
threads) and, on Redis, the server's (INFO cpu). They hold steadier than the rates on a shared
machine; `cpu_pressure` is the host's /proc/pressure/cpu `some avg10` at the end of the run (the
share of time runnable tasks waited for a CPU), to say how busy the machine was.

Durability is the engines' own and unchanged: SQLite commits and fsyncs every call (WAL,
synchronous=FULL). Without `--redis-url` the bench starts a private redis-server with an
append-only file and `appendfsync always` (`--redis-fsync` to change it), so every reply the bench
counts was fsynced, as the engine's docstring asks for a durable queue. Both engines put their
files in the same temporary directory (on the disk of $TMPDIR).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trio

from stratumkit.queue.engine import ClaimedJob, NewJob, QueueEngine
from stratumkit.queue.sqlite import open_sqlite_queue

from .ports import serve_on_free_ports

QUEUE = "bench"
#: A small embeddings request, as an integrator would send one.
PAYLOAD: dict[str, Any] = {"kind": "embeddings", "model": "all-MiniLM-L6-v2", "input": ["the quick brown fox"]}
RESULT: dict[str, Any] = {"embedding": [0.125] * 8, "tokens": 6}
#: A consumer that finds the queue empty while the producer still runs waits this long.
EMPTY_WAIT_S = 0.0005


@dataclass(frozen=True)
class Run:
    """One measurement: rates in jobs per second."""

    engine: str
    shape: str
    jobs: int
    batch: int
    claim_batch: int
    prefetch: bool
    enqueue_per_s: float
    drain_per_s: float
    cycle_per_s: float
    seconds: float
    client_cpu_us: float
    server_cpu_us: float | None
    cpu_pressure: float | None
    ack_with_claim: bool = False


Opener = Callable[[], AbstractAsyncContextManager[QueueEngine]]
#: The store's server CPU seconds so far (Redis), or None when there is no server (SQLite).
ServerCpu = Callable[[], Awaitable[float | None]]


async def no_server() -> float | None:
    return None


def cpu_pressure() -> float | None:
    """/proc/pressure/cpu `some avg10` (percent), or None where the kernel does not say."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(part.split("=", 1) for part in first.split()[1:])
    return float(fields["avg10"]) if "avg10" in fields else None


async def _produce(engine: QueueEngine, jobs: int, batch: int) -> None:
    if batch == 1:
        for _ in range(jobs):
            await engine.enqueue(QUEUE, PAYLOAD)
        return
    for start in range(0, jobs, batch):
        await engine.enqueue_many(QUEUE, [NewJob(PAYLOAD) for _ in range(min(batch, jobs - start))])


async def _ack(engine: QueueEngine, claims: list[ClaimedJob], batch: int) -> None:
    if batch == 1:
        answers = [await engine.ack(claim, RESULT) for claim in claims]
    else:
        answers = await engine.ack_many([(claim, RESULT) for claim in claims])
    if not all(answers):
        raise RuntimeError("an ack was refused: the bench's own claims went stale")


async def _consume(engine: QueueEngine, jobs: int, batch: int, claim_batch: int, prefetch: bool,
                   produced: trio.Event, together: bool = False) -> None:  # fmt: skip
    """Claim and ack until `jobs` are done. With `prefetch` the next claim is sent while the last
    batch's acks are (two calls in flight: one round trip on Redis, one group commit on SQLite);
    `together` sends both in one `ack_and_claim` call."""
    done = 0
    claims = await engine.claim(QUEUE, "bench-rig", 300.0, max_jobs=claim_batch)
    while claims or done < jobs:
        if claims and together:
            answers, after = await engine.ack_and_claim(
                [(claim, RESULT) for claim in claims], QUEUE, "bench-rig", 300.0, max_jobs=claim_batch
            )
            if not all(answers):
                raise RuntimeError("an ack was refused: the bench's own claims went stale")
            done += len(claims)
            claims = after
            continue
        if not claims:
            if produced.is_set():
                raise RuntimeError(f"the queue ran dry after {done} of {jobs} jobs")
            await trio.sleep(EMPTY_WAIT_S)
        elif prefetch:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_ack, engine, claims, batch)
                done += len(claims)
                claims = await engine.claim(QUEUE, "bench-rig", 300.0, max_jobs=claim_batch)
            continue
        else:
            await _ack(engine, claims, batch)
            done += len(claims)
        claims = await engine.claim(QUEUE, "bench-rig", 300.0, max_jobs=claim_batch)


async def measure(
    opener: Opener, server_cpu: ServerCpu, name: str, shape: str, jobs: int, batch: int, claim_batch: int,
    prefetch: bool = False, held: int = 0, together: bool = False,
) -> Run:  # fmt: skip
    """One run on a fresh queue; raises if a job is lost or acked twice (the counts must add up).
    `held` jobs are claimed by another consumer first and stay in flight through the run."""
    produced = trio.Event()
    async with opener() as producer, opener() as consumer:
        for start in range(0, held, 1000):
            await producer.enqueue_many(QUEUE, [NewJob(PAYLOAD) for _ in range(min(1000, held - start))])
            await producer.claim(QUEUE, "bench-holder", 3600.0, max_jobs=1000)
        server0 = await server_cpu()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        if shape == "phases":
            await _produce(producer, jobs, batch)
            t_enqueued = time.perf_counter()
            produced.set()
            await _consume(consumer, jobs, batch, claim_batch, prefetch, produced, together)
        else:
            t_enqueued = t0

            async def produce() -> None:
                nonlocal t_enqueued
                await _produce(producer, jobs, batch)
                t_enqueued = time.perf_counter()
                produced.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                nursery.start_soon(_consume, consumer, jobs, batch, claim_batch, prefetch, produced, together)
        t_end = time.perf_counter()
        cpu = time.process_time() - cpu0
        server1 = await server_cpu()
        stats = await consumer.stats(QUEUE)
    if (stats.ready, stats.in_flight, stats.done) != (0, held, jobs):
        raise RuntimeError(f"the queue does not add up after the run: {stats}")
    enqueue_s = t_enqueued - t0
    drain_s = t_end - t_enqueued if shape == "phases" else t_end - t0
    server_us = None if server0 is None or server1 is None else (server1 - server0) / jobs * 1e6
    return Run(name, shape, jobs, batch, claim_batch, prefetch, jobs / enqueue_s, jobs / drain_s,
               jobs / (t_end - t0), t_end - t0, cpu / jobs * 1e6, server_us, cpu_pressure(), together)  # fmt: skip


# --- stores ------------------------------------------------------------------------------------


@contextmanager
def private_redis(directory: Path, fsync: str) -> Iterator[str]:
    """A redis-server of the bench's own on a free loopback port, its AOF in `directory`: its URL."""

    def launch(ports: list[int]) -> subprocess.Popen[bytes]:
        (port,) = ports
        args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", fsync, "--logfile", str(directory / "redis.log")]
        return subprocess.Popen(["redis-server", *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    server, (port,) = serve_on_free_ports(launch, 1)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait()


def _opener(engine: str, directory: Path, redis_url: str | None, run: int) -> Opener:
    if engine == "sqlite":
        path = directory / f"queue-{run}.sqlite3"
        return lambda: open_sqlite_queue(path)
    from stratumkit.queue.redis import open_redis_queue

    assert redis_url is not None
    prefix = f"bench:{uuid.uuid4().hex}"
    return lambda: open_redis_queue(redis_url, prefix=prefix)


@asynccontextmanager
async def _server_cpu(engine: str, redis_url: str | None) -> AsyncIterator[ServerCpu]:
    """Reads the Redis server's CPU seconds (user + system, every thread) on a connection of its own."""
    if engine != "redis":
        yield no_server
        return
    import coredis

    assert redis_url is not None
    async with coredis.Redis.from_url(redis_url, decode_responses=True) as client:

        async def read() -> float | None:
            info = await client.info("cpu")
            return float(str(info["used_cpu_user"])) + float(str(info["used_cpu_sys"]))

        yield read


@asynccontextmanager
async def _stores(engines: list[str], redis_url: str | None, fsync: str) -> AsyncIterator[tuple[Path, str | None]]:
    with tempfile.TemporaryDirectory(prefix="stratumkit-bench-queue-") as tmp:
        directory = Path(tmp)
        if "redis" in engines and redis_url is None:
            with private_redis(directory, fsync) as url:
                yield directory, url
        else:
            yield directory, redis_url


async def bench(
    engines: list[str],
    counts: list[int],
    batches: list[int],
    claim_batch: int,
    shape: str,
    prefetch: bool,
    held: int,
    runs: int,
    redis_url: str | None,
    fsync: str,
    report: Callable[[Run], None],
    together: bool = False,
) -> None:
    async with _stores(engines, redis_url, fsync) as (directory, url):
        n = 0
        for engine in engines:
            async with _server_cpu(engine, url) as server_cpu:
                for jobs in counts:
                    for batch in batches:
                        for _ in range(runs):
                            n += 1
                            opener = _opener(engine, directory, url, n)
                            report(
                                await measure(
                                    opener,
                                    server_cpu,
                                    engine,
                                    shape,
                                    jobs,
                                    batch,
                                    claim_batch,
                                    prefetch,
                                    held,
                                    together,
                                )
                            )


def run(
    engines: list[str],
    counts: list[int],
    batches: list[int],
    *,
    claim_batch: int = 16,
    shape: str = "phases",
    prefetch: bool = False,
    held: int = 0,
    runs: int = 1,
    redis_url: str | None = None,
    redis_fsync: str = "always",
    as_json: bool = False,
    ack_with_claim: bool = False,
) -> None:
    if not as_json:
        where = redis_url or f"a private redis-server, appendfsync {redis_fsync}"
        ahead = ", the next claim sent with the acks" if prefetch else ""
        ahead += ", acks and the next claim in one call" if ack_with_claim else ""
        ahead += f", {held:,} jobs held in flight by another consumer" if held else ""
        print(f"queue throughput, jobs/s ({shape}; claims of {claim_batch}{ahead}; redis: {where})")
        print(
            f"{'engine':<8}{'jobs':>8}{'batch':>7}{'enqueue/s':>11}{'drain/s':>10}{'cycle/s':>10}{'s':>7}"
            f"{'client us/job':>15}{'server us/job':>15}{'cpu psi':>9}"
        )

    def report(r: Run) -> None:
        if as_json:
            print(json.dumps(asdict(r)), flush=True)
        else:
            server = "-" if r.server_cpu_us is None else f"{r.server_cpu_us:.1f}"
            psi = "-" if r.cpu_pressure is None else f"{r.cpu_pressure:.0f}%"
            print(
                f"{r.engine:<8}{r.jobs:>8,}{r.batch:>7}{r.enqueue_per_s:>11,.0f}{r.drain_per_s:>10,.0f}"
                f"{r.cycle_per_s:>10,.0f}{r.seconds:>7.2f}{r.client_cpu_us:>15.1f}{server:>15}{psi:>9}",
                flush=True,
            )

    trio.run(bench, engines, counts, batches, claim_batch, shape, prefetch, held, runs, redis_url, redis_fsync, report,
             ack_with_claim)  # fmt: skip
