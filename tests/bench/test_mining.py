"""`stratumkit bench mining` end to end: a real `stratumkit serve` child and the bench's miner.

The figures themselves are the bench's to print; these tests hold what must be exact whatever
the machine's speed: every share is credited at the difficulty its job was sent with, and a miner
that follows client.reconnect is told to and mines again after a graceful restart.
"""

from __future__ import annotations

from stratumkit.bench import mining


async def test_credit_matches_the_miners_targets_per_job() -> None:
    figures = await mining.credit(6.0)
    assert figures["shares"] > 0
    assert figures["difficulties"] >= 2  # vardiff moved at least once while it ran
    assert figures["jobs_mismatched"] == 0
    assert figures["credited_sum"] == figures["miner_target_sum"]


async def test_a_miner_following_client_reconnect_mines_again_after_a_restart() -> None:
    figures = await mining.reconnect(1, 0.0)
    assert figures["told_to_reconnect"] == [1.0]
    assert len(figures["back_to_first_share_s"]) == 1
