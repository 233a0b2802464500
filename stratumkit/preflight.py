"""What a configuration points at, checked before the pool starts, so a mistake is one line
naming its key (see `stratumkit.failures`) rather than a traceback from deep inside a service.

Rules:
* A data_dir that is a file, or in a directory this user cannot write, is a ConfigError.
  `check_data_dir` only reads (for `stratumkit serve --check-config`); `hold_data_dir` also
  makes data_dir when it is missing, and holds it for the process: a second pool on a data_dir
  in use is a StartupFailure (two share logs and chains in one directory would corrupt both).
* `check_node` asks the node once at start (`open_app`): credentials it refuses are a
  ConfigError; a node that does not answer is a StartupFailure unless node_wait is set, in which
  case the pool serves and the template source keeps retrying (as it does for a node lost mid-run).
  A node that answers with an error (warming up, syncing) is fine: the source waits for it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stratumkit.failures import ConfigError, StartupFailure
from stratumkit.server.config import PoolConfig, flag_of

__all__ = ["check_data_dir", "check_node", "hold_data_dir"]

#: How long the start-up question to the node may take.
NODE_CHECK_TIMEOUT = 10.0


def check_data_dir(config: PoolConfig) -> None:
    """data_dir is a directory this user can write, or can be made in one."""
    _check_data_dir(config.data_path, create=False)


@contextmanager
def hold_data_dir(config: PoolConfig) -> Iterator[None]:
    """data_dir exists (made if missing), this user can write it, and no other pool holds it
    (an flock on data_dir/lock, released when the process ends however it ends)."""
    path = config.data_path
    _check_data_dir(path, create=True)
    with open(path / "lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise StartupFailure(
                f"data_dir {path}: in use by another pool process (pid {holder}): stop it, or give each pool"
                f" its own {flag_of('data_dir')}"
            ) from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def _check_data_dir(path: Path, *, create: bool) -> None:
    fix = f"point {flag_of('data_dir')} at a directory this user can write"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"data_dir {path}: {existing} is a file, not a directory: {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"data_dir {path}: {existing} is not writable by this user: {fix}")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"data_dir {path}: cannot make it ({exc.strerror}): {fix}") from None


async def check_node(config: PoolConfig) -> None:
    """One question to the node at node_url (getblockchaininfo); see the module rules."""
    from stratumkit.jobs.rpc import NodeRPC, NodeUnreachable, RPCAuthError, RPCError

    if config.node_url is None:
        return
    try:
        async with NodeRPC(config.node_url, cookie_file=config.node_cookie, timeout=NODE_CHECK_TIMEOUT) as rpc:
            await rpc.call("getblockchaininfo")
    except RPCAuthError as exc:
        credentials = flag_of("node_cookie") if config.node_cookie else f"the user:password in {flag_of('node_url')}"
        raise ConfigError(f"node_url: {exc}: fix {credentials}") from None
    except NodeUnreachable as exc:
        if config.node_wait:
            return
        raise StartupFailure(
            f"node_url: {exc}: start the node, fix {flag_of('node_url')}, or serve while it is down with"
            f" {flag_of('node_wait')}"
        ) from None
    except RPCError:
        return
