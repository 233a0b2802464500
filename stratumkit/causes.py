"""What an exception was caused by, through the wrapping a client library adds.

httpcore reports a refused connection as an OSError around an ExceptionGroup of one error per
address tried, and httpx wraps that again in its ConnectError; the node RPC client and the
OpenAI HTTP backend both need to tell "nothing listens there" from other connect failures.
Nothing here imports anything, so any module may use it.
"""

from __future__ import annotations

__all__ = ["caused_by", "connection_refused"]


def caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `exc`, or anything in its causes, contexts or exception groups, is a `kind`."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:  # a context chain may loop back
            continue
        seen.add(id(e))
        if isinstance(e, kind):
            return True
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        stack.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return False


def connection_refused(exc: BaseException) -> bool:
    """Whether a ConnectionRefusedError is among `exc`'s causes: nothing listens at the address."""
    return caused_by(exc, ConnectionRefusedError)
