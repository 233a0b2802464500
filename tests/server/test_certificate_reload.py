"""SIGHUP reloads the certificate of a real `stratumkit serve` process: new connections to the
TLS stratum port and the HTTPS API get the new one, a miner already connected keeps its session
(and the certificate it was shown), and a pair that does not load is one log line with the old
certificate kept."""

from __future__ import annotations

import hashlib
import shutil
import signal
import ssl
from pathlib import Path

import pytest
import trio

from tests.support.certificates import client_context, make_certificate, served_certificate
from tests.support.miners import Miner
from tests.support.processes import ServeProcess

pytestmark = pytest.mark.slow


def install(pair: tuple[Path, Path], live: tuple[Path, Path]) -> None:
    """Put a certificate and key where the pool reads them, as a renewal would."""
    for source, target in zip(pair, live, strict=True):
        shutil.copyfile(source, target)


def digest(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def pem_digest(cert: Path) -> str:
    return digest(ssl.PEM_cert_to_DER_cert(cert.read_text()))


async def test_sighup_gives_new_connections_the_new_certificate_and_keeps_a_bad_one_out(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    old, new = make_certificate(tmp_path / "old"), make_certificate(tmp_path / "new")
    live = (tmp_path / "cert.pem", tmp_path / "key.pem")
    install(old, live)
    server = await ServeProcess.start(
        nursery,
        *("--host", "127.0.0.1", "--port", "0", "--api-port", "0", "--data-dir", str(tmp_path / "data")),
        *("--tls-port", "0", "--tls-cert", str(live[0]), "--tls-key", str(live[1]), "--api-tls"),
        *("--start-difficulty", "2e-6", "--min-difficulty", "1e-9", "--max-difficulty", "2e-6"),
        *("--log-format", "json"),
    )
    tls_port = int((await server.wait_event("pool listening"))["tls_port"])
    api_port = await server.api_port()
    trusting = client_context(old[0])
    trusting.load_verify_locations(cafile=str(new[0]))  # both, so the test sees which one is served

    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", tls_port, ssl_context=trusting)
    miner = await Miner.connect(nursery, None, "before.1", stream=stream)
    assert digest(stream.getpeercert(binary_form=True)) == pem_digest(old[0])
    assert (await miner.submit(miner.share())).accepted

    install(new, live)
    server.process.send_signal(signal.SIGHUP)
    reloaded = await server.wait_event("certificate reloaded")
    assert (reloaded["sha256"], reloaded["listeners"]) == (pem_digest(new[0]), 2)
    for port in (tls_port, api_port):
        assert digest(await served_certificate(port, trusting)) == pem_digest(new[0])
    # the miner connected before goes on, on its own session and certificate
    assert (await miner.submit(miner.share())).accepted
    assert digest(stream.getpeercert(binary_form=True)) == pem_digest(old[0])

    # a renewal gone wrong: the old certificate with the new key, then a file that is no PEM at all
    shutil.copyfile(old[0], live[0])
    server.process.send_signal(signal.SIGHUP)
    mismatch = await server.wait_event("certificate not reloaded, the old one stays")
    live[0].write_text("not a certificate\n")
    server.process.send_signal(signal.SIGHUP)
    junk = await server.wait_event(
        "certificate not reloaded, the old one stays", where=lambda event: event is not mismatch
    )
    for event in (mismatch, junk):
        assert event["error"].startswith(f"tls_cert / tls_key: cannot load {live[0]} with {live[1]} (")
        assert event["error"].endswith("): give a PEM certificate chain and its private key")
    assert "KEY_VALUES_MISMATCH" in mismatch["error"] or "key values mismatch" in mismatch["error"]
    for port in (tls_port, api_port):
        assert digest(await served_certificate(port, trusting)) == pem_digest(new[0])
    assert (await miner.submit(miner.share())).accepted

    assert server.running and not [line for line in server.lines if "Traceback" in line]
    assert await server.stop() == 0
