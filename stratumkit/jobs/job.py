"""A job: one template turned into the work every miner gets, plus what checking its shares needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from stratumkit.chain.coinbase import CoinbaseParts
from stratumkit.chain.targets import DIFF1_TARGET
from stratumkit.chain.template import BlockTemplate
from stratumkit.hashing import PreparedJob
from stratumkit.protocol.events import Notify


@dataclass(eq=False, slots=True)
class Job:
    job_id: str
    template: BlockTemplate
    coinbase: CoinbaseParts
    prepared: PreparedJob
    ntime: int
    created: float
    #: The notify line for a fresh block (clean_jobs true) and for an update of the same block.
    notify_clean: Notify
    notify_update: Notify
    #: Hashes of the shares seen for this job: duplicates are the same work, whatever its spelling.
    #: A job reissued under a new id (a difficulty change) shares its original's set.
    seen: set[bytes] = field(default_factory=set)
    #: The highest share difficulty this job may be sent at: a hair under the network's, so that
    #: every block solution also meets the miner's share target and is sent (a miner never sends
    #: a hash that misses its share target, whatever else it meets).
    max_difficulty: float = field(init=False)

    def __post_init__(self) -> None:
        self.max_difficulty = DIFF1_TARGET / self.template.network_target * (1 - 1e-9)

    @property
    def version(self) -> int:
        return self.template.version

    @property
    def prevhash(self) -> bytes:
        return self.template.prevhash

    @property
    def network_target(self) -> int:
        return self.template.network_target
