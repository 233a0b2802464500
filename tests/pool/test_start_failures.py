"""`stratumkit serve` failing at start, as an operator meets it: a real process, one exact line on
stderr naming the key or flag and what to do, exit code 2 for a bad configuration and 1 for the
world refusing a good one; never a traceback. `--check-config` checks without binding anything."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from stratumkit.server.config import PoolConfig
from tests.node.regtest import RPC_USER, RegtestNetwork
from tests.queue.queue_harness import RedisServer, find_redis_server
from tests.support.certificates import make_certificate
from tests.support.ports import refused_port
from tests.support.processes import ServeProcess, run_cli

pytestmark = pytest.mark.slow

#: A valid regtest address (BIP173's test vector) for the node tests.
PAYOUT = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process listens on (this one, for the test)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("serve", *args)


def assert_fails(done: subprocess.CompletedProcess[str], code: int, line: str) -> None:
    """The command printed `line` alone on stderr, and exited with `code`."""
    assert (done.returncode, done.stderr) == (code, f"stratumkit serve: {line}\n"), done.stderr


def base(tmp_path: Path) -> list[str]:
    return ["--host", "127.0.0.1", "--port", "0", "--api-port", "0", "--data-dir", str(tmp_path / "data")]


# ---------------------------------------------------------------------------- ports in use


def test_a_stratum_port_in_use_is_one_line_and_exit_1(tmp_path: Path, taken_port: int) -> None:
    assert_fails(
        serve(*base(tmp_path), "--port", str(taken_port)),
        1,
        f"port {taken_port}: address 127.0.0.1:{taken_port} already in use (another process listens there:"
        " stop it, or choose another port with --port)",
    )


def test_a_tls_port_in_use_is_one_line_and_exit_1(tmp_path: Path, taken_port: int) -> None:
    cert, key = make_certificate(tmp_path / "tls")
    done = serve(*base(tmp_path), "--tls-port", str(taken_port), "--tls-cert", str(cert), "--tls-key", str(key))
    assert_fails(
        done,
        1,
        f"tls_port {taken_port}: address 127.0.0.1:{taken_port} already in use (another process listens there:"
        " stop it, or choose another port with --tls-port)",
    )


def test_an_api_port_in_use_is_one_line_and_nothing_started_before_it(tmp_path: Path, taken_port: int) -> None:
    assert_fails(
        serve(*base(tmp_path), "--api-port", str(taken_port)),
        1,
        f"api_port {taken_port}: address 127.0.0.1:{taken_port} already in use (another process listens there:"
        " stop it, or choose another port with --api-port)",
    )  # and no "pool listening" line: the API's port is bound before the pool starts


def test_a_host_that_is_not_this_machines_is_a_config_error(tmp_path: Path) -> None:
    assert_fails(
        serve(*base(tmp_path), "--host", "192.0.2.1"), 2, "host 192.0.2.1: not an address of this machine: fix --host"
    )


# ---------------------------------------------------------------------------- values and files


def test_an_unknown_log_level_is_one_line_in_serve_and_in_agent(tmp_path: Path) -> None:
    assert_fails(
        serve(*base(tmp_path), "--log-level", "verbose"),
        2,
        "log_level must be debug, info, warning, error, got 'verbose'",
    )
    done = run_cli("agent", "--worker", "rig.1", "--log-level", "verbose")
    assert (done.returncode, done.stderr) == (
        2,
        "stratumkit agent: argument --log-level: invalid choice: 'verbose' (choose from 'debug', 'info', 'warning',"
        " 'error') (see stratumkit agent --help)\n",
    )


def test_a_flag_value_of_the_wrong_type_is_one_line(tmp_path: Path) -> None:
    assert_fails(
        serve(*base(tmp_path), "--port", "33x"),
        2,
        "argument --port: invalid int value: '33x' (see stratumkit serve --help)",
    )


def test_a_config_file_that_cannot_be_read_or_parsed_or_typed(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert_fails(serve("--config", str(missing)), 2, f"--config {missing}: cannot read it (No such file or directory)")
    broken = tmp_path / "broken.toml"
    broken.write_text("[pool]\nport = [\n")
    assert_fails(
        serve("--config", str(broken)), 2, f"--config {broken}: not valid TOML (Invalid value (at end of document))"
    )
    typed = tmp_path / "typed.toml"
    typed.write_text('[pool]\nhandshake_timeout = "soon"\n')
    assert_fails(serve("--config", str(typed)), 2, "config key 'handshake_timeout' must be float, got str 'soon'")


def test_a_data_dir_that_is_a_file_names_the_key(tmp_path: Path) -> None:
    file = tmp_path / "data"
    file.write_text("")
    assert_fails(
        serve(*base(tmp_path)),
        2,
        f"data_dir {file}: {file} is a file, not a directory: point --data-dir at a directory this user can write",
    )


def test_a_bad_payout_address_and_a_bad_certificate_are_config_errors(tmp_path: Path) -> None:
    assert_fails(
        serve(*base(tmp_path), "--payout-address", "1NotAnAddress"),
        2,
        "payout_address 1NotAnAddress: bad Base58Check checksum: give a regtest address (see network)",
    )
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    done = serve(*base(tmp_path), "--tls-port", "0", "--tls-cert", str(junk), "--tls-key", str(junk))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"stratumkit serve: tls_cert / tls_key: cannot load {junk} with {junk} (")
    assert done.stderr.endswith("): give a PEM certificate chain and its private key\n")


@pytest.mark.parametrize(
    ("name", "what", "reason"),
    [
        ("blocks.sqlite", "a SQLite database of found blocks", "file is not a database"),
        ("queue.sqlite", "a SQLite database of inference jobs", "file is not a database"),
        (
            "embedded-chain.json",
            "the embedded chain's state (JSON: tip, height, time)",
            "Expecting value: line 1 column 1 (char 0)",
        ),
    ],
)
def test_a_damaged_state_file_in_data_dir_is_named_with_exit_1(
    tmp_path: Path, name: str, what: str, reason: str
) -> None:
    (tmp_path / "data").mkdir()
    damaged = tmp_path / "data" / name
    damaged.write_text("not what the pool wrote\n" * 100)
    assert_fails(
        serve(*base(tmp_path)),
        1,
        f"data_dir: {damaged} is not {what} ({reason}): restore it, or move it aside to start a new one",
    )


# ---------------------------------------------------------------------------- services at start


def test_redis_down_at_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with refused_port() as port:
        done = serve(*base(tmp_path), "--queue-url", f"redis://127.0.0.1:{port}/0")
    assert_fails(
        done,
        1,
        f"queue_url: redis command failed: Unable to establish a connection to 127.0.0.1:{port}:"
        " start Redis or fix --queue-url",
    )


def test_redis_refusing_the_password_is_a_config_error(tmp_path: Path) -> None:
    redis = RedisServer(find_redis_server(), tmp_path)
    redis.start()
    try:
        with socket.create_connection(("127.0.0.1", redis.port or 0)) as conn:  # CONFIG SET requirepass sekret
            conn.sendall(b"*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$11\r\nrequirepass\r\n$6\r\nsekret\r\n")
            assert conn.recv(64) == b"+OK\r\n"
        done = serve(*base(tmp_path), "--queue-url", f"redis://:wrong@127.0.0.1:{redis.port}/0")
    finally:
        redis.stop()
    assert_fails(
        done,
        2,
        "queue_url: redis command failed: invalid username-password pair or user is disabled.:"
        " fix the password in --queue-url",
    )


def test_jobs_in_the_earlier_redis_layout_stop_the_start_in_one_line(tmp_path: Path) -> None:
    """A queue stream of the earlier (Streams) layout still holds a job: starting would hide it."""
    redis = RedisServer(find_redis_server(), tmp_path)
    redis.start()
    try:
        with socket.create_connection(("127.0.0.1", redis.port or 0)) as conn:  # XADD <key> * j job-1
            key = b"stratumkit:queue:q:embed:stream"
            conn.sendall(b"*5\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$1\r\nj\r\n$5\r\njob-1\r\n" % (len(key), key))
            assert conn.recv(64).startswith(b"$")
        done = serve(*base(tmp_path), "--queue-url", f"redis://127.0.0.1:{redis.port}/0")
    finally:
        redis.stop()
    assert_fails(
        done,
        1,
        "queue_url: Redis holds queue data in the layout of an earlier stratumkit"
        " ('stratumkit:queue:q:embed:stream', under the prefix 'stratumkit:queue') that this version"
        " does not read: let the earlier version finish those jobs, or delete its keys, before starting this one",
    )


def test_a_node_that_does_not_answer_at_start_is_exit_1(tmp_path: Path) -> None:
    with refused_port() as port:
        done = serve(*base(tmp_path), "--node-url", f"http://u:p@127.0.0.1:{port}", "--payout-address", PAYOUT)
    assert_fails(
        done,
        1,
        f"node_url: connection refused by http://127.0.0.1:{port}/ (is the node running?): start the node,"
        " fix --node-url, or serve while it is down with --node-wait",
    )


def test_a_node_that_refuses_the_credentials_at_start_is_a_config_error(
    tmp_path: Path, healthy_regtest: RegtestNetwork
) -> None:
    port = healthy_regtest.node1.rpc_port
    done = serve(*base(tmp_path), "--node-url", f"http://{RPC_USER}:wrong@127.0.0.1:{port}", "--payout-address", PAYOUT)
    assert_fails(
        done,
        2,
        f"node_url: node at http://127.0.0.1:{port}/ refused the user and password in the URL (HTTP 401):"
        " fix the user:password in --node-url",
    )


async def test_a_second_pool_on_a_data_dir_in_use_is_exit_1(tmp_path: Path, nursery: trio.Nursery) -> None:
    first = await ServeProcess.start(nursery, *base(tmp_path), "--log-format", "json")
    done = await trio.to_thread.run_sync(lambda: serve(*base(tmp_path)))
    data = tmp_path / "data"
    assert_fails(
        done,
        1,
        f"data_dir {data}: in use by another pool process (pid {first.process.pid}): stop it, or give each pool"
        " its own --data-dir",
    )
    assert first.running
    assert await first.stop() == 0


# ---------------------------------------------------------------------------- --check-config


def test_check_config_says_valid_and_binds_and_writes_nothing(tmp_path: Path, taken_port: int) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(f'[pool]\nport = {taken_port}\napi_token = "secret"\ndata_dir = "{tmp_path / "data"}"\n')
    done = serve("--config", str(path), "--check-config")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"stratumkit serve: the configuration is valid ({path})\n",
        "",
    )  # the port is taken and data_dir does not exist: neither was touched
    assert not (tmp_path / "data").exists()


def test_check_config_refuses_a_bad_configuration_with_exit_2(tmp_path: Path) -> None:
    assert_fails(
        serve("--check-config", "--start-difficulty", "1", "--max-difficulty", "0.5"),
        2,
        "need 0 < min_difficulty <= start_difficulty <= max_difficulty",
    )
    done = serve("--check-config", "--tls-port", "3443", "--tls-cert", str(tmp_path / "none.pem"), "--tls-key", "k")
    assert_fails(done, 2, f"tls_cert: no such file: {tmp_path / 'none.pem'}")
    assert_fails(serve("--check-config", "--api-tls"), 2, "api_tls needs tls_cert: the path of a PEM file")


def test_every_key_of_the_config_is_accepted_as_a_flag_by_check_config(tmp_path: Path) -> None:
    """Each key's flag, given its default's text, parses and passes --check-config."""
    config = PoolConfig(data_dir=str(tmp_path / "data"))
    flags: list[str] = []
    for key, value in config.as_dict().items():
        if key in ("extra", "power") or value is None:  # power: a TOML table (tests/power/test_settings.py)
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, repr(value) if isinstance(value, float) else str(value)]
    done = serve("--check-config", *flags)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
