"""MiningSession with no I/O: lines in, lines out, time passed in; the real work port over a real
job registry (shares judged by the real validator and native hash), and a recorder for the share,
block and stats ports."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from stratumkit.agent.work import MinerJob
from stratumkit.chain.address import Network
from stratumkit.chain.targets import difficulty_to_target, target_to_difficulty
from stratumkit.jobs.extranonce import ExtranonceAllocator
from stratumkit.jobs.registry import JobRegistry
from stratumkit.jobs.sources import EmbeddedTemplateSource
from stratumkit.jobs.work import PoolWork
from stratumkit.session.mining import MiningSession, SessionConfig, SessionPorts
from stratumkit.session.ports import RigMode
from stratumkit.shares.vardiff import VardiffConfig
from tests.support.sessions import Recorder, lines
from tests.support.shares import make_share

WALL = 1_900_000_000.0
DIFFICULTY = 1e-6


def send(session: MiningSession, *messages: dict[str, Any], now: float = 0.0) -> list[dict[str, Any]]:
    data = b"".join(json.dumps(m).encode() + b"\n" for m in messages)
    session.receive_data(data, now, WALL)
    return lines(session)


@pytest.fixture
def parts() -> tuple[PoolWork, Recorder]:
    registry = JobRegistry(payout_script=b"\x51", extranonce1_size=4, extranonce2_size=4)
    source = EmbeddedTemplateSource(difficulty=1e-3, clock=lambda: WALL)
    registry.new_job(source.template(), 0.0, ntime=int(WALL))
    return PoolWork(registry, ExtranonceAllocator(), Network.REGTEST), Recorder()


def make_session(parts: tuple[PoolWork, Recorder], **config: Any) -> MiningSession:
    work, recorder = parts
    values: dict[str, Any] = dict(
        start_difficulty=DIFFICULTY,
        vardiff=VardiffConfig(minimum=1e-9, maximum=DIFFICULTY, retarget_time=5.0, target_interval=1.0),
    )
    ports = SessionPorts(work=work, shares=recorder, blocks=recorder, stats=recorder, extension_methods=frozenset())
    return MiningSession(SessionConfig(**(values | config)), ports, 0.0, "127.0.0.1:1")


def handshake(session: MiningSession) -> list[dict[str, Any]]:
    return send(
        session,
        {"id": 1, "method": "mining.subscribe", "params": ["test/1.0"]},
        {"id": 2, "method": "mining.authorize", "params": ["w.1", "x"]},
    )


def miner_job(out: list[dict[str, Any]], work: PoolWork) -> MinerJob:
    """The job the miner was just sent, as a miner would hold it."""
    [notify] = [m for m in out if m.get("method") == "mining.notify"]
    assert work.current is not None and notify["params"][0] == work.current.job_id
    return MinerJob.from_notify(work.current.notify_clean, DIFFICULTY)


def test_handshake_sends_difficulty_then_a_clean_job(parts: tuple[PoolWork, Recorder]) -> None:
    session = make_session(parts)
    out = handshake(session)
    assert [m.get("id") for m in out[:2]] == [1, 2]
    assert out[2] == {"id": None, "method": "mining.set_difficulty", "params": [DIFFICULTY]}
    assert out[3]["method"] == "mining.notify" and out[3]["params"][-1] is True
    assert session.working and session.worker == "w.1"
    assert parts[1].started == ["w.1"]  # the worker's hashrate is timed from its authorize


def test_an_accepted_share_goes_to_the_log_batch_before_its_reply_is_taken(parts: tuple[PoolWork, Recorder]) -> None:
    _, recorder = parts
    session = make_session(parts)
    job = miner_job(handshake(session), parts[0])
    share = make_share(job, session.extranonce1, b"\0\0\0\1", target=difficulty_to_target(DIFFICULTY))
    out = send(session, {"id": 4, "method": "mining.submit", "params": share.params("w.1")}, now=1.0)
    assert out == [{"id": 4, "result": True, "error": None}]
    assert session.take_batch() is recorder.batch and session.take_batch() is None
    [record] = recorder.shares
    assert record.hash == share.hash and record.difficulty == DIFFICULTY and record.time == WALL


def test_a_low_share_is_rejected_23_and_nothing_is_logged(parts: tuple[PoolWork, Recorder]) -> None:
    _, recorder = parts
    session = make_session(parts)
    job = miner_job(handshake(session), parts[0])
    share = make_share(job, session.extranonce1, b"\0\0\0\2", target=difficulty_to_target(DIFFICULTY), low=True)
    [reply] = send(session, {"id": 5, "method": "mining.submit", "params": share.params("w.1")})
    assert reply["error"][0] == 23
    assert not recorder.shares and recorder.rejected == ["low_difficulty"]
    assert session.take_batch() is None


def test_a_block_share_reaches_the_block_port_even_when_rejected_as_duplicate(
    parts: tuple[PoolWork, Recorder],
) -> None:
    _, recorder = parts
    session = make_session(parts)
    job = miner_job(handshake(session), parts[0])
    share = make_share(job, session.extranonce1, b"\0\0\0\3", target=job.network_target)
    submit = {"id": 6, "method": "mining.submit", "params": share.params("w.1")}
    assert send(session, submit)[0]["result"] is True
    assert send(session, submit)[0]["error"][0] == 22
    assert recorder.blocks == [(share.hash[::-1].hex(), "w.1")]  # flagged once, the first time


@pytest.mark.parametrize("mode", [RigMode.DIVERTED, RigMode.CURTAILED])
def test_a_rig_not_mining_gets_no_work_and_mining_starts_over_clean(
    parts: tuple[PoolWork, Recorder], mode: RigMode
) -> None:
    work, _ = parts
    session = make_session(parts)
    handshake(session)
    session.set_mode(mode, 1.0)
    assert session.mode is mode
    assert work.current is not None
    session.send_job(work.current, True, 2.0)
    assert session.data_to_send() == b""
    session.set_mode(RigMode.MINING, 3.0, difficulty=1e-12)  # floored at the configured minimum
    out = lines(session)
    assert out[0] == {"id": None, "method": "mining.set_difficulty", "params": [1e-9]}
    assert out[1]["method"] == "mining.notify" and out[1]["params"][-1] is True


def test_a_curtailed_miners_shares_are_refused_uncredited_and_it_is_kept_while_silent(
    parts: tuple[PoolWork, Recorder],
) -> None:
    work, recorder = parts
    session = make_session(parts, idle_timeout=60.0, max_invalid=2)
    job = miner_job(handshake(session), work)
    before = session.difficulty
    session.set_mode(RigMode.CURTAILED, 1.0)
    for n in range(5):  # more than max_invalid: refusals for curtailment do not count against it
        share = make_share(job, session.extranonce1, bytes([0, 0, 1, n]), target=difficulty_to_target(DIFFICULTY))
        [reply] = send(session, {"id": 10 + n, "method": "mining.submit", "params": share.params("w.1")}, now=2.0)
        assert reply["error"][0] == 21 and "curtailed" in reply["error"][1]
    assert not recorder.shares and recorder.rejected == ["curtailed"] * 5 and session.closing is False
    block = make_share(job, session.extranonce1, b"\0\0\2\0", target=job.network_target)
    send(session, {"id": 20, "method": "mining.submit", "params": block.params("w.1")}, now=2.0)
    assert recorder.blocks == [(block.hash[::-1].hex(), "w.1")]  # a solution is never thrown away
    for t in range(3, 1000, 5):  # silent for far longer than the idle timeout, vardiff due many times
        session.on_timer(float(t))
    assert session.closing is False and session.difficulty == before and session.data_to_send() == b""
    session.set_mode(RigMode.MINING, 1000.0)
    out = lines(session)
    assert out[0] == {"id": None, "method": "mining.set_difficulty", "params": [before]}
    assert out[1]["method"] == "mining.notify" and out[1]["params"][-1] is True
    session.on_timer(1001.0)
    assert session.closing is False  # the idle timeout counts from the return


def test_extension_requests_are_returned_in_order_unanswered(parts: tuple[PoolWork, Recorder]) -> None:
    work, recorder = parts
    methods = frozenset({"x.a", "x.b"})
    ports = SessionPorts(work=work, shares=recorder, blocks=recorder, stats=recorder, extension_methods=methods)
    session = MiningSession(SessionConfig(), ports, 0.0)
    data = b'{"id":1,"method":"x.a","params":[]}\n{"id":2,"method":"x.b","params":[1]}\n'
    requests = session.receive_data(data, 0.0, WALL)
    assert [(r.id, r.method) for r in requests] == [(1, "x.a"), (2, "x.b")]
    assert session.data_to_send() == b""
    session.respond(2, True)
    session.respond_error(1, "no")
    assert [m["id"] for m in lines(session)] == [2, 1]


def test_timers_drop_a_slow_handshake_and_a_silent_miner(parts: tuple[PoolWork, Recorder]) -> None:
    slow = make_session(parts, handshake_timeout=5.0)
    slow.on_timer(4.9)
    assert not slow.closing
    slow.on_timer(5.0)
    assert slow.drop_reason == "handshake timeout"
    silent = make_session(parts, idle_timeout=30.0)
    handshake(silent)
    silent.on_timer(29.0)
    assert not silent.closing
    silent.on_timer(30.0)
    assert silent.drop_reason == "idle timeout"


def test_a_flood_of_bad_lines_drops_after_each_was_answered(parts: tuple[PoolWork, Recorder]) -> None:
    session = make_session(parts, max_invalid=3)
    session.receive_data(b"nope\n" * 2, 0.0, WALL)
    assert not session.closing
    session.receive_data(b"nope\n" * 3, 1.0, WALL)
    assert [m["error"][0] for m in lines(session)] == [20] * 5
    assert session.drop_reason == "3 invalid messages among the last 3"


def test_garbage_after_a_share_still_judges_the_share(parts: tuple[PoolWork, Recorder]) -> None:
    _, recorder = parts
    session = make_session(parts)
    job = miner_job(handshake(session), parts[0])
    share = make_share(job, session.extranonce1, b"\0\0\0\4", target=difficulty_to_target(DIFFICULTY))
    line = json.dumps({"id": 7, "method": "mining.submit", "params": share.params("w.1")}).encode()
    session.receive_data(line + b"\n" + b"\xff" * 20000, 1.0, WALL)
    assert len(recorder.shares) == 1
    assert session.drop_reason is not None and session.drop_reason.startswith("protocol error")


def test_the_share_difficulty_never_exceeds_the_jobs_network_difficulty(parts: tuple[PoolWork, Recorder]) -> None:
    """A miner sends only hashes meeting its share target: above the network's, blocks are lost."""
    work, recorder = parts
    assert work.current is not None
    network = target_to_difficulty(work.current.network_target)  # 1e-3 on this chain
    session = make_session(parts, start_difficulty=1.0, vardiff=VardiffConfig(minimum=1e-9, maximum=8.0))
    out = handshake(session)
    [sent] = [m["params"][0] for m in out if m.get("method") == "mining.set_difficulty"]
    assert sent < network and sent == work.current.max_difficulty
    assert difficulty_to_target(sent) >= work.current.network_target
    job = MinerJob.from_notify(work.current.notify_clean, sent)
    block = make_share(job, session.extranonce1, b"\0\0\1\0", target=job.network_target)
    assert send(session, {"id": 9, "method": "mining.submit", "params": block.params("w.1")})[0]["result"] is True
    assert len(recorder.blocks) == 1
    send(session, {"id": 10, "method": "mining.suggest_difficulty", "params": [5.0]})
    assert session.job_difficulty(work.current.job_id) == sent  # still capped


