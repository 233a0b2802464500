"""The pool as operators run it (`stratumkit serve` in a process of its own) and miners as they
mine (our Stratum client and CPU miner over real TCP), against the regtest nodes of tests/node.

Regtest's target is about 2**255: every other header hash solves a block. Any share difficulty
above the network's (about 4.7e-10) therefore makes every share a block, so the share difficulty
only sets how often blocks come: at SHARE_DIFFICULTY one in ~8.6 million hashes, a fraction of a
second for the native scan. A miner here stops after each share until the pool sends the next
clean job, as one block per height is what the tests reason about (a chunk of the scan can still
hold two shares: the second is a sibling block that loses to the first, and the tests allow it).

Waits on the pool process poll its JSON log or its files: it shares no memory with the test.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from stratumkit.agent.cpu_miner import CpuMiner
from stratumkit.agent.stratum import StratumClient
from stratumkit.chain.address import Address, AddressKind, Network
from stratumkit.chain.template import prevhash_from_stratum
from stratumkit.jobs.blocks import BlockLedger, FoundBlock
from stratumkit.protocol.client import ClientConnection
from stratumkit.protocol.events import Event, Notify, SubmitResult

ROOT = Path(__file__).resolve().parents[2]
#: Share difficulty (fixed: vardiff is pinned by min = start = max).
SHARE_DIFFICULTY = 2e-3
POOL_TAG = "/stratumkit e2e/"
#: Upper bound of one wait; the pool's node retries back off up to 10 s during an outage.
TIMEOUT = 20.0


def new_address() -> str:
    """A fresh P2PKH regtest address of a random key hash (its coins are never spent)."""
    return Address(AddressKind.P2PKH, Network.REGTEST, secrets.token_bytes(20)).encode()


async def wait_until(predicate: Callable[[], object], timeout: float = TIMEOUT, what: str = "") -> None:
    """Poll state that lives in another process (its files, its log) or behind blocking calls."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")


# ------------------------------------------------------------------------------ the pool


