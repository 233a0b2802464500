"""Self-signed certificates for 127.0.0.1 made in the test, as the TLS bench makes its own
(`stratumkit.bench.loadgen.make_cert`: openssl req, P-256, one day), and a client that trusts one."""

from __future__ import annotations

import ssl
from pathlib import Path

import trio

from stratumkit.bench.loadgen import make_cert


def make_certificate(folder: Path, names: str = "IP:127.0.0.1,DNS:localhost") -> tuple[Path, Path]:
    """A new certificate for `names` (subjectAltName) and its key in `folder` (made if missing):
    (cert.pem, key.pem)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = make_cert(str(folder), names)
    return Path(cert), Path(key)


def client_context(cert: Path) -> ssl.SSLContext:
    """A client context that trusts `cert` alone (and checks the host name against it)."""
    return ssl.create_default_context(cafile=str(cert))


async def served_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The DER certificate a new TLS connection to 127.0.0.1:`port` is shown."""
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=context)
    try:
        await stream.do_handshake()
        der: bytes = stream.getpeercert(binary_form=True)
        return der
    finally:
        await trio.aclose_forcefully(stream)
