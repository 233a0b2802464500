"""The agent's [miner] and [inference] settings: TOML, flags over it, and errors that name the key."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stratumkit.agent.child_process import StopMethod
from stratumkit.agent.settings import UsageError, inference_settings, load_document, miner_settings
from stratumkit.cli import build_parser


def agent_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["agent", "--worker", "w.1", *flags])


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return str(path)


def test_a_miner_table_is_read_and_flags_win(tmp_path: Path) -> None:
    config = write(tmp_path, '[miner]\ncommand = "cpuminer -o {url} -u {user}"\nstop = "signal"\nport = 3999\n')
    args = agent_args("--config", config, "--miner-stop", "withhold")
    settings = miner_settings(load_document(config), args)
    assert settings is not None
    assert (settings.command, settings.method, settings.port) == (
        "cpuminer -o {url} -u {user}",
        StopMethod.WITHHOLD,
        3999,
    )
    assert miner_settings({}, agent_args()) is None


def test_an_inference_table_is_read(tmp_path: Path) -> None:
    config = write(
        tmp_path, '[inference]\ncommand = "llama-server -m m.gguf --port 8012"\nready_timeout = 30\nkeep_warm = true\n'
    )
    settings = inference_settings(load_document(config), agent_args("--config", config))
    assert settings is not None and settings.ready_timeout == 30.0 and settings.keep_warm


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[minr]\ncommand = 'x'\n", "unknown table(s) minr"),
        ("[miner]\ncomand = 'x'\n", "[miner] comand: unknown key"),
        ("[miner]\ncommand = 'x'\nport = 'a'\n", "[miner] port must be a int"),
        ("[miner]\nstop = 'signal'\n", "[miner] settings without a command"),
        ("[miner]\ncommand = 'x -o {pool}'\n", "unknown placeholder {pool}"),
        ("[miner]\ncommand = 'x'\nstop = 'pause'\n", "stop method must be stop, signal or withhold"),
        ("[inference]\ncommand = ''\n", "the command is empty"),
        ("[miner\n", "--config"),
    ],
)
def test_bad_settings_name_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path, text)
    with pytest.raises(UsageError, match=None) as caught:
        document = load_document(config)
        miner_settings(document, agent_args("--config", config))
        inference_settings(document, agent_args("--config", config))
    assert message in str(caught.value)