class PoolProcess:
    """One `stratumkit serve` subprocess with JSON logs, read line by line into `logs`."""

    def __init__(self, data_dir: Path, args: list[str]) -> None:
        self.data_dir = data_dir
        self.args = args
        self.logs: list[dict[str, Any]] = []
        self.process: trio.Process | None = None
        self.port = 0  # known once it listens
        self._changed = trio.Event()

    @classmethod
    async def start(
        cls,
        nursery: trio.Nursery,
        data_dir: Path,
        *,
        node_url: str,
        payout_address: str | None = None,
        solo: bool = False,
    ) -> PoolProcess:
        data_dir.mkdir(parents=True, exist_ok=True)
        # Keys without a command-line flag go through --config (flags override the file).
        config = data_dir / "pool.toml"
        config.write_text("node_poll_interval = 0.2\ntemplate_refresh = 30.0\n")
        args = [
            "serve",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--api-port",
            "0",
            "--data-dir",
            str(data_dir),
            "--node-url",
            node_url,
            "--network",
            "regtest",
            "--pool-tag",
            POOL_TAG,
            "--start-difficulty",
            str(SHARE_DIFFICULTY),
            "--min-difficulty",
            str(SHARE_DIFFICULTY),
            "--max-difficulty",
            str(SHARE_DIFFICULTY),
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ]
        if payout_address is not None:
            args += ["--payout-address", payout_address]
        if solo:
            args.append("--solo")
        pool = cls(data_dir, args)
        await pool._launch(nursery)
        return pool

    async def _launch(self, nursery: trio.Nursery) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "stratumkit.cli", *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        nursery.start_soon(self._read_logs, self.process)
        listening = await self.wait_log("pool listening")
        self.port = int(listening["port"])

    async def restart(self, nursery: trio.Nursery) -> None:
        """Stop (SIGTERM) and start again on the same data directory and options."""
        await self.stop()
        self.logs.clear()
        await self._launch(nursery)

    async def _read_logs(self, process: trio.Process) -> None:
        assert process.stderr is not None
        pending = b""
        with (self.data_dir / "pool.log").open("ab") as copy:
            async for chunk in process.stderr:
                copy.write(chunk)
                copy.flush()
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        record = {"event": "(not JSON)", "line": line.decode(errors="replace")}
                    self.logs.append(record)
                self._changed.set()
                self._changed = trio.Event()
        self._changed.set()

    def find_logs(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [r for r in self.logs if r.get("event") == event and all(r.get(k) == v for k, v in fields.items())]

    async def wait_log(
        self,
        event: str,
        timeout: float = TIMEOUT,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The first log record named `event` (and meeting `where`), waiting for it if need be."""
        assert self.process is not None
        with trio.move_on_after(timeout):
            while True:
                for record in self.logs:
                    if record.get("event") == event and (where is None or where(record)):
                        return record
                if self.process.returncode is not None:
                    break
                await self._changed.wait()
        raise AssertionError(f"pool never logged {event!r}; its log ends with:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(json.dumps(r) for r in self.logs[-lines:])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def freeze(self) -> None:
        """SIGSTOP: the pool does nothing until `thaw` (its timers then fire at once)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    async def stop(self) -> int:
        """SIGTERM and wait: returns the exit status (0: a clean shutdown)."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            self.process.send_signal(signal.SIGTERM)
        with trio.move_on_after(15):
            return await self.process.wait()
        self.process.kill()
        await self.process.wait()
        raise AssertionError(f"pool did not stop on SIGTERM:\n{self.tail()}")

    # -- its files ----------------------------------------------------------------------------

    def ledger(self) -> list[FoundBlock]:
        """Found blocks as the pool recorded them (read while it runs: SQLite WAL)."""
        ledger = BlockLedger(self.data_dir / "blocks.sqlite")
        try:
            return ledger.list()
        finally:
            ledger.close()

    def ledger_status(self) -> dict[str, str]:
        return {b.hash: b.status for b in self.ledger()}


# ------------------------------------------------------------------------------ miners


class _RecordingConnection(ClientConnection):
    """The client role, telling its miner about each share it submits."""

    def __init__(self, on_submit: Callable[[int, str], None]) -> None:
        super().__init__()
        self.on_submit = on_submit

    def submit(
        self, worker: str, job_id: str, extranonce2: str, ntime: str, nonce: str, version_bits: str | None = None
    ) -> int:
        request_id = super().submit(worker, job_id, extranonce2, ntime, nonce, version_bits)
        self.on_submit(request_id, job_id)
        return request_id


class NodeMiner:
    """Our StratumClient + CpuMiner, recording what the pool sends and what it answers.

    one_share_per_job: pause after a submit until the pool sends a clean job (the next block).
    `mining` False: hold still (no scan) until `start_mining()`.
    """

    def __init__(self, worker: str, *, mining: bool = True, one_share_per_job: bool = True) -> None:
        self.worker = worker
        self.mining = mining
        self.one_share_per_job = one_share_per_job
        self.events: list[Event] = []
        self.submitted: dict[int, str] = {}  # request id -> job id
        self.results: dict[int, SubmitResult] = {}
        self.client: StratumClient
        self.cpu: CpuMiner
        self._changed = trio.Event()
        self._cancel = trio.CancelScope()

    @classmethod
    async def connect(
        cls, nursery: trio.Nursery, port: int, worker: str, *, mine: bool = True, one_share_per_job: bool = True
    ) -> NodeMiner:
        """Connect and hand-shake; then mine in `nursery` (unless mine=False) once work comes."""
        miner = cls(worker, mining=mine, one_share_per_job=one_share_per_job)
        miner.client = await StratumClient.connect(nursery, "127.0.0.1", port, on_event=miner._on_event)
        miner.client.conn = _RecordingConnection(miner._on_submit)  # before any byte moves
        miner.cpu = CpuMiner(miner.client, worker, chunk=1 << 16)
        with trio.fail_after(TIMEOUT):
            sub = await miner.client.handshake(worker)
        miner.cpu.attach(sub.extranonce1, sub.extranonce2_size)
        if not mine:
            miner.cpu.pause()
        nursery.start_soon(miner._mine)
        return miner

    async def _mine(self) -> None:
        try:
            with self._cancel:
                await self.cpu.run()
        finally:
            await trio.aclose_forcefully(self.client.stream)

    def _on_submit(self, request_id: int, job_id: str) -> None:
        self.submitted[request_id] = job_id
        if self.one_share_per_job:
            self.cpu.pause()

    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        self.cpu.on_event(event)
        if isinstance(event, SubmitResult):
            self.results[event.id] = event  # type: ignore[index]
        elif isinstance(event, Notify) and event.clean_jobs and self.mining:
            self.cpu.resume()
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], object], timeout: float = TIMEOUT, what: str = "") -> None:
        with trio.move_on_after(timeout):
            while not predicate():
                if self.client.closed.is_set():
                    raise AssertionError(f"{self.worker}: the pool closed the connection")
                await self._changed.wait()
            return
        raise AssertionError(f"{self.worker}: timed out waiting for {what or predicate}")

    def start_mining(self) -> None:
        self.mining = True
        self.cpu.resume()

    async def quiesce(self) -> None:
        """Stop mining and wait for the answers to every share already sent."""
        self.mining = False
        self.cpu.pause()
        await self.wait_for(lambda: not self.unanswered, what="answers to the shares sent")

    def close(self) -> None:
        self._cancel.cancel()

    # -- what it saw --------------------------------------------------------------------------

    @property
    def unanswered(self) -> set[int]:
        return set(self.submitted) - set(self.results)

    def notifies(self) -> list[Notify]:
        return [e for e in self.events if isinstance(e, Notify)]

    def clean_tips(self) -> list[str]:
        """The previous block (display hex) of each clean job, in order received."""
        return [display_prevhash(n) for n in self.notifies() if n.clean_jobs]

    @property
    def job(self) -> Notify | None:
        notifies = self.notifies()
        return notifies[-1] if notifies else None

    def has_accepted(self) -> bool:
        return any(r.accepted for r in self.results.values())

    def accepted_on(self, job_ids: set[str]) -> list[SubmitResult]:
        return [r for i, r in self.results.items() if r.accepted and self.submitted[i] in job_ids]


def display_prevhash(notify: Notify) -> str:
    return prevhash_from_stratum(notify.prevhash)[::-1].hex()


def coinbase_of(notify: Notify, extranonce1: bytes = bytes(4), extranonce2: bytes = bytes(4)) -> bytes:
    """The serialized coinbase a miner builds from a notify (any extranonces)."""
    return bytes.fromhex(notify.coinb1) + extranonce1 + extranonce2 + bytes.fromhex(notify.coinb2)
