"""Fixtures shared by several test directories, and the hypothesis profiles.

Hypothesis profiles: "dev" (the default: hypothesis' example counts) and "ci" (25 examples a test
that does not set its own count), chosen by HYPOTHESIS_PROFILE (`make test` sets "ci" unless it is
set already). Neither has a deadline: on a busy machine one slow example is not a failure.

The two regtest nodes live here so that tests/node and tests/e2e_node share one pair for the whole
session. They start in a sync session fixture (pytest-trio runs each test in its own trio run, so
a session fixture cannot be async): subprocess.Popen, and readiness polled with plain blocking
HTTP. A binary that cannot be installed FAILS the tests that need it; it never skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.node.regtest import NodeFailed, RegtestNetwork, install_bitcoind

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", max_examples=25, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def regtest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegtestNetwork]:
    try:
        bitcoind = install_bitcoind()
    except (NodeFailed, OSError) as exc:
        pytest.fail(f"the regtest node these tests need could not be installed: {exc}")
    network = RegtestNetwork(bitcoind, tmp_path_factory.mktemp("regtest"))
    try:
        network.start()
    except NodeFailed as exc:
        network.stop()
        pytest.fail(f"the regtest nodes did not start: {exc}")
    try:
        yield network
    finally:
        network.stop()


@pytest.fixture
def healthy_regtest(regtest: RegtestNetwork) -> RegtestNetwork:
    """The nodes as a test expects them: node 1 running with its peer, both on one tip."""
    if regtest.node1.process is None or regtest.node1.process.poll() is not None:
        regtest.start_node1()
    regtest.node1.resume()
    regtest.node1.call("setnetworkactive", True)
    regtest.wait_connected()
    regtest.wait_synced()
    return regtest
