"""The share log's crash contract against a real `stratumkit serve` killed with SIGKILL mid-burst:
every share the pool acknowledged is in the log; the log opens cleanly afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from stratumkit.chain.targets import difficulty_to_target
from stratumkit.hashing import hash_to_int, scan_nonces
from stratumkit.protocol.errors import LocalProtocolError
from stratumkit.shares.log import read_records
from tests.support.processes import ServeProcess

from .helpers import TIMEOUT, Miner, Share, header_hash, reopen_share_log

pytestmark = pytest.mark.slow

DIFFICULTY = 1e-9  # about one nonce in four is a share: a burst costs almost no hashing
MINERS = 3
KILL_AFTER = 150  # acknowledged shares, across all miners
IN_FLIGHT = 48


def shares_for(miner: Miner, count: int) -> list[Share]:
    job = miner.job
    assert job is not None and miner.difficulty == DIFFICULTY
    target = difficulty_to_target(DIFFICULTY)
    found: list[Share] = []
    while len(found) < count:
        extranonce2 = miner.next_extranonce2()
        header76 = job.header76(miner.extranonce1, extranonce2)
        for nonce in scan_nonces(header76, 0, 256, target, max_found=64):
            digest = header_hash(header76, nonce)
            if hash_to_int(digest) > job.network_target:  # no block: the job must stay current
                found.append(
                    Share(
                        job.job_id,
                        extranonce2.hex(),
                        f"{job.ntime:08x}",
                        f"{nonce:08x}",
                        None,
                        digest,
                    )
                )
    return found[:count]


async def burst(miner: Miner, shares: list[Share], sent: dict[int, Share]) -> None:
    """Submit as fast as the pool answers (IN_FLIGHT pipelined) until the connection dies."""
    try:
        for i in range(0, len(shares), 16):
            if miner.client.closed.is_set():
                return
            for share in shares[i : i + 16]:
                sent[miner.client.conn.send_request("mining.submit", share.params(miner.worker))] = share
            await miner.client.flush()
            await miner.wait_for(lambda: len(miner.results) >= len(sent) - IN_FLIGHT)
    except (
        trio.BrokenResourceError,
        trio.ClosedResourceError,
        LocalProtocolError,
        AssertionError,
        OSError,
    ):
        if not miner.client.closed.is_set():
            raise  # a real failure, not the kill


async def test_acknowledged_shares_survive_kill_9(tmp_path: Path, nursery: trio.Nursery) -> None:
    data_dir = tmp_path / "pool"
    server = await ServeProcess.start(
        nursery,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--start-difficulty",
        str(DIFFICULTY),
        "--min-difficulty",
        str(DIFFICULTY),
        "--max-difficulty",
        str(DIFFICULTY),
        "--embedded-difficulty",
        "0.02",
        "--log-format",
        "json",
    )
    assert server.port is not None
    miners = [await Miner.connect(nursery, server.port, f"crash.{i}") for i in range(MINERS)]
    sent: list[dict[int, Share]] = [{} for _ in miners]
    plenty = [shares_for(m, 4000) for m in miners]

    def acknowledged() -> int:
        return sum(r.accepted for m in miners for r in m.results)

    async with trio.open_nursery() as load:
        for miner, shares, log in zip(miners, plenty, sent, strict=True):
            load.start_soon(burst, miner, shares, log)
        with trio.fail_after(TIMEOUT):
            while acknowledged() < KILL_AFTER:
                await trio.sleep(0.001)
        server.process.kill()  # SIGKILL, mid-burst: the miners are still sending
        assert await server.wait_exit() < 0

    acked = {
        sent_by[int(r.id or 0)].key(m.extranonce1)
        for m, sent_by in zip(miners, sent, strict=True)
        for r in m.results
        if r.accepted
    }
    assert len(acked) >= KILL_AFTER
    assert sum(len(s) for s in sent) > len(acked), "the kill did not land mid-burst"

    shares_dir = data_dir / "shares"
    logged = {(r.extranonce1, r.extranonce2, r.ntime, r.nonce) for r in read_records(shares_dir)}
    missing = acked - logged
    assert not missing, f"{len(missing)} acknowledged shares lost in the crash"
    # reopening repairs a torn tail, if the kill left one, and keeps every intact record
    assert await reopen_share_log(shares_dir) == len(list(read_records(shares_dir))) >= len(acked)
    print(f"sent {sum(len(s) for s in sent)}, acknowledged {len(acked)}, logged {len(logged)}")
