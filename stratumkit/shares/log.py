"""The durable, append-only log of accepted shares: msgpack records in segment files.

Crash contract: a share is acknowledged to the miner only after the batch holding it has been
written and fdatasync'ed. A kill -9 (or power loss) can therefore lose only shares that were never
acknowledged; it can also leave a torn last record, which `open` detects by its length and CRC and
truncates away. Nothing acknowledged is lost.

Group commit: `append` queues a record's frame on the open batch and returns that batch; the caller
acknowledges nothing before the batch is durable. The batch is written with one write() and one
fdatasync() either by the writer task (`run`, woken by `wait(batch)`, which returns once it is
done) or at once by `sync_now()`, which the socket reactor calls once per wakeup after it has
read every ready connection. Under load, batches grow to whatever arrived while the previous one
was written, so the cost of a sync is shared by many shares.

The write and the sync run on the event loop's own thread, blocking it for their duration (about
0.15 ms on an SSD). A worker thread would not block the loop, but under load it waits for the
GIL to come back from the busy loop (up to the interpreter's 5 ms switch interval) on every batch,
which cost far more latency and throughput than the sync itself when we measured it.

Frame: u32 little-endian payload length, u32 CRC-32 of the payload, then the msgpack payload: an
array whose first item is the record type's version (`SHARE_V1`). Segments are named
`shares-<first sequence number>.log` and rotate past `segment_bytes`.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack
import trio

from stratumkit.histogram import Histogram

SHARE_V1 = 1
_FRAME = struct.Struct("<II")
_LENGTH = struct.Struct("<I")
_MAX_RECORD = 1 << 20
_packb = msgpack.Packer(autoreset=True).pack


@dataclass(frozen=True, slots=True)
class ShareRecord:
    """One accepted share, as logged. `hash` is the header hash in internal byte order."""

    time: float
    worker: str
    job_id: str
    extranonce1: bytes
    extranonce2: bytes
    ntime: int
    nonce: int
    version: int
    difficulty: float
    hash: bytes
    block: bool = False

    def pack(self) -> bytes:
        return pack_share(
            self.time,
            self.worker,
            self.job_id,
            self.extranonce1,
            self.extranonce2,
            self.ntime,
            self.nonce,
            self.version,
            self.difficulty,
            self.hash,
            self.block,
        )

    @classmethod
    def unpack(cls, body: bytes) -> ShareRecord:
        fields = msgpack.unpackb(body)
        if not isinstance(fields, list) or not fields or fields[0] != SHARE_V1:
            raise ShareLogError(f"unknown share record version: {fields[:1]!r}")
        return cls(*fields[1:])


def pack_share(
    time: float,
    worker: str,
    job_id: str,
    extranonce1: bytes,
    extranonce2: bytes,
    ntime: int,
    nonce: int,
    version: int,
    difficulty: float,
    hash: bytes,
    block: bool,
) -> bytes:
    """The frame of one share record (`ShareRecord.pack`, without building the record first)."""
    body: bytes = _packb(
        [SHARE_V1, time, worker, job_id, extranonce1, extranonce2, ntime, nonce, version, difficulty, hash, block]
    )
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


class ShareLogError(Exception):
    """The log's files are not what this module writes (not a torn tail: that is repaired)."""


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("shares-*.log"), key=lambda p: int(p.stem.split("-")[1]))


def _segments_from(directory: Path, start: int) -> Iterator[tuple[Path, int]]:
    """(segment, its first sequence number) of the segments that hold records from `start` on."""
    segments = _segments(directory)
    firsts = [int(p.stem.split("-")[1]) for p in segments]
    for i, path in enumerate(segments):
        if i + 1 < len(segments) and firsts[i + 1] <= start:
            continue
        yield path, firsts[i]


def _scan(path: Path) -> tuple[int, int]:
    """(records, bytes) of the valid prefix of one segment."""
    count = good = 0
    with path.open("rb") as f:
        data = f.read()
    while good + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, good)
        end = good + _FRAME.size + length
        if length > _MAX_RECORD or end > len(data) or zlib.crc32(data[good + _FRAME.size : end]) != crc:
            break
        good = end
        count += 1
    return count, good


def read_records(directory: str | os.PathLike[str], start: int = 0) -> Iterator[ShareRecord]:
    """Every intact record in order from sequence number `start` (a torn tail is skipped, not an
    error); segments wholly before `start` are not read (their names give their first number)."""
    for path, first in _segments_from(Path(directory), start):
        data = path.read_bytes()
        pos = 0
        seq = first
        while pos + _FRAME.size <= len(data):
            length, crc = _FRAME.unpack_from(data, pos)
            end = pos + _FRAME.size + length
            if length > _MAX_RECORD or end > len(data) or zlib.crc32(data[pos + _FRAME.size : end]) != crc:
                break
            if seq >= start:
                yield ShareRecord.unpack(data[pos + _FRAME.size : end])
            seq += 1
            pos = end


