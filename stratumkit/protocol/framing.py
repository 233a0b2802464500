"""Newline framing for Stratum's JSON-per-line stream.

Rules:
- A line ends at ``\\n``; one ``\\r`` right before it is part of the terminator (``\\r\\n``).
- Empty and whitespace-only lines are dropped: some miners send a bare newline as keep-alive.
- ``max_line_length`` bounds a line *without* its terminator. A longer line raises
  :class:`~stratumkit.protocol.errors.LineTooLong` (a ``RemoteProtocolError``) as soon as the
  buffered partial line proves it, so a peer can never make us hold more than
  ``max_line_length + 2`` bytes.
- Work is O(bytes): each call searches only the bytes it was given (the buffered tail is known
  to hold no newline), so a line trickling in one byte at a time costs no rescans.
"""

from __future__ import annotations

from .errors import LineTooLong

__all__ = ["DEFAULT_MAX_LINE_LENGTH", "LineBuffer"]

#: 16 KiB: a mining.notify with a 12-step merkle branch and a fat coinbase is ~2 KiB.
DEFAULT_MAX_LINE_LENGTH = 16 * 1024


class LineBuffer:
    """Turns a byte stream into complete lines (without terminators)."""

    __slots__ = ("_max", "_tail")

    def __init__(self, max_line_length: int = DEFAULT_MAX_LINE_LENGTH) -> None:
        if type(max_line_length) is not int or max_line_length < 1:
            raise ValueError(f"max_line_length must be a positive int, got {max_line_length!r}")
        self._max = max_line_length
        # The unterminated tail of the stream. Invariant: it contains no b"\n".
        self._tail = bytearray()

    @property
    def max_line_length(self) -> int:
        return self._max

    @max_line_length.setter
    def max_line_length(self, value: int) -> None:
        """Change the limit, e.g. once a peer is trusted with larger messages."""
        if type(value) is not int or value < 1:
            raise ValueError(f"max_line_length must be a positive int, got {value!r}")
        self._max = value

    def __len__(self) -> int:
        """Bytes held back waiting for their newline."""
        return len(self._tail)

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the lines it completed, in order."""
        end = data.rfind(b"\n")
        tail = self._tail
        if end == len(data) - 1 and not tail and data.find(b"\n") == end:
            # Fast path, the common case: exactly one whole line in this read.
            line = data[: end - 1] if data[end - 1 : end] == b"\r" else data[:end]
            if len(line) > self._max:
                raise LineTooLong(self._too_long(len(line)))
            return [line] if line and not line.isspace() else []
        if end < 0:
            if data:
                # +1: the last byte may be the \r of a \r\n that has not arrived yet. Checked
                # before the copy, so an oversized read never grows the buffer past the cap.
                seen = len(tail) + len(data)
                if seen > self._max + 1:
                    raise LineTooLong(self._too_long(seen))
                tail += data
            return []
        if tail:
            first = len(tail) + data.find(b"\n")  # the buffered line's length once completed
            if first > self._max + 1:
                raise LineTooLong(self._too_long(first))
            tail += data[:end]
            chunk = bytes(tail)
            tail.clear()
        else:
            # Fast path (the common case: one whole line per read) copies nothing but the slice.
            chunk = data[:end]
        lines = chunk.split(b"\n")
        out: list[bytes] = []
        limit = self._max
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if len(line) > limit:
                raise LineTooLong(self._too_long(len(line)), out)
            if line and not line.isspace():
                out.append(line)
        if end + 1 < len(data):
            rest = len(data) - end - 1
            if rest > limit + 1:
                raise LineTooLong(self._too_long(rest), out)
            tail += data[end + 1 :]
        return out

    def _too_long(self, seen: int) -> str:
        return f"line longer than {self._max} bytes (at least {seen} bytes without a newline)"
