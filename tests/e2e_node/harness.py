"""The pool as operators run it (`stratumkit serve` in a process of its own) and miners as they
mine (tests.support.miners.ScanningMiner: our Stratum client and CPU miner over real TCP), against
the regtest nodes of tests/node.

Regtest's target is about 2**255: every other header hash solves a block. The pool never sends
a share difficulty above the network's (about 4.7e-10), whatever the configuration asks, so every
other hash is a share and a block. A miner here therefore submits one share per scan chunk and
then stops until the pool sends the next clean job, as one block per height is what the tests
reason about (a share sent while the next job is on its way is a sibling block that loses to the
first, and the tests allow it).

Waits on the pool process poll its JSON log or its files: it shares no memory with the test.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from stratumkit.chain.address import Address, AddressKind, Network
from stratumkit.jobs.blocks import BlockLedger, FoundBlock
from stratumkit.protocol.events import Notify
from tests.support.processes import ServeProcess

#: Share difficulty (fixed: vardiff is pinned by min = start = max).
SHARE_DIFFICULTY = 2e-3
POOL_TAG = "/stratumkit e2e/"
#: Upper bound of one wait; the pool's node retries back off up to 10 s during an outage.
TIMEOUT = 20.0


def new_address() -> str:
    """A fresh P2PKH regtest address of a random key hash (its coins are never spent)."""
    return Address(AddressKind.P2PKH, Network.REGTEST, secrets.token_bytes(20)).encode()


# ------------------------------------------------------------------------------ the pool


class PoolProcess:
    """`stratumkit serve` on the regtest node with JSON logs, restartable on its data directory;
    its log is also kept in `data_dir/pool.log`."""

    def __init__(self, data_dir: Path, args: list[str]) -> None:
        self.data_dir = data_dir
        self.args = args
        self.serve: ServeProcess | None = None

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
        # Some keys go through --config (flags override the file); node_wait: one test starts
        # the pool with its node down, and the pool serves meanwhile.
        config = data_dir / "pool.toml"
        config.write_text("node_poll_interval = 0.2\ntemplate_refresh = 30.0\nnode_wait = true\n")
        args = [
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
        self.serve = await ServeProcess.start(nursery, *self.args, log_copy=self.data_dir / "pool.log", timeout=TIMEOUT)

    async def restart(self, nursery: trio.Nursery) -> None:
        """Stop (SIGTERM) and start again on the same data directory and options."""
        await self.stop()
        await self._launch(nursery)

    @property
    def process(self) -> ServeProcess:
        assert self.serve is not None, "the pool was never started"
        return self.serve

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def logs(self) -> list[dict[str, Any]]:
        """The JSON records of the current process's log (a restart starts them afresh)."""
        return self.process.events

    def find_logs(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return self.process.find_events(event, **fields)

    async def wait_log(
        self,
        event: str,
        timeout: float = TIMEOUT,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The first log record named `event` (and meeting `where`), waiting for it if need be."""
        return await self.process.wait_event(event, timeout, where)

    def tail(self, lines: int = 30) -> str:
        return self.process.tail(lines)

    @property
    def running(self) -> bool:
        return self.serve is not None and self.serve.running

    def freeze(self) -> None:
        """SIGSTOP: the pool does nothing until `thaw` (its timers then fire at once)."""
        self.process.freeze()

    def thaw(self) -> None:
        self.process.thaw()

    async def stop(self) -> int:
        """SIGTERM and wait: returns the exit status (0: a clean shutdown)."""
        return await self.process.stop(timeout=15)

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


def coinbase_of(notify: Notify, extranonce1: bytes = bytes(4), extranonce2: bytes = bytes(4)) -> bytes:
    """The serialized coinbase a miner builds from a notify (any extranonces)."""
    return bytes.fromhex(notify.coinb1) + extranonce1 + extranonce2 + bytes.fromhex(notify.coinb2)
