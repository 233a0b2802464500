"""Real miners' lines against the server, and the server's answers against the checks those
miners apply to them (see vectors.py for where every line comes from)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stratumkit.chain.targets import difficulty_to_target, target_to_difficulty
from stratumkit.hashing import hash_to_int
from stratumkit.protocol import (
    Authorize,
    Configure,
    Event,
    ExtranonceSubscribe,
    ProtocolViolation,
    Response,
    ServerConnection,
    ServerState,
    Submit,
    Subscribe,
    SuggestDifficulty,
    SuggestTarget,
)
from stratumkit.server.config import PoolConfig
from stratumkit.server.pool import session_config
from stratumkit.session.mining import MiningSession, SessionPorts
from tests.support.sessions import Recorder, first_job_work, lines, replay

from . import vectors as v
from .helpers import CKPOOL_JOB, FEEDERS

CPU_USER = "tb1qworker.cpu0"
ASIC_USER = "tb1qworker.asic"
BITAXE_USER = "bc1qexampleaddress.bitaxe"
DIFF1_TARGET = 0xFFFF << 208

# Each miner line and the event it must produce.
LINES: list[tuple[v.MinerLine, Event]] = [
    (v.CPUMINER_SUBSCRIBE, Subscribe(1, "cpuminer/2.5.1", None)),
    (
        v.CPUMINER_SUBSCRIBE_RESUME,
        Subscribe(1, "cpuminer/2.5.1", "ae6812eb4cd7735a302a8a9dd95cf71f"),
    ),
    (v.CPUMINER_SUBSCRIBE_RETRY, Subscribe(1, "", None)),
    (v.CPUMINER_AUTHORIZE, Authorize(2, CPU_USER, "x")),
    (v.CPUMINER_SUBMIT, Submit(4, CPU_USER, "bf", "00000001", "504e86ed", "b2957c02")),
    (v.CPUMINER_OPT_EXTRANONCE_SUBSCRIBE, ExtranonceSubscribe(3)),
    (v.CGMINER_CONFIGURE, Configure(0, ("version-rolling",), {"version-rolling.mask": "ffffffff"})),
    (v.CGMINER_SUBSCRIBE, Subscribe(1, "cgminer/4.11.1", None)),
    (v.CGMINER_AUTHORIZE, Authorize(2, ASIC_USER, "pass")),
    (v.CGMINER_SUGGEST_DIFFICULTY, SuggestDifficulty(3, 512)),
    (
        v.CGMINER_SUBMIT,
        Submit(5, ASIC_USER, "6920bab400003e78", "0000000000000001", "6927b489", "1d2c3b4a"),
    ),
    (
        v.CGMINER_SUBMIT_VMASK,
        Submit(6, ASIC_USER, "6920bab400003e78", "0000000000000002", "6927b489", "1d2c3b4a", "00006000"),
    ),
    (v.BITAXE_CONFIGURE, Configure(1, ("version-rolling",), {"version-rolling.mask": "ffffffff"})),
    (v.BITAXE_SUBSCRIBE, Subscribe(2, "bitaxe/BM1370/v2.4.0", None)),
    (v.BITAXE_SUGGEST_DIFFICULTY, SuggestDifficulty(3, 1000)),
    (v.BITAXE_EXTRANONCE_SUBSCRIBE, ExtranonceSubscribe(4)),
    (v.BITAXE_AUTHORIZE, Authorize(5, BITAXE_USER, "x")),
    (
        v.BITAXE_SUBMIT,
        Submit(6, BITAXE_USER, "6920bab400003e78", "00000000", "6927b489", "a3c0ffee", "1fffe000"),
    ),
    (v.BFGMINER_SUGGEST_TARGET, SuggestTarget(None, DIFF1_TARGET)),
    (v.BFGMINER_SUBSCRIBE, Subscribe(1, "bfgminer/5.5.0", None)),
    (v.BFGMINER_EXTRANONCE_SUBSCRIBE, ExtranonceSubscribe("xnsub")),
    (v.NICEHASH_EXTRANONCE_SUBSCRIBE, ExtranonceSubscribe(3)),
    (
        v.BIP310_CONFIGURE,
        Configure(
            1,
            ("minimum-difficulty", "version-rolling"),
            {
                "minimum-difficulty.value": 2048,
                "version-rolling.mask": "1fffe000",
                "version-rolling.min-bit-count": 2,
            },
        ),
    ),
]


def authorized_server() -> ServerConnection:
    server = ServerConnection()
    server.receive_data(b'{"id": "s", "method": "mining.subscribe", "params": []}\n')
    server.respond_subscribe("s", "08000002", 4)
    for user in (CPU_USER, ASIC_USER, BITAXE_USER):
        server.receive_data(json.dumps({"id": user, "method": "mining.authorize", "params": [user]}).encode() + b"\n")
        server.respond(user, True)
    server.data_to_send()
    return server


@pytest.mark.parametrize(("vector", "expected"), LINES, ids=[vector.source for vector, _ in LINES])
@pytest.mark.parametrize("feeder", list(FEEDERS), ids=list(FEEDERS))
@pytest.mark.parametrize("trailing", [b"", b'{"id": 9, "method": "mining.subscri'], ids=["end", "tail"])
def test_miner_line(vector: v.MinerLine, expected: Event, feeder: str, trailing: bytes) -> None:
    server = authorized_server()
    events = FEEDERS[feeder](server.receive_data, vector.line + trailing)
    assert events == [expected]
    assert server.data_to_send() == b""  # nothing is refused: the application answers
    if trailing:
        [rest] = server.receive_data(b'be", "params": []}\n')
        assert rest == Subscribe(9, "", None)


def replies(server: ServerConnection) -> list[dict[str, Any]]:
    return [json.loads(text) for text in server.data_to_send().decode("ascii").splitlines()]


def check_subscribe_result(result: Any, low: int, high: int) -> None:
    """What cpuminer / cgminer / ESP-Miner read from the subscribe result."""
    subscriptions, extranonce1, size = result
    # get_stratum_session_id / get_sessionid: a list of [method, id] lists, one "mining.notify".
    assert any(pair[0] == "mining.notify" and isinstance(pair[1], str) for pair in subscriptions)
    bytes.fromhex(extranonce1)  # valid_hex / hex2bin
    assert isinstance(size, int) and low <= size <= high


def test_cpuminer_session() -> None:
    server = ServerConnection()
    subscribe, authorize = server.receive_data(v.CPUMINER_SUBSCRIBE.line + v.CPUMINER_AUTHORIZE.line)
    server.respond_subscribe(subscribe.id, "08000002", 4)  # type: ignore[attr-defined]
    server.respond(authorize.id, True)  # type: ignore[attr-defined]
    server.send_set_difficulty(0.001)
    server.send_notify(CKPOOL_JOB)
    sub_reply, auth_reply, difficulty, notify = replies(server)
    # cpuminer stratum_subscribe: result non-null, error null, 1 <= extranonce2_size <= 100.
    assert sub_reply["id"] == 1 and sub_reply["error"] is None
    check_subscribe_result(sub_reply["result"], 1, 100)
    # stratum_authorize: result not false, error null.
    assert auth_reply == {"id": 2, "result": True, "error": None}
    # stratum_set_difficulty: json_number_value(params[0]) != 0.
    assert difficulty["params"] == [0.001]
    # stratum_notify: 9 params, prevhash 64, version/nbits/ntime 8 hex digits, bool at [8].
    params = notify["params"]
    assert len(params) == 9 and len(params[1]) == 64 and all(len(params[i]) == 8 for i in (5, 6, 7))
    assert params[8] is True
    # Every share is id 4 in cpuminer; each gets its own reply, in order.
    first, second = server.receive_data(v.CPUMINER_SUBMIT.line * 2)
    assert first == second and isinstance(first, Submit)
    server.respond(4, True)
    server.respond_error(4, 22)
    assert replies(server) == [
        {"id": 4, "result": True, "error": None},
        {"id": 4, "result": None, "error": [22, "Duplicate share", None]},
    ]
    # client.get_version: cpuminer answers with its user agent.
    request = server.send_get_version()
    assert request == 1
    server.data_to_send()
    assert server.receive_data(v.CPUMINER_GET_VERSION_REPLY.line) == [
        Response(1, "client.get_version", "cpuminer/2.5.1")
    ]


def test_cgminer_session_with_version_rolling() -> None:
    server = ServerConnection()
    [configure] = server.receive_data(v.CGMINER_CONFIGURE.line)
    assert isinstance(configure, Configure) and configure.version_rolling_mask == 0xFFFFFFFF
    server.respond_configure(configure.id, version_rolling_mask=0x1FFFE000)
    [reply] = replies(server)
    # configure_stratum_mining: "version-rolling" true and a nonzero hex "version-rolling.mask".
    assert reply["result"]["version-rolling"] is True
    assert int(reply["result"]["version-rolling.mask"], 16) == 0x1FFFE000
    subscribe, authorize, suggest = server.receive_data(
        v.CGMINER_SUBSCRIBE.line + v.CGMINER_AUTHORIZE.line + v.CGMINER_SUGGEST_DIFFICULTY.line
    )
    server.respond_subscribe(subscribe.id, "08000002", 8)  # type: ignore[attr-defined]
    server.respond(authorize.id, True)  # type: ignore[attr-defined]
    server.respond(suggest.id, True)  # type: ignore[attr-defined]
    sub_reply, auth_reply, suggest_reply = replies(server)
    assert suggest_reply == {"id": 3, "result": True, "error": None}
    # initiate_stratum: 2 <= n2size <= 16.
    check_subscribe_result(sub_reply["result"], 2, 16)
    assert auth_reply["result"] is True and auth_reply["error"] is None
    assert server.state is ServerState.AUTHORIZED
    plain, rolled = server.receive_data(v.CGMINER_SUBMIT.line + v.CGMINER_SUBMIT_VMASK.line)
    assert isinstance(plain, Submit) and plain.version_bits is None
    assert isinstance(rolled, Submit) and rolled.version_bits == "00006000"
    # cgminer checks version bits against its mask; the pool's mask allows these ones.
    assert int(rolled.version_bits, 16) & ~server.version_rolling_mask == 0  # type: ignore[operator]
    # cgminer answers pings and version requests with integer ids.
    request = server.send_get_version()
    server.data_to_send()
    assert server.receive_data(v.CGMINER_GET_VERSION_REPLY.line.replace(b'"id": 1', b'"id": %d' % request)) == [
        Response(request, "client.get_version", "cgminer/4.11.1")
    ]


def test_bitaxe_session() -> None:
    server = ServerConnection()
    handshake = (
        v.BITAXE_CONFIGURE.line
        + v.BITAXE_SUBSCRIBE.line
        + v.BITAXE_SUGGEST_DIFFICULTY.line
        + v.BITAXE_EXTRANONCE_SUBSCRIBE.line
        + v.BITAXE_AUTHORIZE.line
    )
    configure, subscribe, suggest, extranonce, authorize = server.receive_data(handshake)
    server.respond_configure(configure.id, version_rolling_mask=0x1FFFE000)  # type: ignore[attr-defined]
    server.respond_subscribe(subscribe.id, "e4a0c2b1", 4)  # type: ignore[attr-defined]
    server.respond(suggest.id, True)  # type: ignore[attr-defined]
    server.respond(extranonce.id, True)  # type: ignore[attr-defined]
    server.respond(authorize.id, True)  # type: ignore[attr-defined]
    server.send_set_difficulty(1000)
    server.send_notify(CKPOOL_JOB)
    answers = replies(server)
    # STRATUM_V1_parse: the configure answer is keyed "version-rolling.mask" (strtoul, hex).
    assert int(answers[0]["result"]["version-rolling.mask"], 16) == 0x1FFFE000
    # The subscribe answer is read by id: result[1] extranonce (string), result[2] size (int).
    check_subscribe_result(answers[1]["result"], 1, 32)
    # Boolean results with a null error are "success".
    assert [answer["result"] for answer in answers[2:5]] == [True, True, True]
    assert all(answer["error"] is None for answer in answers[:5])
    # set_difficulty is read with cJSON valueint: an integer keeps it exact.
    assert answers[5] == {"id": None, "method": "mining.set_difficulty", "params": [1000]}
    assert answers[6]["method"] == "mining.notify"
    server.send_set_extranonce("e4a0c2b2", 4)  # it subscribed, so this is allowed
    server.send_set_version_mask(0x00006000)
    mask = replies(server)[-1]
    assert mask["params"] == ["00006000"]  # read with strtoul(params[0], 16)
    [share] = server.receive_data(v.BITAXE_SUBMIT.line)
    assert isinstance(share, Submit) and share.version_bits == "1fffe000"
    server.respond(share.id, True)
    # A rejection carries its reason at error[1], where the firmware looks for it.
    server.receive_data(v.BITAXE_SUBMIT.line)
    server.respond_error(6, 23)
    accepted, rejected = replies(server)
    assert accepted == {"id": 6, "result": True, "error": None}
    assert rejected["error"][1] == "Low difficulty share"


def test_bfgminer_session_notifications_get_no_reply() -> None:
    """bfgminer sends its notifications first and reads the next line as the subscribe answer."""
    server = ServerConnection()
    events = server.receive_data(
        v.BFGMINER_SUGGEST_TARGET.line + v.BFGMINER_CAPABILITIES.line + v.BFGMINER_SUBSCRIBE.line
    )
    suggest, capabilities, subscribe = events
    assert suggest == SuggestTarget(None, DIFF1_TARGET)
    assert isinstance(capabilities, ProtocolViolation) and "mining.capabilities" in capabilities.message
    assert isinstance(subscribe, Subscribe)
    assert server.data_to_send() == b""  # neither notification was answered
    assert server.awaiting_reply == 1  # only the subscribe waits
    server.respond(suggest.id, True)  # answering every event alike sends nothing for a notification
    server.respond_subscribe(subscribe.id, "08000002", 4)
    [first] = replies(server)
    # initiate_stratum: the first line must carry a non-null result and a null error.
    assert first["id"] == 1 and first["error"] is None
    check_subscribe_result(first["result"], 1, 100)
    [xnsub] = server.receive_data(v.BFGMINER_EXTRANONCE_SUBSCRIBE.line)
    server.respond(xnsub.id, True)  # type: ignore[attr-defined]
    assert replies(server) == [{"id": "xnsub", "result": True, "error": None}]
    assert server.extranonce_subscribed


def test_nicehash_extranonce_subscription() -> None:
    server = authorized_server()
    [request] = server.receive_data(v.NICEHASH_EXTRANONCE_SUBSCRIBE.line)
    server.respond(request.id, True)  # type: ignore[attr-defined]
    server.send_set_extranonce("08000003", 4)
    assert replies(server) == [
        {"id": 3, "result": True, "error": None},
        json.loads(v.NICEHASH_SET_EXTRANONCE.replace(b"08000002", b"08000003")),
    ]


# --------------------------------------------------------------------------------------------
# Real miners' connections, captured on the wire, replayed through one session


@pytest.mark.parametrize("capture", v.CAPTURES, ids=[capture.miner for capture in v.CAPTURES])
def test_a_real_miners_connection_replays_to_the_pools_own_lines(capture: v.Capture) -> None:
    run = replay(capture)
    assert run.said == capture.pool_lines()
    # Every share the miner sent was accepted ...
    submits = [line for _, line in capture.miner_lines() if b'"mining.submit"' in line]
    assert len(run.recorder.shares) == len(submits) > 0 and not run.recorder.rejected
    # ... and credited at the difficulty the miner mined its job at, never above the network's.
    held = run.sent_difficulties()
    assert [share.difficulty for share in run.recorder.shares] == [held[share.job_id] for share in run.recorder.shares]
    assert all(
        difficulty <= run.job.max_difficulty < DIFF1_TARGET / run.job.network_target for difficulty in held.values()
    )


def test_cpuminer_is_asked_its_version_and_told_where_to_come_back() -> None:
    run = replay(v.CAPTURED_MINERD)
    assert run.session.miner_version == "cpuminer/2.5.1"
    run.session.say_goodbye("127.0.0.1", 45993, 2.0)
    assert run.session.data_to_send() == v.CAPTURED_RECONNECT
    # stratum_reconnect: params[0] a string, params[1] read with json_integer_value (0 for a
    # float: the request would be dropped); the wait is not read at all.
    host, port, wait = json.loads(v.CAPTURED_RECONNECT)["params"]
    assert isinstance(host, str) and type(port) is int and wait == 2.0
    # On its next connection it resumes with the session id it was given: answered as a subscribe.
    again = MiningSession(session_config(PoolConfig()), run.ports, 100.0)
    again.receive_data(v.CAPTURED_MINERD_RESUME, 100.0, v.CAPTURED_MINERD.ntime + 100)
    [reply] = lines(again)
    assert reply["id"] == 1 and reply["error"] is None
    check_subscribe_result(reply["result"], 1, 100)


def test_cpuminer_opt_gets_a_difficulty_change_as_new_work_and_loses_no_share_to_it() -> None:
    """cpuminer-opt restarts its nonce scan at 0 on a new job id (its shares under the new id have
    small nonces). Over the same header it would find the hashes it had sent again: before the
    reissue carried a new ntime, 2 of its first 14 shares were refused as duplicates."""
    run = replay(v.CAPTURED_CPUMINER_OPT)
    notifies = [m["params"] for m in run.messages() if m.get("method") == "mining.notify"]
    first, changed = notifies
    assert changed[0] != first[0] and changed[8] is False  # a new job id, the same block
    assert int(changed[7], 16) == int(first[7], 16) + 1  # and a new header: ntime + 1
    assert changed[1:7] == first[1:7]
    held = run.sent_difficulties()
    assert (held[first[0]], held[changed[0]]) == (0.001, 0.004)
    late = [share for share in run.recorder.shares if share.job_id == changed[0]]
    assert len(late) == 2
    assert all(share.difficulty == 0.004 and share.ntime == int(changed[7], 16) for share in late)
    # The scan started over: each nonce it found under the new id lies below the last one it
    # had reached under the old id (the nonce is little-endian hex on the wire).
    nonces: dict[str, list[int]] = {job_id: [] for job_id in held}
    for _, line in v.CAPTURED_CPUMINER_OPT.miner_lines():
        if b'"mining.submit"' in line:
            params = json.loads(line)["params"]
            nonces[params[1]].append(int.from_bytes(bytes.fromhex(params[4]), "little"))
    assert max(nonces[changed[0]]) < nonces[first[0]][-1]


def test_bfgminers_tls_probe_is_closed_without_counting_against_its_address() -> None:
    """bfgminer 5.5.0 opens every connection with a TLS ClientHello, then connects again in plain
    text: five rigs behind one address starting within a minute must not get it banned."""
    config = PoolConfig()
    recorder = Recorder()
    ports = SessionPorts(
        work=first_job_work(v.CAPTURED_BFGMINER, config), shares=recorder, blocks=recorder, stats=recorder
    )
    probe = MiningSession(session_config(config), ports, 0.0)
    probe.receive_data(v.CAPTURED_BFGMINER_TLS_PROBE, 0.0, v.CAPTURED_BFGMINER.ntime)
    assert probe.drop_reason is not None and "TLS" in probe.drop_reason
    assert not probe.misbehaved
    garbage = MiningSession(session_config(config), ports, 0.0)
    garbage.receive_data(b"\x00\x01\x02 not stratum\n", 0.0, v.CAPTURED_BFGMINER.ntime)
    assert garbage.drop_reason is not None and garbage.misbehaved  # bytes that break the protocol still count


def test_bfgminers_suggest_target_before_subscribing_is_honoured_without_an_answer() -> None:
    run = replay(v.CAPTURED_BFGMINER)
    suggest, subscribe = (json.loads(line) for _, line in v.CAPTURED_BFGMINER.miner_lines()[:2])
    assert suggest["id"] is None and suggest["method"] == "mining.suggest_target"
    # initiate_stratum reads the very next line as the subscribe answer: nothing for the null id.
    first = run.messages()[0]
    assert first["id"] == subscribe["id"] == 0 and first["error"] is None
    assert all(m.get("id") is not None for m in run.messages() if "result" in m or "error" in m)
    # The suggested target is the share target (0.00399994: bfgminer's own rounding of 0.004).
    wanted = target_to_difficulty(int(suggest["params"][0], 16))
    assert run.sent_difficulties()[v.CAPTURED_BFGMINER.job_id] == pytest.approx(wanted, rel=1e-5)
    assert wanted == pytest.approx(0.004, rel=1e-4)


def test_bfgminers_suggested_difficulty_above_the_network_is_capped_and_its_block_arrives() -> None:
    run = replay(v.CAPTURED_BFGMINER_DIFF1)
    [suggest] = [json.loads(line) for _, line in v.CAPTURED_BFGMINER_DIFF1.miner_lines()[:1]]
    assert target_to_difficulty(int(suggest["params"][0], 16)) == pytest.approx(1.0, rel=1e-4)
    sent = run.sent_difficulties()[v.CAPTURED_BFGMINER_DIFF1.job_id]
    assert sent == run.job.max_difficulty and difficulty_to_target(sent) >= run.job.network_target
    # Its one share solved block 1: a miner at difficulty 1 would never have sent it.
    [share] = run.recorder.shares
    assert difficulty_to_target(1.0) < hash_to_int(share.hash) <= run.job.network_target
    assert run.recorder.blocks == [(share.hash[::-1].hex(), "bcrt1qbfg.cpu0")]
