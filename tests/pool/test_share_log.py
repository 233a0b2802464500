"""The share log: msgpack frames in segment files, group commit, torn tails repaired on open.

The crash contract itself (kill -9 of a real server mid-burst) is in test_crash.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import pytest
import trio

from stratumkit.hashing import sha256d
from stratumkit.shares.log import SHARE_V1, ShareLog, ShareLogError, ShareRecord, read_records


def record(i: int) -> ShareRecord:
    return ShareRecord(
        time=1_700_000_000.25 + i,
        worker=f"addr.rig{i % 3}",
        job_id=f"{0x660E0000 + i:x}",
        extranonce1=bytes.fromhex("00000001"),
        extranonce2=i.to_bytes(4, "big"),
        ntime=0x6600_0000 + i,
        nonce=(i * 2654435761) % (1 << 32),
        version=0x20000000 | (i << 13 & 0x1FFFE000),
        difficulty=1e-6 * (i + 1),
        hash=sha256d(i.to_bytes(8, "little")),
        block=i % 7 == 3,
    )


async def write(directory: Path, records: list[ShareRecord], **kwargs: object) -> ShareLog:
    """Open a log, append the records concurrently, and close it (run() returns)."""
    log = ShareLog(directory, **kwargs)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        async with trio.open_nursery() as writers:
            for r in records:
                writers.start_soon(log.wait, log.append(r.pack()))
        nursery.cancel_scope.cancel()
    return log


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("shares-*.log"), key=lambda p: int(p.stem.split("-")[1]))


def test_a_record_packs_and_unpacks_to_itself() -> None:
    r = record(3)
    frame = r.pack()
    assert ShareRecord.unpack(frame[8:]) == r
    assert msgpack.unpackb(frame[8:])[0] == SHARE_V1


def test_an_unknown_record_version_is_an_error() -> None:
    with pytest.raises(ShareLogError, match="version"):
        ShareRecord.unpack(msgpack.packb([99, 1.0]))


async def test_appended_records_read_back_in_order(tmp_path: Path) -> None:
    records = [record(i) for i in range(50)]
    log = ShareLog(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        for r in records:  # one after the other: order is append order
            await log.wait(log.append(r.pack()))
        nursery.cancel_scope.cancel()
    assert list(read_records(tmp_path)) == records
    assert log.records == 50


async def test_concurrent_appends_share_syncs(tmp_path: Path) -> None:
    records = [record(i) for i in range(300)]
    log = await write(tmp_path, records)
    assert log.records == 300
    assert 1 <= log.batches < 300  # group commit: many records per write + fdatasync
    assert sorted(read_records(tmp_path), key=lambda r: r.nonce) == sorted(records, key=lambda r: r.nonce)


async def test_appends_then_one_wait_covers_the_whole_batch(tmp_path: Path) -> None:
    log = ShareLog(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        batches = [log.append(record(i).pack()) for i in range(20)]
        with trio.fail_after(5):
            await log.wait(batches[-1])
        on_disk = len(list(read_records(tmp_path)))  # before wait() returned
        nursery.cancel_scope.cancel()
    assert len({id(b) for b in batches}) == 1  # no checkpoint in between: one open batch
    assert on_disk == 20 and log.batches == 1


async def test_records_queued_at_shutdown_are_flushed(tmp_path: Path) -> None:
    """run(): "until cancelled; then flush what is queued and close", wherever the cancel lands."""
    log = ShareLog(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        batch = None
        for i in range(10):
            batch = log.append(record(i).pack())
        nursery.cancel_scope.cancel()  # the writer is woken but has not written yet
    assert len(list(read_records(tmp_path))) == 10
    assert batch is not None and batch.done.is_set()  # nobody is left waiting forever
    with pytest.raises(ShareLogError, match="closed"):
        log.append(record(11).pack())


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(lambda frame: frame[: len(frame) // 2], id="half-a-frame"),
        pytest.param(lambda frame: frame[:5], id="half-a-header"),
        pytest.param(lambda frame: b"\xde\xad\xbe\xef" * 7, id="garbage"),
        pytest.param(lambda frame: frame[:8] + bytes(len(frame) - 8), id="bad-crc"),
        pytest.param(lambda frame: (1 << 30).to_bytes(4, "little") + frame[4:], id="absurd-length"),
    ],
)
async def test_a_torn_tail_is_cut_off_on_reopen(tmp_path: Path, tail: object) -> None:
    records = [record(i) for i in range(12)]
    await write(tmp_path, records)
    [segment] = segment_files(tmp_path)
    good_size = segment.stat().st_size
    with segment.open("ab") as f:
        f.write(tail(record(99).pack()))  # type: ignore[operator]
    assert len(list(read_records(tmp_path))) == 12  # a reader skips the torn tail

    log = ShareLog(tmp_path)  # reopen: repair
    assert log.records == 12
    assert segment.stat().st_size == good_size
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        await log.wait(log.append(record(12).pack()))  # lands right after the last good record
        nursery.cancel_scope.cancel()
    assert sorted(read_records(tmp_path), key=lambda r: r.nonce) == sorted(
        [*records, record(12)], key=lambda r: r.nonce
    )


async def test_segments_rotate_and_are_named_by_their_first_record(tmp_path: Path) -> None:
    frames = [len(record(i).pack()) for i in range(25)]
    limit = 3 * frames[0]
    log = ShareLog(tmp_path, segment_bytes=limit)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        for i in range(20):
            await log.wait(log.append(record(i).pack()))
        nursery.cancel_scope.cancel()
    files = segment_files(tmp_path)
    assert len(files) >= 5
    firsts = [int(p.stem.split("-")[1]) for p in files]
    counts = [len(read_records_of(p)) for p in files]
    assert firsts == [sum(counts[:k]) for k in range(len(files))]  # named by their first record
    # a segment rotates once it reaches the limit: it overshoots by at most the last write
    assert all(p.stat().st_size < limit + max(frames) for p in files)
    assert all(p.stat().st_size >= limit for p in files[:-1])
    assert list(read_records(tmp_path)) == [record(i) for i in range(20)]

    reopened = ShareLog(tmp_path, segment_bytes=limit)
    assert reopened.records == 20
    async with trio.open_nursery() as nursery:
        await nursery.start(reopened.run)
        for i in range(20, 25):
            await reopened.wait(reopened.append(record(i).pack()))
        nursery.cancel_scope.cancel()
    assert list(read_records(tmp_path)) == [record(i) for i in range(25)]


def read_records_of(path: Path) -> list[ShareRecord]:
    """Records of one segment, read through a directory holding only it."""
    single = path.parent / f"single-{path.name}"
    single.mkdir()
    os.link(path, single / path.name)
    try:
        return list(read_records(single))
    finally:
        (single / path.name).unlink()
        single.rmdir()


def test_reading_a_missing_directory_yields_nothing(tmp_path: Path) -> None:
    assert list(read_records(tmp_path / "nope")) == []
