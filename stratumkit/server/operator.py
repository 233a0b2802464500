"""The operator's view of a running pool: the `stratumkit.api.operator.OperatorPort` the
composition root hands the HTTP API.

It reads, and never changes: the pool's share history (blocks and series), its sessions
(connections by state and transport, rigs by mode), its template source (node up, template age),
the share log's sync latency, the depth of every queue a lease has named, and, for the daily
report, the whole share log and block ledger (in a worker thread, on each request). Each call walks
the sessions once: a scrape with 10,000 miners costs a few milliseconds of the loop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

import trio

from stratumkit.asgi import HTTPError
from stratumkit.chain.targets import target_to_difficulty
from stratumkit.jobs import block_history
from stratumkit.queue.engine import QueueEngine, QueueError
from stratumkit.shares.log import read_accepted
from stratumkit.shares.payouts import PaidBlock, PayoutRules, daily_report

from .connection import TlsSocketConnection
from .pool import Pool

if TYPE_CHECKING:
    from stratumkit.api.ports import LeaseAPI

__all__ = ["PoolOperator"]


class PoolOperator:
    def __init__(
        self,
        pool: Pool,
        leases: LeaseAPI,
        queue: QueueEngine,
        hashprice: Callable[[], float | None] | None = None,
    ) -> None:
        self.pool = pool
        self.leases = leases
        self.queue = queue
        self.hashprice = hashprice  # USD/TH/day in force (the power prices'), for FPPS in USD
        self._queues: set[str] = set()  # every queue a lease has named, since start

    async def blocks(self, limit: int, before: str | None) -> dict[str, Any]:
        return await self.pool.history.blocks(limit, before)

    async def history(self, bucket: str, since: float | None, worker: str | None, top: int) -> dict[str, Any]:
        return await self.pool.history.series(bucket, since, worker, top)

    def payout_rules(self) -> PayoutRules:
        """The config's scheme, window and fee; FPPS at the current template's reward and difficulty,
        and in USD at the hashprice in force (if any)."""
        config, current = self.pool.config, self.pool.registry.current
        return PayoutRules(
            scheme=config.payout_scheme,
            pplns_window=config.pplns_window,
            pool_fee=config.pool_fee,
            fpps_reward_sats=None if current is None else current.template.coinbasevalue,
            fpps_network_difficulty=None if current is None else target_to_difficulty(current.network_target),
            hashprice_usd_per_th_day=None if self.hashprice is None else self.hashprice(),
        )

    async def daily(self, day: date) -> dict[str, Any]:
        rules = self.payout_rules()
        share_log, ledger = self.pool.share_log, self.pool.ledger
        await share_log.synced()  # every share acknowledged so far is in the file read

        def read() -> dict[str, Any]:
            blocks = []
            for found in ledger.found_after(-1.0):
                facts = block_history.block_facts(ledger.block_head(found.hash, block_history.HEAD_BYTES))
                blocks.append(
                    PaidBlock(found.hash, found.found_at, found.status, facts.reward_sats, facts.network_difficulty)
                )
            return daily_report(read_accepted(share_log.directory), blocks, day, rules)

        try:
            return await trio.to_thread.run_sync(read)
        except ValueError as exc:  # FPPS before the first template
            raise HTTPError(503, str(exc)) from None

    async def figures(self) -> dict[str, Any]:
        pool = self.pool
        connections: Counter[tuple[str, str]] = Counter()
        modes: dict[str, str] = {}
        for conn in pool.sessions:
            session = conn.session
            transport = "tls" if isinstance(conn, TlsSocketConnection) else "tcp"
            connections[session.conn.state.value, transport] += 1
            if session.rig_id is not None:
                modes[session.rig_id] = session.mode.value
        rigs: Counter[str] = Counter()
        for rig in self.leases.rigs():
            rigs[modes.get(rig["rig_id"], "offline") if rig["connected"] else "offline"] += 1
        current = pool.registry.current
        healthy = getattr(pool.source, "healthy", True)  # the embedded chain is always there
        self._queues.update(str(lease["queue"]) for lease in self.leases.list_leases())
        queues: dict[str, dict[str, int]] = {}
        for name in sorted(self._queues):
            try:
                stats = await self.queue.stats(name)
            except QueueError:
                continue
            queues[name] = {"ready": stats.ready, "in_flight": stats.in_flight, "dead": stats.dead}
        return {
            "workers": pool.stats.snapshot(pool.history.clock())["workers"],
            "node": {
                "source": pool.source.name,
                "up": bool(healthy),
                "last_template_age_s": None if current is None else trio.current_time() - current.created,
            },
            "height": None if current is None else current.template.height,
            "network_difficulty": None if current is None else target_to_difficulty(current.network_target),
            "queues": queues,
            "share_log_sync": pool.share_log.sync_latency.as_dict(),
            "connections": [{"state": s, "transport": t, "count": n} for (s, t), n in sorted(connections.items())],
            "rigs_by_mode": dict(rigs),
        }
