"""extranonce1 allocation: unique per live connection, with a per-process prefix.

extranonce1 = prefix (`prefix_bytes`, the front end's instance id, so several pool processes
never hand out the same space) + a counter. The session id a miner gets in its subscription is its
extranonce1 in hex; a miner that reconnects with it (`mining.subscribe` with a session id) gets the
same extranonce1 back if nobody else holds it, so its in-flight work stays valid.
"""

from __future__ import annotations


class ExtranonceExhausted(RuntimeError):
    """Every extranonce1 of this prefix is in use (only with absurd connection counts)."""


class ExtranonceAllocator:
    def __init__(self, *, size: int = 4, prefix: int = 0, prefix_bytes: int = 1) -> None:
        if not 0 <= prefix_bytes < size:
            raise ValueError("prefix_bytes must be smaller than the extranonce1 size")
        if not 0 <= prefix < 1 << (8 * prefix_bytes):
            raise ValueError(f"prefix {prefix} does not fit {prefix_bytes} byte(s)")
        self.size = size
        self._prefix = prefix.to_bytes(prefix_bytes, "big") if prefix_bytes else b""
        self._counter_bytes = size - prefix_bytes
        self._space = 1 << (8 * self._counter_bytes)
        self._next = 0
        self._in_use: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._in_use)

    def allocate(self, session_id: str | None = None) -> bytes:
        """A fresh extranonce1, or the one named by `session_id` when it is ours and free."""
        if session_id:
            try:
                wanted = bytes.fromhex(session_id)
            except ValueError:
                wanted = b""
            if len(wanted) == self.size and wanted.startswith(self._prefix) and wanted not in self._in_use:
                self._in_use.add(wanted)
                return wanted
        for _ in range(self._space):
            value = self._prefix + self._next.to_bytes(self._counter_bytes, "big")
            self._next = (self._next + 1) % self._space
            if value not in self._in_use:
                self._in_use.add(value)
                return value
        raise ExtranonceExhausted(f"all {self._space} extranonce1 values are in use")

    def release(self, extranonce1: bytes) -> None:
        self._in_use.discard(extranonce1)
