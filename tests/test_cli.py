"""The other long-running commands failing at start (`stratumkit agent`, `stratumkit infer
serve`): real processes, one exact line on stderr, exit code 1; no traceback."""

from __future__ import annotations

import socket

import pytest

from tests.support.ports import refused_port
from tests.support.processes import run_cli

pytestmark = pytest.mark.slow


def test_infer_serve_with_its_port_in_use_or_its_upstream_down_is_one_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken, refused_port() as down:
        port = taken.getsockname()[1]
        in_use = run_cli("infer", "serve", "--port", str(port), "--upstream", f"http://127.0.0.1:{down}")
        no_upstream = run_cli("infer", "serve", "--port", "0", "--upstream", f"http://127.0.0.1:{down}")
    assert (in_use.returncode, in_use.stderr) == (
        1,
        f"stratumkit infer serve: port {port}: address 127.0.0.1:{port} already in use (another process listens"
        " there: stop it, or choose another port with --port)\n",
    )
    assert (no_upstream.returncode, no_upstream.stderr) == (
        1,
        f"stratumkit infer serve: --upstream http://127.0.0.1:{down}: cannot connect to"
        f" http://127.0.0.1:{down}/v1/models: connection refused (is the inference server running?)\n",
    )
