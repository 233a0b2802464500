"""The HTTP API over HTTPS (api_tls), in a real `stratumkit serve` process with a self-signed
certificate made in the test: it answers over TLS with the TLS stratum port's certificate, and
refuses plain HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from tests.support.certificates import client_context, make_certificate, served_certificate
from tests.support.processes import ServeProcess

pytestmark = pytest.mark.slow


async def test_the_api_serves_https_with_the_stratum_certificate(tmp_path: Path, nursery: trio.Nursery) -> None:
    cert, key = make_certificate(tmp_path / "tls")
    server = await ServeProcess.start(
        nursery,
        *("--host", "127.0.0.1", "--port", "0", "--api-port", "0", "--data-dir", str(tmp_path / "data")),
        *("--tls-port", "0", "--tls-cert", str(cert), "--tls-key", str(key), "--api-tls", "--api-token", "t0k"),
        *("--log-format", "json"),
    )
    api_port = await server.api_port()
    assert (await server.wait_event("API listening"))["https"] is True
    trusted = client_context(cert)
    async with httpx.AsyncClient(verify=trusted, timeout=10) as http:
        health = await http.get(f"https://127.0.0.1:{api_port}/health")
        assert (health.status_code, health.json()["status"], health.http_version) == (200, "ok", "HTTP/1.1")
        stats = await http.get(f"https://localhost:{api_port}/v1/stats", headers={"Authorization": "Bearer t0k"})
        assert stats.status_code == 200 and "pool" in stats.json()
    async with httpx.AsyncClient(timeout=10) as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.get(f"http://127.0.0.1:{api_port}/health")
    tls_port = int((await server.wait_event("pool listening"))["tls_port"])
    assert await served_certificate(api_port, trusted) == await served_certificate(tls_port, trusted)
    assert server.running
    assert await server.stop() == 0
