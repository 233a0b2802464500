from __future__ import annotations

import time

import pytest

from stratumkit.protocol import (
    DEFAULT_MAX_LINE_LENGTH,
    LineBuffer,
    LineTooLong,
    RemoteProtocolError,
)

# (stream, the lines it holds). Each is fed whole, one byte at a time, and followed by the
# start of another line that must stay buffered.
VECTORS: list[tuple[bytes, list[bytes]]] = [
    (b"", []),
    (b'{"id": 1}\n', [b'{"id": 1}']),
    (b'{"id": 1}\r\n', [b'{"id": 1}']),
    (b"a\nb\r\nc\n", [b"a", b"b", b"c"]),
    (b"\n\n\r\n", []),  # keep-alive newlines
    (b"  \t \n\r\na\n \n", [b"a"]),  # whitespace-only lines are dropped too
    (b"a\r\r\n", [b"a\r"]),  # only one \r belongs to the terminator
    (b"\rb\n", [b"\rb"]),
    (b"x" * 100 + b"\n" + b"y\n", [b"x" * 100, b"y"]),
]


def feed_all(buffer: LineBuffer, data: bytes, bytewise: bool) -> list[bytes]:
    if not bytewise:
        return buffer.feed(data)
    lines: list[bytes] = []
    for index in range(len(data)):
        lines += buffer.feed(data[index : index + 1])
    return lines


@pytest.mark.parametrize(("stream", "expected"), VECTORS)
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("trailing", [b"", b'{"partial": tr', b"\r"], ids=["end", "tail", "cr"])
def test_vectors(stream: bytes, expected: list[bytes], bytewise: bool, trailing: bytes) -> None:
    buffer = LineBuffer()
    assert feed_all(buffer, stream + trailing, bytewise) == expected
    assert len(buffer) == len(trailing)
    # The trailing partial line completes with the next newline (a \r that turned out not to
    # end the line stays part of it).
    assert buffer.feed(b"ue}\n") == [trailing + b"ue}"]
    assert len(buffer) == 0


def test_default_limit_is_16_kib() -> None:
    assert DEFAULT_MAX_LINE_LENGTH == 16384
    assert LineBuffer().max_line_length == 16384


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("terminator", [b"\n", b"\r\n"])
def test_line_of_exactly_the_limit_passes(bytewise: bool, terminator: bytes) -> None:
    buffer = LineBuffer(max_line_length=10)
    assert feed_all(buffer, b"x" * 10 + terminator + b"y\n", bytewise) == [b"x" * 10, b"y"]


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("terminator", [b"\n", b"\r\n", b""])
def test_line_one_over_the_limit_is_a_remote_error(bytewise: bool, terminator: bytes) -> None:
    buffer = LineBuffer(max_line_length=10)
    with pytest.raises(RemoteProtocolError, match="longer than 10 bytes"):
        # Without a terminator the error must still come, once 12 bytes prove the line long.
        feed_all(buffer, b"x" * 11 + terminator + (b"x" if not terminator else b""), bytewise)


def test_oversized_line_is_detected_before_its_newline() -> None:
    buffer = LineBuffer(max_line_length=100)
    buffer.feed(b"x" * 101)  # could still be 100 bytes + "\r"
    with pytest.raises(LineTooLong):
        buffer.feed(b"x")


def test_lines_before_an_oversized_one_are_kept_on_the_error() -> None:
    buffer = LineBuffer(max_line_length=5)
    with pytest.raises(LineTooLong) as info:
        buffer.feed(b"ok\n\nfine\r\n" + b"z" * 6 + b"\nlater\n")
    assert info.value.lines == (b"ok", b"fine")
    with pytest.raises(LineTooLong) as info:
        buffer.feed(b"ok\n" + b"z" * 7)  # the long one is the unterminated tail
    assert info.value.lines == (b"ok",)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "16"])
def test_limit_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ValueError):
        LineBuffer(max_line_length=bad)  # type: ignore[arg-type]


def _bytewise_seconds(size: int) -> float:
    best = float("inf")
    for _ in range(5):  # this thread's CPU time, best of five: other processes' load does not count
        buffer = LineBuffer(max_line_length=size + 10)
        data = [b"x"] * size
        start = time.thread_time()
        for byte in data:
            buffer.feed(byte)
        assert buffer.feed(b"\n") == [b"x" * size]
        best = min(best, time.thread_time() - start)
    return best


def test_trickled_line_costs_linear_time() -> None:
    """A line arriving one byte at a time must not be rescanned per byte (O(bytes) framing):
    64x the bytes cost about 64x the time; even a memcpy-speed rescan of the buffered tail
    makes it ~300x at this size."""
    small, large = _bytewise_seconds(1_000), _bytewise_seconds(64_000)
    assert large / small < 160


def test_the_line_limit_can_be_raised_for_a_trusted_peer() -> None:
    from stratumkit.protocol.client import ClientConnection
    from stratumkit.protocol.server import ServerConnection

    buffer = LineBuffer(8)
    with pytest.raises(LineTooLong):
        buffer.feed(b"x" * 20 + b"\n")
    buffer = LineBuffer(8)
    buffer.max_line_length = 64
    assert buffer.feed(b"x" * 20 + b"\n") == [b"x" * 20]
    for bad in (0, -1, 2.5, "64"):
        with pytest.raises(ValueError, match="max_line_length"):
            buffer.max_line_length = bad  # type: ignore[assignment]
    for conn in (ServerConnection(max_line_length=8), ClientConnection(max_line_length=8)):
        conn.max_line_length = 1 << 20
        assert conn.max_line_length == 1 << 20


def test_an_oversized_read_is_refused_before_it_is_buffered() -> None:
    """A 64 KiB write with no newline against a 16 KiB cap: refused, and nothing of it is kept."""
    buffer = LineBuffer(16 * 1024)
    with pytest.raises(LineTooLong):
        buffer.feed(b"a" * 65536)
    assert len(buffer) == 0
    buffer = LineBuffer(16 * 1024)
    buffer.feed(b"b" * 10_000)
    with pytest.raises(LineTooLong):
        buffer.feed(b"b" * 60_000 + b"\n")  # completes a line far over the cap
    assert len(buffer) == 10_000
