"""`stratumkit serve`: the TOML file, flags over it, and a clean exit on SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import trio

from stratumkit.cli import build_parser
from stratumkit.server.config import ConfigError, PoolConfig, load_config
from stratumkit.shares.log import read_records
from tests.support.processes import ServeProcess, run_cli

from .helpers import Miner

# ---------------------------------------------------------------------------- load_config


def test_flat_keys_and_a_pool_table_are_both_read(tmp_path: Path) -> None:
    flat = tmp_path / "flat.toml"
    flat.write_text('port = 4444\nstart_difficulty = 0.5\npool_tag = "/flat/"\n')
    table = tmp_path / "table.toml"
    table.write_text("[pool]\nport = 5555\nstart_difficulty = 0.25\nsolo = true\n")
    a, b = load_config(flat), load_config(table)
    assert (a.port, a.start_difficulty, a.pool_tag) == (4444, 0.5, "/flat/")
    assert (b.port, b.start_difficulty, b.solo) == (5555, 0.25, True)
    assert a.max_difficulty == PoolConfig().max_difficulty  # the rest keeps its default


def test_overrides_win_over_the_file_and_none_means_not_given(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text('port = 4444\nhost = "10.0.0.1"\nstart_difficulty = 0.5\n')
    config = load_config(path, port=0, host=None, start_difficulty=0.125)
    assert (config.port, config.host, config.start_difficulty) == (0, "10.0.0.1", 0.125)


def test_an_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text("port = 4444\nstart_dificulty = 0.5\n")
    with pytest.raises(ConfigError, match="start_dificulty"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("start_difficulty = 0.5\nmax_difficulty = 0.1\n", "difficulty"),
        ("port = 70000\n", "port"),
        ("extranonce2_size = 1\n", "extranonce2_size"),
        ('log_format = "xml"\n', "log_format"),
        ('payout_scheme = "pps"\n', "payout_scheme"),
        ("pool_fee = 1.0\n", "pool_fee"),
        ("pplns_window = 0\n", "pplns_window"),
        ("job_result_ttl = -1\n", "job_result_ttl"),
        ("port = [\n", "not valid TOML"),
    ],
)
def test_invalid_values_are_config_errors(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key):
        load_config(path)


def test_a_value_of_the_wrong_type_is_a_config_error(tmp_path: Path) -> None:
    """config.py: ConfigError's message says which key and why (never a bare TypeError)."""
    path = tmp_path / "pool.toml"
    path.write_text('port = "3333"\n')
    with pytest.raises(ConfigError, match="port"):
        load_config(path)


def test_every_config_key_is_a_flag_and_every_flag_a_key() -> None:
    flags = "--port 0 --start-difficulty 0.5 --solo --max-connections-per-ip 3 --api-token t"
    args = build_parser().parse_args(
        ["serve", *flags.split(), *"--handshake-timeout 2.5 --version-mask 0x1fffe000 --no-node-wait".split()]
    )
    assert (args.port, args.start_difficulty, args.solo, args.max_connections_per_ip) == (0, 0.5, True, 3)
    assert (args.api_token, args.handshake_timeout, args.version_mask, args.node_wait) == ("t", 2.5, 0x1FFFE000, False)
    keys = set(vars(build_parser().parse_args(["serve"]))) - {"command", "func", "config", "check_config"}
    assert keys == set(PoolConfig.__dataclass_fields__) - {"extra", "power"}  # power: a TOML table of its own
    assert all(getattr(build_parser().parse_args(["serve"]), key) is None for key in keys)  # not given: the file's


# ---------------------------------------------------------------------------- the command


@pytest.mark.slow
def test_serve_refuses_a_config_with_an_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text("[pool]\nport = 0\nmax_conections_per_ip = 3\n")
    done = run_cli("serve", "--config", str(path), "--data-dir", str(tmp_path / "d"))
    assert (done.returncode, done.stderr) == (
        2,
        f"stratumkit serve: unknown config key(s) in {path}: max_conections_per_ip (did you mean"
        " max_connections_per_ip?)\n",
    )


@pytest.mark.slow
def test_serve_refuses_a_value_of_the_wrong_type_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text('[pool]\nport = "3333"\n')
    done = run_cli("serve", "--config", str(path), "--data-dir", str(tmp_path / "d"))
    assert (done.returncode, done.stderr) == (2, "stratumkit serve: config key 'port' must be int, got str '3333'\n")


@pytest.mark.slow
async def test_serve_reads_the_file_lets_flags_override_and_exits_0_on_sigterm(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    data_dir = tmp_path / "data"
    path = tmp_path / "pool.toml"
    path.write_text(
        '[pool]\nhost = "127.0.0.1"\nport = 1\nstart_difficulty = 2e-6\nmin_difficulty = 1e-9\n'
        f'max_difficulty = 2e-6\nlog_format = "json"\ndata_dir = "{data_dir}"\n'
    )
    server = await ServeProcess.start(nursery, "--config", str(path), "--port", "0")  # the flag wins
    assert server.port not in (None, 1)
    miner = await Miner.connect(nursery, server.port, "cli.1")
    assert miner.difficulties == [2e-6]  # from the file
    share = miner.share()
    assert (await miner.submit(share)).accepted

    server.process.send_signal(signal.SIGTERM)
    assert await server.wait_exit() == 0
    stopped = await server.wait_event("pool stopped")
    assert stopped["accepted"] == 1
    await miner.wait_closed()
    assert [r.hash for r in read_records(data_dir / "shares")] == [share.hash]
    assert "Traceback" not in "\n".join(server.lines)
