"""Our client against our server, in memory: every message both ways."""

from __future__ import annotations

from stratumkit.protocol import (
    FULL_VERSION_MASK,
    Authorize,
    AuthorizeResult,
    BadRequest,
    ClientState,
    Configure,
    ConfigureResult,
    ErrorCode,
    ExtensionNotification,
    ExtensionRequest,
    ExtranonceSubscribe,
    GetVersion,
    Notify,
    Reconnect,
    Response,
    ServerState,
    SetDifficulty,
    SetExtranonce,
    SetVersionMask,
    ShowMessage,
    Submit,
    SubmitResult,
    Subscribe,
    SubscribeResult,
    SuggestDifficulty,
)

from .helpers import CKPOOL_JOB, EXTENSION, ConnectionPair


def test_full_mining_session_with_version_rolling() -> None:
    pair = ConnectionPair()
    client, server = pair.client, pair.server
    client.configure(version_rolling_mask=FULL_VERSION_MASK, version_rolling_min_bit_count=2)
    client.subscribe("stratumkit-agent/0.1")
    client.authorize("tb1qworker.rig1", "secret")
    client.suggest_difficulty(0.5)
    configure, subscribe, authorize, suggest = pair.to_server()
    assert isinstance(configure, Configure) and configure.version_rolling_min_bit_count == 2
    assert subscribe == Subscribe(2, "stratumkit-agent/0.1", None)
    assert authorize == Authorize(3, "tb1qworker.rig1", "secret")
    assert suggest == SuggestDifficulty(4, 0.5)

    server.respond_configure(configure.id, version_rolling_mask=0x1FFFE000)
    server.respond_subscribe(subscribe.id, "08000002", 4)
    server.respond(authorize.id, True)
    server.respond(suggest.id, True)
    server.send_set_difficulty(0.5)
    server.send_notify(CKPOOL_JOB)
    events = pair.to_client()
    assert [type(event) for event in events] == [
        ConfigureResult,
        SubscribeResult,
        AuthorizeResult,
        Response,
        SetDifficulty,
        Notify,
    ]
    assert events[5] == CKPOOL_JOB
    assert client.version_rolling_mask == server.version_rolling_mask == 0x1FFFE000
    assert (client.extranonce1, client.extranonce2_size) == ("08000002", 4)
    assert client.difficulty == 0.5
    assert client.state is ClientState.AUTHORIZED and server.state is ServerState.AUTHORIZED

    accepted = client.submit("tb1qworker.rig1", CKPOOL_JOB.job_id, "00000001", CKPOOL_JOB.ntime, "a3c0ffee", "00006000")
    stale = client.submit("tb1qworker.rig1", "gone", "00000002", CKPOOL_JOB.ntime, "a3c0ffef")
    share, old = pair.to_server()
    assert share == Submit(
        accepted,
        "tb1qworker.rig1",
        CKPOOL_JOB.job_id,
        "00000001",
        CKPOOL_JOB.ntime,
        "a3c0ffee",
        "00006000",
    )
    assert isinstance(old, Submit) and old.version_bits is None
    server.respond(share.id, True)
    server.respond_error(old.id, ErrorCode.JOB_NOT_FOUND)
    assert pair.to_client() == [
        SubmitResult(accepted, True),
        SubmitResult(stale, False, 21, "Job not found"),
    ]
    assert client.pending_requests == {} and server.awaiting_reply == 0


def test_protocol_refusals_reach_the_client_typed() -> None:
    pair = ConnectionPair()
    request = pair.client.send_request("mining.submit", ["w", "j", "00000000", "6927b489", "a3c0ffee"])
    [refusal] = pair.to_server()
    assert refusal == BadRequest(request, "mining.submit", ErrorCode.NOT_SUBSCRIBED, "Not subscribed")
    assert pair.to_client() == [SubmitResult(request, False, 25, "Not subscribed")]


def test_unauthorized_share_after_refused_login() -> None:
    pair = ConnectionPair()
    pair.client.subscribe("x")
    pair.client.authorize("intruder", "wrong")
    subscribe, authorize = pair.to_server()
    assert isinstance(subscribe, Subscribe) and isinstance(authorize, Authorize)
    pair.server.respond_subscribe(subscribe.id, "0a0b0c0d", 8)
    pair.server.respond(authorize.id, False)
    pair.to_client()
    assert pair.client.state is ClientState.SUBSCRIBED
    share = pair.client.submit("intruder", "j", "00" * 8, "6927b489", "a3c0ffee")
    [refusal] = pair.to_server()
    assert isinstance(refusal, BadRequest) and refusal.code is ErrorCode.UNAUTHORIZED
    assert pair.to_client() == [SubmitResult(share, False, 24, "Unauthorized worker")]


