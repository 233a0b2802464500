"""Failures an operator can act on: each is one line naming the key or flag and what to do.

Rules:
* A `ConfigError` is a bad configuration (a value, a file the configuration points at): exit
  code 2. A `StartupFailure` is the world refusing a good configuration (a port another process
  holds, Redis or the node not answering): exit code 1.
* They are raised where the failure is understood (the bind, the queue, the data directory) with
  the key in the message; nothing above rewrites them.
* The command's one handler (`stratumkit.cli.main`) prints `report(exc)` and exits with its
  code; `find` digs one out of the exception groups trio's nurseries wrap it in. Anything else
  is a bug and keeps its traceback.

Nothing here imports anything of the project, so any module may raise these.
"""

from __future__ import annotations

import trio

__all__ = ["ConfigError", "OperatorError", "StartupFailure", "damaged_file", "find"]


class OperatorError(Exception):
    """A failure whose message tells the operator what to fix."""

    exit_code = 1


class ConfigError(OperatorError, ValueError):
    """The configuration is invalid; the message says which key and why."""

    exit_code = 2


class StartupFailure(OperatorError):
    """The configuration is valid but something it names is not there or not free."""

    exit_code = 1


def damaged_file(path: object, what: str, exc: BaseException) -> StartupFailure:
    """A state file under data_dir that does not read as `what` (a SQLite database, JSON)."""
    return StartupFailure(f"data_dir: {path} is not {what} ({exc}): restore it, or move it aside to start a new one")


def find(exc: BaseException) -> OperatorError | None:
    """`exc` if it is an OperatorError, else the first one in its exception groups, when every
    other exception beside it is a cancellation it caused (trio.Cancelled)."""
    if isinstance(exc, OperatorError):
        return exc
    if not isinstance(exc, BaseExceptionGroup):
        return None
    found: OperatorError | None = None
    for inner in exc.exceptions:
        if isinstance(inner, trio.Cancelled):
            continue
        candidate = find(inner)
        if candidate is None:
            return None  # something else went wrong too: that one keeps its traceback
        found = found or candidate
    return found
