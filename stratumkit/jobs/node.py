"""The template source backed by a real node, over JSON-RPC (`getblocktemplate`, `submitblock`).

What it pushes (`TemplateUpdate.reason`):
- "initial": the first template it ever got (the pool sends it with clean_jobs);
- "new-block": previousblockhash changed (clean_jobs: older work is stale);
- "refresh": same previous block, newer transactions and fees, fetched every refresh_interval
  or when a longpoll returns for mempool changes (sent without clean_jobs);
- "recovered": the node answers again after a fault and the tip did not move (if it moved, the
  update says "new-block").

New blocks are seen two ways at once. Longpoll: a getblocktemplate call carrying the last
`longpollid`, which the node holds open until its tip changes, runs in a task of its own and
brings the new template the moment the block arrives. Polling: getbestblockhash every
poll_interval; it is the health check and the fallback when longpoll is unsupported or failing,
which it switches to without a warning (longpoll is retried later).

Rules for faults:
- `run` never raises because of the node, whether it is down at start or mid-run, slow (every call
  is bounded by rpc_timeout), or answering errors (no peers, warming up, syncing, a template that
  does not parse). It sets `healthy` False and `last_error` to what is wrong, logs when the health
  or the error changes (not at every retry), and retries with a backoff from poll_interval up to
  retry_max.
- Start: `task_status.started()` is called after the first attempt, whatever its outcome — after
  the "initial" update is pushed when the node answered, right after the failure when it did not.
  A pool with its node down starts serving anyway, with no work until the node answers.
- Time: scheduling uses trio's clock (so tests can use autojump_clock); `clock` only stamps the
  wall times shown by `status()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
import trio

from stratumkit.chain.errors import TemplateError
from stratumkit.chain.template import BlockTemplate

from .rpc import NodeTimeout, RPCClient, RPCError
from .sources import BlockStatus, SourceUnavailable, TemplateUpdate

__all__ = ["GBT_RULES", "NodeTemplateSource"]

log = structlog.get_logger("stratumkit.node")

#: The rules the pool supports. Bitcoin Core refuses a getblocktemplate without "segwit"; nodes
#: without segwit ignore it.
GBT_RULES = ("segwit",)
#: getblockheader errors meaning "no such block here": -5 unknown block, -8 not a block hash.
_NOT_FOUND_CODES = frozenset({-5, -8})


class NodeTemplateSource:
    """A `TemplateSource` over a node's JSON-RPC (Bitcoin Core and compatible nodes)."""

    name = "node"

    def __init__(
        self,
        rpc: RPCClient,
        *,
        poll_interval: float = 1.0,
        refresh_interval: float = 30.0,
        longpoll: bool = True,
        longpoll_timeout: float = 300.0,
        rpc_timeout: float = 10.0,
        submit_timeout: float = 60.0,
        retry_max: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for label, value in (
            ("poll_interval", poll_interval),
            ("refresh_interval", refresh_interval),
            ("longpoll_timeout", longpoll_timeout),
            ("rpc_timeout", rpc_timeout),
            ("submit_timeout", submit_timeout),
            ("retry_max", retry_max),
        ):
            if not value > 0:
                raise ValueError(f"{label} must be positive, got {value}")
        self.rpc = rpc
        self.poll_interval = poll_interval
        self.refresh_interval = refresh_interval
        self.longpoll = longpoll
        self.longpoll_timeout = longpoll_timeout
        self.rpc_timeout = rpc_timeout
        self.submit_timeout = submit_timeout
        self.retry_max = max(retry_max, poll_interval)
        self.clock = clock
        #: False until the first template, and from a failed call until the node answers again.
        self.healthy = False
        #: What went wrong last (kept after recovery, for the status page).
        self.last_error: str | None = None
        #: The last template pushed.
        self.template: BlockTemplate | None = None
        #: Whether the last longpoll call worked (False: new blocks are seen by polling alone).
        self.longpoll_active = False
        #: Set after a submitted block was accepted: the poller looks at the tip at once.
        self._kick = trio.Event()
        self.last_template_at: float | None = None
        self.unhealthy_since: float | None = None
        self._longpollid: str | None = None
        self._tip_changes = 0
        self._fetched_at = 0.0  # trio time of the last template
        self._published = trio.Event()  # set and replaced on every template pushed
        self._lock = trio.Lock()

    def __repr__(self) -> str:
        return f"NodeTemplateSource({self.rpc!r}, healthy={self.healthy})"

    def status(self) -> dict[str, Any]:
        """What an operator wants to see about the node, as plain JSON values."""
        template = self.template
        return {
            "source": self.name,
            "node": self.rpc.url,
            "healthy": self.healthy,
            "last_error": self.last_error,
            "unhealthy_since": self.unhealthy_since,
            "height": template.height if template else None,
            "previousblockhash": template.previousblockhash if template else None,
            "last_template_at": self.last_template_at,
            "longpoll": self.longpoll_active,
        }

    # -- TemplateSource ---------------------------------------------------------------------

    async def run(
        self,
        updates: trio.MemorySendChannel[TemplateUpdate],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await self._fetch(updates)
        task_status.started()
        async with trio.open_nursery() as nursery:
            if self.longpoll:
                nursery.start_soon(self._longpoll_loop, updates)
            await self._poll_loop(updates)

    async def submit_block(self, block: bytes) -> str | None:
        """submitblock: None when accepted, else the node's word ("duplicate", "high-hash", ...).

        A JSON-RPC error (such as -22 "Block decode failed") comes back as "rejected: <message>",
        except the transient ones (node warming up), which raise `SourceUnavailable` like an
        unreachable node so that the block is sent again rather than written off.
        """
        try:
            result = await self.rpc.call("submitblock", block.hex(), timeout=self.submit_timeout)
        except RPCError as exc:
            if exc.transient:
                raise SourceUnavailable(str(exc)) from None
            return f"rejected: {exc.message}"
        # The node answered, so it is back if it was away: fetch new work now rather than at
        # the end of a retry backoff (miners would spend it on a stale block).
        self._kick.set()
        if result is None:
            return None
        if isinstance(result, str):
            return result
        return f"rejected: unexpected submitblock answer {result!r}"

    async def block_status(self, block_hash: str) -> BlockStatus:
        """Where the block (display hex) stands: "in-chain" (at least one confirmation),
        "orphaned" (known but off the best chain: confirmations -1), or "unknown" (the node
        does not have it, e.g. it restarted before it had the block's parent)."""
        try:
            header = await self.rpc.call("getblockheader", block_hash, timeout=self.rpc_timeout)
        except RPCError as exc:
            if exc.code in _NOT_FOUND_CODES:
                return "unknown"
            raise SourceUnavailable(str(exc)) from None
        confirmations = header.get("confirmations") if isinstance(header, dict) else None
        if isinstance(confirmations, int) and confirmations >= 1:
            return "in-chain"
        return "orphaned" if confirmations == -1 else "unknown"

    # -- the loops --------------------------------------------------------------------------

    async def _poll_loop(self, updates: trio.MemorySendChannel[TemplateUpdate]) -> None:
        delay = self.poll_interval
        while True:
            with trio.move_on_after(delay):
                await self._kick.wait()
            if self._kick.is_set():
                self._kick = trio.Event()
                delay = self.poll_interval
            if not self.healthy:
                ok = await self._fetch(updates)
            elif trio.current_time() - self._fetched_at >= self.refresh_interval:
                ok = await self._fetch(updates)
            else:
                ok = await self._check_tip(updates)
            delay = self.poll_interval if ok else min(delay * 2, self.retry_max)

    async def _check_tip(self, updates: trio.MemorySendChannel[TemplateUpdate]) -> bool:
        try:
            best = await self.rpc.call("getbestblockhash", timeout=self.rpc_timeout)
        except (RPCError, SourceUnavailable) as exc:
            self._fail(str(exc))
            return False
        if self.template is not None and best == self.template.previousblockhash:
            return True
        return await self._fetch(updates, new_tip_only=True)

    async def _fetch(self, updates: trio.MemorySendChannel[TemplateUpdate], *, new_tip_only: bool = False) -> bool:
        """Get a template and push it; on a fault record it and return False.

        new_tip_only: push it only if its previous block is new (the longpoll may have pushed
        the same block while this call was out).
        """
        try:
            result = await self.rpc.call("getblocktemplate", {"rules": list(GBT_RULES)}, timeout=self.rpc_timeout)
            template = BlockTemplate.from_gbt(result)
        except (RPCError, SourceUnavailable) as exc:
            self._fail(str(exc))
            return False
        except TemplateError as exc:
            self._fail(f"getblocktemplate answer is not a usable template: {exc}")
            return False
        await self._publish(updates, template, result.get("longpollid"), new_tip_only=new_tip_only)
        return True

    async def _longpoll_loop(self, updates: trio.MemorySendChannel[TemplateUpdate]) -> None:
        delay = self.poll_interval
        while True:
            while not self.healthy or self._longpollid is None:
                await self._published.wait()
            longpollid, tip_changes = self._longpollid, self._tip_changes
            try:
                result = await self.rpc.call(
                    "getblocktemplate",
                    {"rules": list(GBT_RULES), "longpollid": longpollid},
                    timeout=self.longpoll_timeout,
                )
                template = BlockTemplate.from_gbt(result)
            except NodeTimeout:
                continue  # held open longer than we wait: ask again
            except (RPCError, SourceUnavailable, TemplateError) as exc:
                # The poller reports node faults; here it only means "poll for now".
                if self.longpoll_active:
                    log.debug("longpoll failed, polling only", node=self.rpc.url, error=str(exc))
                self.longpoll_active = False
                await trio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            self.longpoll_active = True
            delay = self.poll_interval
            await self._publish(updates, template, result.get("longpollid"), tip_changes)

    # -- state ------------------------------------------------------------------------------

    async def _publish(
        self,
        updates: trio.MemorySendChannel[TemplateUpdate],
        template: BlockTemplate,
        longpollid: object,
        tip_changes: int | None = None,
        *,
        new_tip_only: bool = False,
    ) -> None:
        async with self._lock:
            previous = self.template
            if tip_changes is not None and tip_changes != self._tip_changes:
                # The poller pushed a new block while this longpoll was out: its answer may be
                # that block again, or an older one. Drop it; the next longpoll carries the
                # newer longpollid and returns at once if the tip moved further.
                return
            if new_tip_only and self.healthy and previous is not None and previous.prevhash == template.prevhash:
                return
            if previous is None:
                reason = "initial"
            elif template.prevhash != previous.prevhash:
                reason = "new-block"
                self._tip_changes += 1
            elif not self.healthy:
                reason = "recovered"
            else:
                reason = "refresh"
            if not self.healthy:
                self._recover()
            self.template = template
            self._longpollid = longpollid if isinstance(longpollid, str) else None
            self._fetched_at = trio.current_time()
            self.last_template_at = self.clock()
            self._published.set()
            self._published = trio.Event()
            log.debug(
                "template",
                reason=reason,
                height=template.height,
                prevhash=template.previousblockhash,
                txs=len(template.transactions),
            )
            await updates.send(TemplateUpdate(template, reason))

    def _fail(self, error: str) -> None:
        if self.healthy or error != self.last_error:
            log.warning(
                "node unavailable, retrying",
                node=self.rpc.url,
                error=error,
                had_template=self.template is not None,
            )
        if self.healthy or self.unhealthy_since is None:
            self.unhealthy_since = self.clock()
        self.healthy = False
        self.last_error = error

    def _recover(self) -> None:
        if self.unhealthy_since is not None:
            log.info(
                "node answers again",
                node=self.rpc.url,
                down_for=round(self.clock() - self.unhealthy_since, 3),
            )
        else:
            log.info("node answers", node=self.rpc.url)
        self.healthy = True
        self.unhealthy_since = None
