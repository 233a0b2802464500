"""The relay core with no I/O: local miners (the protocol's client role) behind one upstream session."""

from __future__ import annotations

from stratumkit.agent.relay import Relay
from stratumkit.agent.work import MinerJob
from stratumkit.chain.targets import difficulty_to_target
from stratumkit.protocol.client import ClientConnection
from stratumkit.protocol.events import (
    Event,
    Notify,
    Reconnect,
    SetDifficulty,
    SetExtranonce,
    SubmitResult,
    SubscribeResult,
)
from tests.support.shares import make_share

NOTIFY = Notify(
    "j1", "00" * 32, "01000000" + "00" * 40, "ffffffff" + "00" * 8, (), "20000000", "207fffff", "65000000", True
)


class LocalMiner:
    """One miner on the relay: the client role, fed and drained by hand."""

    def __init__(self, relay: Relay, *, extranonce_subscribe: bool = False) -> None:
        self.relay = relay
        mid = relay.add_miner()
        assert mid is not None
        self.mid = mid
        self.conn = ClientConnection()
        self.events: list[Event] = []
        self.conn.subscribe("test-miner/1")
        self.conn.authorize("anyone", "x")
        if extranonce_subscribe:
            self.conn.extranonce_subscribe()
        self.pump()

    def pump(self, now: float = 0.0) -> list[Event]:
        """Both ways, once (b"" would mean end of stream, so nothing is fed when nothing was sent)."""
        if data := self.conn.data_to_send():
            self.relay.miner_data(self.mid, data, now)
        new = self.conn.receive_data(data) if (data := self.relay.data_for(self.mid)) else []
        self.events.extend(new)
        return new

    def job(self) -> MinerJob:
        notifies = [e for e in self.events if isinstance(e, Notify)]
        difficulty = [e for e in self.events if isinstance(e, SetDifficulty)][-1].difficulty
        return MinerJob.from_notify(notifies[-1], difficulty)

    def share(self, job: MinerJob, n: int = 1, *, low: bool = False) -> list[str]:
        assert self.conn.extranonce1 is not None and self.conn.extranonce2_size is not None
        en2 = n.to_bytes(self.conn.extranonce2_size, "big")
        share = make_share(job, bytes.fromhex(self.conn.extranonce1), en2, target=job.share_target, low=low)
        return [share.extranonce2, share.ntime, share.nonce]

    def submit(self, job_id: str, fields: list[str]) -> int:
        return self.conn.submit("anyone", job_id, *fields)


def upstream(relay: Relay, extranonce1: str = "aabbccdd", size: int = 4) -> None:
    relay.upstream_subscribed(extranonce1, size)
    relay.upstream_event(SetDifficulty(0.0001), 0)
    relay.upstream_event(NOTIFY, 0)


def test_a_subscribe_waits_for_the_upstream_then_gets_a_split_extranonce_and_the_job() -> None:
    relay = Relay(("127.0.0.1", 4000))
    miner = LocalMiner(relay)
    assert not any(isinstance(e, SubscribeResult) for e in miner.events)  # no pool session yet
    upstream(relay)
    new = miner.pump()
    sub = next(e for e in new if isinstance(e, SubscribeResult))
    assert (sub.extranonce1, sub.extranonce2_size) == ("aabbccdd00", 3)
    assert [e.job_id for e in new if isinstance(e, Notify)] == ["j1"]
    second = LocalMiner(relay)
    assert second.conn.extranonce1 == "aabbccdd01"


def test_a_good_share_goes_up_with_the_slot_byte_and_the_answer_comes_back() -> None:
    relay = Relay()
    upstream(relay)
    LocalMiner(relay)  # slot 0
    miner = LocalMiner(relay)  # slot 1
    job = miner.job()
    fields = miner.share(job)
    request = miner.submit("j1", fields)
    miner.pump(1.0)
    share = relay.upstream.popleft()
    assert (share.job_id, share.extranonce2, share.ntime, share.nonce) == ("j1", "01" + fields[0], *fields[1:])
    relay.sent(share.token, 77)
    relay.upstream_event(SubmitResult(77, True), 2.0)
    answer = [e for e in miner.pump(2.0) if isinstance(e, SubmitResult)]
    assert answer == [SubmitResult(request, True)]
    assert relay.accepted == 1 and relay.observed_hashrate(2.0) == 0.0001 * 2**32 / 60


def test_shares_are_checked_against_the_local_job_map_before_they_use_the_pool() -> None:
    relay = Relay()
    upstream(relay)
    miner = LocalMiner(relay)
    job = miner.job()
    good = miner.share(job, 1)
    cases = {
        "stale": (miner.submit("nope", good), 21),
        "low": (miner.submit("j1", miner.share(job, 2, low=True)), 23),
        "first": (miner.submit("j1", good), None),
        "duplicate": (miner.submit("j1", good), 22),
    }
    answers = {e.id: e for e in miner.pump() if isinstance(e, SubmitResult)}
    for name, (request, code) in cases.items():
        if code is None:
            assert request not in answers, name  # went up: the pool answers it
        else:
            assert answers[request].code == code, name
    assert len(relay.upstream) == 1 and relay.refused == 3
    assert difficulty_to_target(0.0001) == job.share_target


def test_a_new_upstream_extranonce_is_sent_to_subscribers_and_others_are_told_to_reconnect() -> None:
    relay = Relay(("127.0.0.1", 4000))
    upstream(relay)
    subscriber = LocalMiner(relay, extranonce_subscribe=True)
    plain = LocalMiner(relay)
    relay.upstream_event(SetExtranonce("11223344", 4), 0)
    assert [e for e in subscriber.pump() if isinstance(e, SetExtranonce)] == [SetExtranonce("1122334400", 3)]
    assert [e for e in plain.pump() if isinstance(e, Reconnect)] == [Reconnect("127.0.0.1", 4000, 0)]
    assert relay.should_close(plain.mid) and not relay.should_close(subscriber.mid)
    # the old jobs are void: a share of one is refused here
    stale = subscriber.submit("j1", subscriber.share(subscriber.job()))
    assert [e.code for e in subscriber.pump() if isinstance(e, SubmitResult) and e.id == stale] == [21]


def test_a_lost_pool_answers_the_shares_in_flight_and_withholding_idles_the_miners() -> None:
    relay = Relay()
    upstream(relay)
    miner = LocalMiner(relay)
    request = miner.submit("j1", miner.share(miner.job()))
    miner.pump()
    relay.sent(relay.upstream.popleft().token, 5)
    relay.upstream_lost()
    answers = [e for e in miner.pump() if isinstance(e, SubmitResult)]
    assert [(e.id, e.code) for e in answers] == [(request, 20)]
    upstream(relay)
    relay.withhold()
    assert relay.should_close(miner.mid)
    relay.remove_miner(miner.mid)
    comeback = LocalMiner(relay)
    assert comeback.conn.extranonce1 is None  # held: no work while withheld
    relay.release()
    comeback.pump()
    assert comeback.conn.extranonce1 == "aabbccdd00" and comeback.job().job_id == "j1"