def test_a_difficulty_change_comes_with_a_new_job_id_and_each_id_keeps_its_difficulty(
    parts: tuple[PoolWork, Recorder],
) -> None:
    work, recorder = parts
    session = make_session(parts, vardiff=VardiffConfig(minimum=1e-9, maximum=1e-3))
    job = miner_job(handshake(session), work)
    out = send(session, {"id": 3, "method": "mining.suggest_difficulty", "params": [4 * DIFFICULTY]})
    assert out[1] == {"id": None, "method": "mining.set_difficulty", "params": [4 * DIFFICULTY]}
    new_id = out[2]["params"][0]
    assert out[2]["method"] == "mining.notify" and new_id != job.job_id and out[2]["params"][-1] is False
    assert session.job_difficulty(job.job_id) == DIFFICULTY and session.job_difficulty(new_id) == 4 * DIFFICULTY

    target = difficulty_to_target(DIFFICULTY)
    old = make_share(job, session.extranonce1, b"\0\0\2\0", target=target, above=difficulty_to_target(4 * DIFFICULTY))
    assert send(session, {"id": 4, "method": "mining.submit", "params": old.params("w.1")})[0]["result"] is True
    renamed = MinerJob.from_notify(dataclasses.replace(work.current.notify_clean, job_id=new_id), 4 * DIFFICULTY)  # type: ignore[union-attr]
    new = make_share(renamed, session.extranonce1, b"\0\0\2\1", target=difficulty_to_target(4 * DIFFICULTY))
    assert send(session, {"id": 5, "method": "mining.submit", "params": new.params("w.1")})[0]["result"] is True
    assert [r.difficulty for r in recorder.shares] == [DIFFICULTY, 4 * DIFFICULTY]
    again = dataclasses.replace(old, job_id=new_id)  # the same work under the other id
    assert send(session, {"id": 6, "method": "mining.submit", "params": again.params("w.1")})[0]["error"][0] == 22


