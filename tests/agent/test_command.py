"""`stratumkit agent` refuses flags it cannot run with in one line, exit code 2."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.processes import child_env, cli_command


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--pool", "pool.example"], "--pool: pool URL 'pool.example' must be HOST:PORT"),
        (["--pool", "stratum+udp://h:1"], "the scheme must be one of"),
        (["--gpu", "RTX 4090"], "--gpu takes MODEL:VRAM_MB"),
        (["--log-level", "verbose"], "argument --log-level: invalid choice"),
    ],
)
def test_bad_agent_flags_are_one_line_and_exit_2(flags: list[str], message: str) -> None:
    command = cli_command("agent", "--worker", "w.1", *flags)
    done = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
