"""NodeRPC against a real node: both kinds of auth, JSON-RPC errors, and a node that is down,
silent, or answering HTTP without JSON-RPC."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from stratumkit.jobs.rpc import NodeRPC, NodeTimeout, NodeUnreachable, RPCAuthError, RPCError
from stratumkit.jobs.sources import SourceUnavailable
from tests.support.ports import refused_port
from tests.support.waiting import TIMEOUT

from .regtest import RegtestNetwork


async def test_password_in_url(rpc: NodeRPC) -> None:
    info = await rpc.call("getblockchaininfo")
    assert info["chain"] == "regtest"
    assert info["blocks"] >= 101
    assert await rpc.call("getblockhash", info["blocks"]) == info["bestblockhash"]


async def test_cookie_file(healthy_regtest: RegtestNetwork) -> None:
    url = healthy_regtest.url_without_auth
    async with NodeRPC(url, cookie_file=healthy_regtest.cookie_path) as rpc:
        assert await rpc.call("getblockcount") >= 101
        assert "cookie" in repr(rpc)


async def test_cookie_is_read_again_after_401(healthy_regtest: RegtestNetwork, tmp_path: Path) -> None:
    real = healthy_regtest.cookie_path.read_text()
    user = real.partition(":")[0]
    cookie = tmp_path / ".cookie"
    cookie.write_text(f"{user}:not-the-password")
    async with NodeRPC(healthy_regtest.url_without_auth, cookie_file=cookie) as rpc:
        with pytest.raises(RPCAuthError, match="refused the cookie file") as caught:
            await rpc.call("getblockcount")
        assert "not-the-password" not in str(caught.value)
        # As after a node restart: the cookie on disk changed, the one in memory is stale.
        cookie.write_text(real)
        assert await rpc.call("getblockcount") >= 101


async def test_missing_cookie_file_is_unreachable(healthy_regtest: RegtestNetwork, tmp_path: Path) -> None:
    async with NodeRPC(healthy_regtest.url_without_auth, cookie_file=tmp_path / "none") as rpc:
        with pytest.raises(NodeUnreachable, match="does not exist"):
            await rpc.call("getblockcount")


async def test_wrong_password(healthy_regtest: RegtestNetwork) -> None:
    url = f"http://stratumkit:hunter2@127.0.0.1:{healthy_regtest.node1.rpc_port}"
    async with NodeRPC(url) as rpc:
        with pytest.raises(RPCAuthError, match="HTTP 401") as caught:
            await rpc.call("getblockcount")
    assert isinstance(caught.value, SourceUnavailable)
    assert "hunter2" not in str(caught.value)


async def test_json_rpc_errors(rpc: NodeRPC) -> None:
    with pytest.raises(RPCError) as caught:
        await rpc.call("getblockheader", "00" * 32)
    assert caught.value.code == -5
    assert caught.value.method == "getblockheader"
    assert "not found" in caught.value.message.lower()
    assert not caught.value.transient
    with pytest.raises(RPCError) as caught:
        await rpc.call("nosuchmethod")
    assert caught.value.code == -32601
    with pytest.raises(RPCError) as caught:
        await rpc.call("submitblock", "00")
    assert caught.value.code == -22


async def test_node_down() -> None:
    with refused_port() as port:
        async with NodeRPC(f"http://u:sekrit@127.0.0.1:{port}", timeout=5) as rpc:
            with pytest.raises(NodeUnreachable, match="connection refused") as caught:
                await rpc.call("getblockcount")
    assert isinstance(caught.value, SourceUnavailable)
    assert "sekrit" not in str(caught.value)


async def _serve_once(reply: bytes | None, task_status: trio.TaskStatus[int]) -> None:
    """A one-connection HTTP server on loopback: reads the request, then sends `reply`
    (or holds the connection open without a word when `reply` is None)."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        task_status.started(listener.socket.getsockname()[1])
        async with await listener.accept() as stream:
            await stream.receive_some()
            if reply is None:
                await trio.sleep_forever()
            await stream.send_all(reply)


async def test_silent_node_times_out() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_serve_once, None)
        async with NodeRPC(f"http://u:p@127.0.0.1:{port}", timeout=5) as rpc:
            with trio.fail_after(TIMEOUT), pytest.raises(NodeTimeout, match=r"within 0.3 s"):
                await rpc.call("getblockcount", timeout=0.3)
        nursery.cancel_scope.cancel()


async def test_http_error_without_json_body() -> None:
    # What bitcoind answers when its RPC work queue is full.
    body = b"Work queue depth exceeded"
    reply = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_serve_once, reply)
        async with NodeRPC(f"http://u:p@127.0.0.1:{port}") as rpc:
            with pytest.raises(NodeUnreachable, match=r"HTTP 503.*Work queue depth exceeded"):
                await rpc.call("getblockcount")


async def test_secrets_stay_out_of_repr() -> None:
    async with NodeRPC("http://alice:s3cr%40t@127.0.0.1:18443/") as rpc:
        assert "s3cr" not in repr(rpc)
        assert rpc.url == "http://127.0.0.1:18443/"


@pytest.mark.parametrize(
    ("url", "cookie", "message"),
    [
        ("http://127.0.0.1:18443", None, "needs credentials"),
        ("http://u:p@127.0.0.1:18443", "/tmp/.cookie", "not both"),
        ("ftp://u:p@127.0.0.1:18443", None, "http"),
        ("http://u:p@127.0.0.1:18443/?x=1", None, "query"),
    ],
)
def test_bad_configuration(url: str, cookie: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NodeRPC(url, cookie_file=cookie)