def test_extranonce_change() -> None:
    pair = ConnectionPair()
    pair.handshake()
    pair.client.extranonce_subscribe()
    [request] = pair.to_server()
    assert isinstance(request, ExtranonceSubscribe)
    pair.server.respond(request.id, True)
    pair.server.send_set_extranonce("0a0b0c0d", 8)
    pair.server.send_notify(CKPOOL_JOB)
    events = pair.to_client()
    assert events[1:] == [SetExtranonce("0a0b0c0d", 8), CKPOOL_JOB]
    assert (pair.client.extranonce1, pair.client.extranonce2_size) == ("0a0b0c0d", 8)
    # The client now checks extranonce2 against the new size.
    pair.client.submit("tb1qworker.rig1", CKPOOL_JOB.job_id, "00" * 8, CKPOOL_JOB.ntime, "00000000")
    [share] = pair.to_server()
    assert isinstance(share, Submit) and share.extranonce2 == "00" * 8


def test_lease_switch_over_the_stratum_connection() -> None:
    """The agent registers its rig by extension call; the pool diverts it and brings it back."""
    pair = ConnectionPair()
    pair.handshake()
    capabilities = {"gpus": [{"model": "RTX 4090", "vram_gb": 24}], "hashrate": 1.2e12}
    register = pair.client.send_request(EXTENSION, capabilities)
    [request] = pair.to_server()
    assert request == ExtensionRequest(register, EXTENSION, capabilities)
    pair.server.respond(request.id, {"rig_id": "rig-1"})
    assert pair.to_client() == [Response(register, EXTENSION, {"rig_id": "rig-1"})]

    pair.server.send_notification("stratumkit.lease.divert", {"lease": "L1", "token": 3, "queue": "q"})
    assert pair.to_client() == [
        ExtensionNotification("stratumkit.lease.divert", {"lease": "L1", "token": 3, "queue": "q"})
    ]
    # Return to mining ends with set_difficulty + notify(clean_jobs=true).
    pair.server.send_set_difficulty(2048)
    pair.server.send_notify(CKPOOL_JOB)
    assert pair.to_client() == [SetDifficulty(2048), CKPOOL_JOB]
    assert CKPOOL_JOB.clean_jobs


def test_pool_requests_and_messages() -> None:
    pair = ConnectionPair()
    pair.handshake()
    version_request = pair.server.send_get_version()
    pair.server.send_show_message("maintenance at 12:00 UTC")
    pair.server.send_reconnect("pool2.example", 3334, 5)
    events = pair.to_client()
    assert events == [
        GetVersion(version_request),
        ShowMessage("maintenance at 12:00 UTC"),
        Reconnect("pool2.example", 3334, 5),
    ]
    pair.client.respond(version_request, "stratumkit-agent/0.1")
    assert pair.to_server() == [Response(version_request, "client.get_version", "stratumkit-agent/0.1")]


def test_version_mask_update_reaches_the_client() -> None:
    pair = ConnectionPair()
    pair.client.configure(version_rolling_mask=0x1FFFE000)
    [configure] = pair.to_server()
    assert isinstance(configure, Configure)
    pair.server.respond_configure(configure.id, version_rolling_mask=FULL_VERSION_MASK)
    pair.server.send_set_version_mask(0x00006000)
    result, update = pair.to_client()
    assert isinstance(result, ConfigureResult) and result.version_rolling_mask == 0x1FFFE000
    assert update == SetVersionMask(0x6000)
    assert pair.client.version_rolling_mask == pair.server.version_rolling_mask == 0x6000


def test_byte_at_a_time_in_both_directions() -> None:
    pair = ConnectionPair()
    pair.client.subscribe("slow/1")
    events = []
    for byte in pair.client.data_to_send():
        events += pair.server.receive_data(bytes([byte]))
    [subscribe] = events
    assert isinstance(subscribe, Subscribe)
    pair.server.respond_subscribe(subscribe.id, "08000002", 4)
    pair.server.send_notify(CKPOOL_JOB)
    events = []
    for byte in pair.server.data_to_send():
        events += pair.client.receive_data(bytes([byte]))
    assert [type(event) for event in events] == [SubscribeResult, Notify]