def read_accepted(directory: str | os.PathLike[str], start: int = 0) -> Iterator[tuple[float, str, float, bool]]:
    """(time, worker, difficulty, block) of every record from sequence number `start`, read as
    one msgpack stream per segment, about twice as fast as `read_records`: for a log `ShareLog`
    has opened (which checked every frame and cut a torn tail), so frames are not checked again."""
    for path, first in _segments_from(Path(directory), start):
        data = path.read_bytes()
        unpacker = msgpack.Unpacker()
        unpacker.feed(data)
        pos, seq, size = 0, first, len(data)
        while pos + _FRAME.size <= size:
            (length,) = _LENGTH.unpack_from(data, pos)
            if pos + _FRAME.size + length > size:
                break
            if seq < start:
                unpacker.read_bytes(_FRAME.size + length)
            else:
                unpacker.read_bytes(_FRAME.size)
                fields = unpacker.unpack()
                if fields[0] != SHARE_V1:
                    raise ShareLogError(f"unknown share record version: {fields[:1]!r}")
                yield fields[1], fields[2], fields[9], fields[11]
            pos += _FRAME.size + length
            seq += 1


class LogBatch:
    """Records written together; `done` is set once they are on disk (or `error` says why not)."""

    __slots__ = ("done", "error", "frames")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.done = trio.Event()
        self.error: BaseException | None = None


class ShareLog:
    """Append-only share log with group commit. Run `run()` in a nursery (`nursery.start`)."""

    def __init__(self, directory: str | os.PathLike[str], *, segment_bytes: int = 64 << 20, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.records = 0  # records in the log, including those recovered at open
        self.batches = 0
        self.sync_seconds = 0.0  # time spent in write + fdatasync since open
        self.largest_batch = 0
        self.sync_latency = Histogram()  # seconds per batch write + fdatasync
        self._batch = LogBatch()
        self._wake = trio.Event()
        self._fd = -1
        self._segment_size = 0
        self._closed = False
        self._open()

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = _segments(self.directory)
        total = 0
        for path in segments:
            count, good = _scan(path)
            total += count
            if good != path.stat().st_size:  # a torn tail from a crash: cut it off
                with path.open("r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
        self.records = total
        if segments and segments[-1].stat().st_size < self.segment_bytes:
            self._open_segment(segments[-1])
        else:
            self._open_segment(self.directory / f"shares-{total}.log")

    def _open_segment(self, path: Path) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._segment_size = os.fstat(self._fd).st_size
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's name is durable too
        finally:
            os.close(dir_fd)

    def statistics(self) -> dict[str, float]:
        """Counters for operators: records, batches, the largest batch, seconds spent syncing."""
        return {
            "records": self.records,
            "batches": self.batches,
            "largest_batch": self.largest_batch,
            "sync_seconds": round(self.sync_seconds, 3),
        }

    def append(self, frame: bytes) -> LogBatch:
        """Queue a record's frame (`pack_share`, `ShareRecord.pack`) on the open batch and return
        the batch: acknowledge the record only once `batch.done` is set without `batch.error`
        (`wait`), or after `sync_now()`."""
        if self._closed:
            raise ShareLogError("share log is closed")
        batch = self._batch
        batch.frames.append(frame)
        return batch

    @property
    def pending(self) -> int:
        """Records queued and not yet written."""
        return len(self._batch.frames)

    async def wait(self, batch: LogBatch) -> None:
        """Return once `batch` is on disk (the writer task writes it); ShareLogError if it failed."""
        if not batch.done.is_set():
            self._wake.set()
            await batch.done.wait()
        if batch.error is not None:
            raise ShareLogError(f"share log write failed: {batch.error}") from batch.error

    async def synced(self) -> None:
        """Return once every record appended so far has been written (or its write failed)."""
        batch = self._batch
        if batch.frames:
            self._wake.set()
            await batch.done.wait()

    def _write(self, frames: list[bytes]) -> None:
        data = b"".join(frames)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        if self.fsync:
            os.fdatasync(self._fd)
        self._segment_size += len(data)
        self.records += len(frames)
        if self._segment_size >= self.segment_bytes:
            self._open_segment(self.directory / f"shares-{self.records}.log")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer: one batch at a time, until cancelled; then flush what is queued and close."""
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                # no extra yield: the writer wakes in the loop iteration after the first wait, so
                # every connection that read in that iteration has already added its shares
                self.sync_now()
        finally:
            self.sync_now()
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def sync_now(self) -> LogBatch:
        """Write and sync the open batch on this thread, now; returns it (done, or with `error`)."""
        batch, self._batch = self._batch, LogBatch()
        if batch.frames:
            try:
                started = time.perf_counter()
                self._write(batch.frames)
                elapsed = time.perf_counter() - started
                self.sync_seconds += elapsed
                self.sync_latency.observe(elapsed)
                self.batches += 1
                self.largest_batch = max(self.largest_batch, len(batch.frames))
            except OSError as exc:
                batch.error = exc
        batch.done.set()
        return batch
