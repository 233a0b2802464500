"""What only the SQLite engine promises: its crash contract, its file format, its injected clock."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import trio

from stratumkit.queue.engine import InvalidArgument, QueueEngine, QueueError
from stratumkit.queue.sqlite import APPLICATION_ID, SCHEMA_VERSION, open_sqlite_queue

from .queue_harness import REPO_ROOT
from .sqlite_kill_child import ROUND, WORKERS

CHILD = Path(__file__).with_name("sqlite_kill_child.py")


@pytest.mark.parametrize("mode", ["single", "batch", "combined"])
async def test_kill_9_loses_nothing_that_was_promised(tmp_path: Path, mode: str) -> None:
    """Batch: every `enqueue_many` and `ack_many` that returned survives (two workers at once, so
    their calls share commits), and a batch the kill cut short is there whole or not at all."""
    path = tmp_path / "queue.sqlite3"
    pythonpath = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
    enqueued: set[str] = set()
    acked: set[str] = set()
    buffer = b""

    def take_lines(data: bytes | bytearray) -> None:
        nonlocal buffer
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            word, job_id, *rest = line.decode().split()
            if word == "enqueued":
                enqueued.add(job_id)
            elif rest == ["True"]:
                acked.add(job_id)
            else:
                raise AssertionError(f"unexpected line from the child: {line!r}")

    with trio.fail_after(20):
        process = await trio.lowlevel.open_process(
            [sys.executable, str(CHILD), str(path), mode], stdout=subprocess.PIPE, env=env
        )
        assert process.stdout is not None
        try:
            while len(acked) < 150:
                data = await process.stdout.receive_some()
                assert data, f"the child exited early with {process.poll()}"
                take_lines(data)
            # Kill it somewhere in the middle of its next calls.
            await trio.sleep(random.uniform(0, 0.02))
            process.send_signal(signal.SIGKILL)
            # Lines it wrote before dying were promises too: read to the end.
            while data := await process.stdout.receive_some():
                take_lines(data)
        finally:
            process.kill()
            await process.wait()
    assert process.returncode == -signal.SIGKILL

    with closing(sqlite3.connect(path)) as raw, raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    async with open_sqlite_queue(path) as queue:
        for job_id in enqueued:
            await queue.result(job_id)  # raises UnknownJob if the enqueue was lost
        for job_id in acked:
            result = await queue.result(job_id)
            assert result is not None, f"ack of {job_id} was promised and lost"
            n = int(job_id.removeprefix("job-"))
            assert result.payload == {"square": n * n}
        stats = await queue.stats("jobs")
        assert stats.done >= len(acked)
        # The kill may land between a call's commit and its lines: at most one such call's jobs
        # per worker.
        stored = stats.ready + stats.in_flight + stats.done
        assert len(enqueued) <= stored <= len(enqueued) + (1 if mode == "single" else ROUND * WORKERS)
        if mode != "single":
            assert stored % ROUND == 0, f"{stored} jobs: a batch enqueue was cut in part"


async def test_file_format_is_marked_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    async with open_sqlite_queue(path) as queue:
        await queue.enqueue("q", {})
    with closing(sqlite3.connect(path)) as raw, raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert raw.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(QueueError, match=f"schema version {SCHEMA_VERSION + 1}"):
        async with open_sqlite_queue(path):
            pass


async def test_refuses_an_sqlite_file_of_something_else(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with closing(sqlite3.connect(path)) as raw, raw:
        raw.execute("CREATE TABLE accounts (id INTEGER)")
    with pytest.raises(QueueError, match="something else"):
        async with open_sqlite_queue(path):
            pass
    with closing(sqlite3.connect(path)) as raw, raw:
        raw.execute("PRAGMA application_id = 42")
    with pytest.raises(QueueError, match="not a queue database"):
        async with open_sqlite_queue(path):
            pass


async def test_heartbeating_rig_on_trio_clock(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    """A rig working for ten timeouts keeps its job by heartbeating; once it is killed, a rival
    that keeps polling gets the job one timeout after the last heartbeat.

    offload=False: the autojump clock would jump ahead while a transaction runs in a thread."""
    timeout = 30.0
    path = tmp_path / "q.sqlite3"
    async with open_sqlite_queue(path, clock=trio.current_time, offload=False) as queue:
        job_id = await queue.enqueue("q", {})
        rival_got: list[float] = []
        beats: list[float] = []

        async def rig(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            [claim] = await queue.claim("q", "rig-1", timeout)
            task_status.started()
            while True:
                await trio.sleep(timeout / 3)
                claim = await queue.heartbeat(claim)
                beats.append(trio.current_time())

        async def rival(queue: QueueEngine) -> None:
            while not (claims := await queue.claim("q", "rig-2", timeout)):
                await trio.sleep(1)
            assert claims[0].job_id == job_id and claims[0].deliveries == 2
            rival_got.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            await nursery.start(rig)
            nursery.start_soon(rival, queue)
            await trio.sleep(10 * timeout)
            assert rival_got == []
            nursery.cancel_scope.cancel()  # the rig dies mid-job, the rival too: restart it
        assert len(beats) >= 29
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rival, queue)
        assert beats[-1] + timeout <= rival_got[0] <= beats[-1] + timeout + 1


async def test_concurrent_writes_share_a_commit_and_fail_alone(tmp_path: Path) -> None:
    """Group commit: writes queued behind a running transaction run in the next one together; one
    that fails is rolled back to its savepoint and raises to its own caller only."""
    async with open_sqlite_queue(tmp_path / "q.sqlite3") as queue:
        await queue.enqueue("elsewhere", {}, job_id="taken")
        statements: list[str] = []
        queue._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]
        ids: list[str] = []
        refused: list[InvalidArgument] = []

        async def enqueue(job_id: str) -> None:
            try:
                ids.append(await queue.enqueue("q", {"id": job_id}, job_id=job_id))
            except InvalidArgument as exc:
                refused.append(exc)

        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(enqueue, f"job-{n}")
            nursery.start_soon(enqueue, "taken")
            for n in range(10, 20):
                nursery.start_soon(enqueue, f"job-{n}")
        assert sorted(ids) == sorted(f"job-{n}" for n in range(20))
        assert len(refused) == 1 and "already used on queue 'elsewhere'" in str(refused[0])
        commits = statements.count("COMMIT")
        assert 1 <= commits <= 3, f"{commits} commits for 21 concurrent writes"
        stats = await queue.stats("q")
        assert (stats.ready, stats.in_flight) == (20, 0)


async def test_schema_1_file_is_migrated(tmp_path: Path) -> None:
    """A file written before claim times and causes were kept opens, keeps its jobs, and gains them."""
    from stratumkit.queue.sqlite import _SCHEMA_V1

    path = tmp_path / "queue.sqlite3"
    with closing(sqlite3.connect(path)) as raw, raw:
        for statement in _SCHEMA_V1.split(";"):
            if statement.strip():
                raw.execute(statement)
        raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        raw.execute("PRAGMA user_version = 1")
        raw.execute(
            "INSERT INTO jobs (job_id, queue, payload, max_deliveries, state, enqueued_at)"
            " VALUES ('old', 'q', x'80', 2, 'ready', 1700000000.0)"
        )
    async with open_sqlite_queue(path) as queue:
        info = await queue.info("old")
        assert (info.state, info.enqueued_at, info.claimed_at, info.cause) == ("pending", 1700000000.0, None, None)
        [claim] = await queue.claim("q", "rig", 30)
        await queue.nack(claim, cause="it broke")
        info = await queue.info("old")
        assert info.claimed_at is not None and info.cause == "it broke"
    with closing(sqlite3.connect(path)) as raw, raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
