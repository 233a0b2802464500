"""The agent's optional child processes, from its TOML (``--config``) and its flags (flags win).

``[miner]``: ``command``, ``stop`` (stop | signal | withhold), ``port``, ``user``, ``log_lines``,
``report_every``. ``[inference]``: ``command``, ``model``, ``ready_timeout``, ``keep_warm``,
``log_lines``. Unknown tables and keys, wrong types and unusable values are a UsageError that
names the key; a table without ``command`` is an error too, so nothing configured is ignored.
"""

from __future__ import annotations

import argparse
import tomllib
from typing import Any

from .child_process import StopMethod, command_argv
from .external import MinerSettings
from .inference_server import InferenceServerSettings


class UsageError(ValueError):
    """A flag or key the agent cannot run with: printed as one line, exit code 2."""


MINER_KEYS: dict[str, type] = {
    "command": str, "stop": str, "port": int, "user": str, "log_lines": int, "report_every": float,
}  # fmt: skip
INFERENCE_KEYS: dict[str, type] = {
    "command": str, "model": str, "ready_timeout": float, "keep_warm": bool, "log_lines": int,
}  # fmt: skip
MINER_FLAGS = {"command": "miner_cmd", "stop": "miner_stop", "port": "miner_port", "log_lines": "miner_log_lines"}
INFERENCE_FLAGS = {
    "command": "inference_cmd", "model": "inference_model", "ready_timeout": "inference_ready_timeout",
    "keep_warm": "inference_keep_warm",
}  # fmt: skip


def load_document(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"--config {path}: {exc}") from None
    unknown = set(document) - {"miner", "inference"}
    if unknown:
        raise UsageError(f"--config {path}: unknown table(s) {', '.join(sorted(unknown))} (known: miner, inference)")
    return document


def _table(
    document: dict[str, Any], name: str, keys: dict[str, type], args: argparse.Namespace, flags: dict[str, str]
) -> dict[str, Any]:
    table = dict(document.get(name, {}))
    for key, value in table.items():
        kind = keys.get(key)
        if kind is None:
            raise UsageError(f"[{name}] {key}: unknown key (known: {', '.join(keys)})")
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = table[key] = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise UsageError(f"[{name}] {key} must be a {kind.__name__}, got {value!r}")
    for key, flag in flags.items():
        value = getattr(args, flag, None)
        if value is not None and value is not False:
            table[key] = value
    if table and "command" not in table:
        raise UsageError(f"[{name}] settings without a command: give --{name}-cmd or [{name}] command")
    return table


def miner_settings(document: dict[str, Any], args: argparse.Namespace) -> MinerSettings | None:
    """None: the built-in CPU miner."""
    table = _table(document, "miner", MINER_KEYS, args, MINER_FLAGS)
    if not table:
        return None
    stop = table.pop("stop", "stop")
    try:
        method = StopMethod(stop)
    except ValueError:
        raise UsageError(f"miner stop method must be stop, signal or withhold, got {stop!r}") from None
    settings = MinerSettings(method=method, **table)
    if not 0 <= settings.port <= 65535 or settings.log_lines < 1 or settings.report_every <= 0:
        raise UsageError("miner port must be 0..65535, log_lines >= 1, report_every > 0")
    try:
        command_argv(settings.command, {"url": "", "host": "", "port": "", "user": "", "password": ""})
    except ValueError as exc:
        raise UsageError(f"miner {exc}") from None
    return settings


def inference_settings(document: dict[str, Any], args: argparse.Namespace) -> InferenceServerSettings | None:
    table = _table(document, "inference", INFERENCE_KEYS, args, INFERENCE_FLAGS)
    if not table:
        return None
    settings = InferenceServerSettings(**table)
    if not settings.ready_timeout > 0 or settings.log_lines < 1:
        raise UsageError("inference ready_timeout must be > 0 and log_lines >= 1")
    try:
        command_argv(settings.command, {})
    except ValueError as exc:
        raise UsageError(f"inference {exc}") from None
    return settings
