"""The session behind each shell: an in-memory stream, TLS over TCP, and the plain-socket reactor,
all driven by the same miner; and what a failing share log does to the replies."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
import trio
import trio.testing

from stratumkit.app import make_source
from stratumkit.server.config import ConfigError
from stratumkit.server.pool import Pool
from stratumkit.shares.log import read_records
from tests.pool.conftest import MakePool
from tests.pool.helpers import pool_config
from tests.support.certificates import self_signed
from tests.support.miners import Miner
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made for these tests."""
    return self_signed(tmp_path_factory.mktemp("tls"))


def client_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    return context


def logged_hashes(pool: Pool) -> set[bytes]:
    return {r.hash for r in read_records(pool.config.data_path / "shares")}


async def test_a_miner_over_an_in_memory_stream_is_served_like_any_other(pool: Pool, nursery: trio.Nursery) -> None:
    client_side, pool_side = trio.testing.memory_stream_pair()
    nursery.start_soon(pool.serve_stream, pool_side, "memory:1")
    miner = await Miner.connect(nursery, None, "mem.1", stream=client_side)
    share = miner.share()
    assert (await miner.submit(share)).accepted
    assert share.hash in logged_hashes(pool)  # durable before the reply
    [conn] = pool.sessions
    assert conn.worker == "mem.1" and conn.accepted == 1


async def test_tls_miners_and_plain_miners_share_one_pool(
    make_pool: MakePool, nursery: trio.Nursery, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    pool = await make_pool(tls_port=0, tls_cert=str(cert), tls_key=str(key))
    assert pool.tls_port is not None and pool.tls_port != pool.port
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", pool.tls_port, ssl_context=client_context(cert))
    secure = await Miner.connect(nursery, None, "tls.1", stream=stream)
    plain = await Miner.connect(nursery, pool.port, "plain.1")
    for miner in (secure, plain):
        share = miner.share()
        assert (await miner.submit(share)).accepted
        assert share.hash in logged_hashes(pool)
    assert secure.job is not None and plain.job is not None and secure.job.job_id == plain.job.job_id
    assert sorted(c.worker or "" for c in pool.sessions) == ["plain.1", "tls.1"]


async def test_a_plain_text_client_on_the_tls_port_is_dropped_and_others_go_on(
    make_pool: MakePool, nursery: trio.Nursery, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    pool = await make_pool(tls_port=0, tls_cert=str(cert), tls_key=str(key))
    assert pool.tls_port is not None
    wrong = await trio.open_tcp_stream("127.0.0.1", pool.tls_port)
    await wrong.send_all(b'{"id":1,"method":"mining.subscribe","params":[]}\n')
    with trio.fail_after(10):
        while await wrong.receive_some(4096):
            pass  # the pool closes it: not a TLS handshake
    await wrong.aclose()
    miner = await Miner.connect(nursery, pool.port)
    assert (await miner.submit(miner.share())).accepted


async def test_a_failed_share_log_write_acknowledges_nothing(pool: Pool, nursery: trio.Nursery) -> None:
    miner = await Miner.connect(nursery, pool.port)
    bystander = await Miner.connect(nursery, pool.port, "other.1")
    log = pool.share_log
    real_fd = log._fd
    log._fd = os.open(os.devnull, os.O_RDONLY)  # every write now fails with EBADF
    try:
        miner.client.conn.send_request("mining.submit", miner.share().params(miner.worker))
        await miner.client.flush()
        await wait_until(lambda: miner.client.closed.is_set())
        assert miner.results == []  # dropped, never told "accepted"
    finally:
        os.close(log._fd)
        log._fd = real_fd
    assert (await bystander.submit(bystander.share())).accepted


async def test_a_certificate_that_does_not_load_is_a_config_error_before_anything_listens(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    config = pool_config(tmp_path / "pool", tls_port=0, tls_cert=str(bad), tls_key=str(bad))
    with pytest.raises(ConfigError, match="tls_cert / tls_key: cannot load"):
        Pool(config, make_source(config))