def test_bfgminers_suggest_target_before_subscribing_is_applied_and_not_answered(
    parts: tuple[PoolWork, Recorder],
) -> None:
    """bfgminer --request-diff sends it as a notification before mining.subscribe."""
    session = make_session(parts, vardiff=VardiffConfig(minimum=1e-9, maximum=1e-3))
    target = difficulty_to_target(4e-4)
    line = {"id": None, "method": "mining.suggest_target", "params": [f"{target:064x}"]}
    assert send(session, line) == []  # a notification: never answered
    out = handshake(session)
    assert [m["id"] for m in out[:2]] == [1, 2]  # the first line the miner reads answers its subscribe
    [sent] = [m["params"][0] for m in out if m.get("method") == "mining.set_difficulty"]
    assert sent == pytest.approx(4e-4, rel=1e-5)


def test_the_miner_is_asked_its_version_once_after_its_first_work(parts: tuple[PoolWork, Recorder]) -> None:
    session = make_session(parts)
    out = handshake(session)
    [ask] = [m for m in out if m.get("method") == "client.get_version"]
    assert out.index(ask) == len(out) - 1  # after the difficulty and the first job
    send(session, {"id": ask["id"], "result": "cgminer/4.12.1", "error": None})
    assert session.miner_version == "cgminer/4.12.1"
    session.set_mode(RigMode.MINING, 1.0)  # work starts over: no second question
    assert all(m.get("method") != "client.get_version" for m in lines(session))
