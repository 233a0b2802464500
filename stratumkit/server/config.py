"""Pool configuration: defaults, a TOML file, and command-line overrides, in that order.

Every key of the TOML file is a field of `PoolConfig` (same name); unknown keys are an error, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """The configuration is invalid; the message says which key and why."""


@dataclass(slots=True)
class PoolConfig:
    # listening
    host: str = "0.0.0.0"
    port: int = 3333
    api_host: str = "127.0.0.1"
    api_port: int | None = 8080
    api_token: str | None = None  # when set, the HTTP API wants "Authorization: Bearer <token>"
    tls_port: int | None = None  # a TLS stratum listener beside the plain one (conventionally 3443)
    tls_cert: str | None = None  # PEM certificate chain for tls_port
    tls_key: str | None = None  # PEM private key for tls_port
    # where state lives (share log, blocks, embedded chain)
    data_dir: str = "var/stratumkit"
    # work
    node_url: str | None = None  # http://user:pass@host:port ; None: the embedded chain
    node_cookie: str | None = None  # path to bitcoind's .cookie file
    network: str = "regtest"  # mainnet | testnet | regtest: how payout addresses are encoded
    payout_address: str | None = None  # None on the embedded chain pays an anyone-can-spend script
    solo: bool = False  # pay the worker name's address instead of payout_address
    pool_tag: str = "/stratumkit/"
    embedded_difficulty: float = 0.01
    embedded_filler_transactions: int = 0
    template_refresh: float = 30.0
    node_poll_interval: float = 1.0
    node_retry_max: float = 10.0  # longest wait between attempts while the node is unreachable
    stale_window: float = 120.0
    extranonce2_size: int = 4
    instance_id: int = 0  # extranonce1 prefix byte; give each pool process its own
    # difficulty
    start_difficulty: float = 0.001
    min_difficulty: float = 1e-6
    max_difficulty: float = 2.0**40
    share_interval: float = 10.0
    retarget_time: float = 60.0
    version_mask: int = 0x1FFFE000  # BIP320 general-purpose bits
    # connections
    max_line_length: int = 16 * 1024
    rig_max_line_length: int = 16 * 1024 * 1024  # registered rigs send inference results over stratum
    handshake_timeout: float = 30.0
    idle_timeout: float = 600.0
    send_timeout: float = 15.0
    send_queue: int = 256
    max_connections_per_ip: int = 64
    max_invalid_shares: int = 100  # bad messages among the last 2x this many: then the connection is dropped
    # an address whose connections are dropped for floods or protocol errors ban_after times
    # within ban_window seconds is refused for ban_time seconds (0: never)
    ban_after: int = 5
    ban_window: float = 60.0
    ban_time: float = 60.0
    # at shutdown miners are sent client.reconnect: to this host and port (default: the address
    # each one connected to), after this many seconds (negative: send nothing)
    reconnect_host: str | None = None
    reconnect_port: int | None = None
    reconnect_wait: float = 2.0
    # logs
    log_format: str = "console"  # console | json
    log_level: str = "info"
    # lease extension (rigs)
    lease_drain_timeout: float = 10.0  # a diverted rig must say it serves within this
    lease_return_timeout: float = 10.0  # a returning rig must say it mines again within this
    queue_url: str | None = None  # None: SQLite in data_dir ; redis://host:port/db for Redis
    # prices, the dual-mode policy and curtailment: a [power] table (stratumkit.power.settings)
    power: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> PoolConfig:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.tls_port is not None:
            if not 0 <= self.tls_port <= 65535:
                raise ConfigError(f"tls_port must be 0..65535, got {self.tls_port}")
            for key in ("tls_cert", "tls_key"):
                path = getattr(self, key)
                if path is None:
                    raise ConfigError(f"tls_port needs {key}: the path of a PEM file")
                if not Path(path).is_file():
                    raise ConfigError(f"{key}: no such file: {path}")
        if not 0 < self.min_difficulty <= self.start_difficulty <= self.max_difficulty:
            raise ConfigError("need 0 < min_difficulty <= start_difficulty <= max_difficulty")
        if not 2 <= self.extranonce2_size <= 16:
            raise ConfigError("extranonce2_size must be 2..16 (what miners accept)")
        if not 0 <= self.instance_id <= 255:
            raise ConfigError("instance_id must be 0..255")
        if self.log_format not in ("console", "json"):
            raise ConfigError("log_format must be 'console' or 'json'")
        if self.network not in ("mainnet", "testnet", "regtest", "signet"):
            raise ConfigError("network must be mainnet, testnet, signet or regtest")
        if self.solo and self.payout_address:
            raise ConfigError("solo mode pays each worker's own address: leave payout_address unset")
        if self.node_url is not None and not (self.payout_address or self.solo):
            raise ConfigError("mining against a node needs payout_address (or solo = true)")
        if self.reconnect_port is not None and not 1 <= self.reconnect_port <= 65535:
            raise ConfigError(f"reconnect_port must be 1..65535, got {self.reconnect_port}")
        if self.reconnect_host == "":
            raise ConfigError("reconnect_host must be a host name or address (leave it unset for the miner's own)")
        if self.ban_after < 1 or self.ban_window <= 0 or self.ban_time < 0:
            raise ConfigError("need ban_after >= 1, ban_window > 0 and ban_time >= 0 (0: never ban)")
        if self.max_connections_per_ip < 1 or self.send_queue < 1:
            raise ConfigError("max_connections_per_ip and send_queue must be positive")
        return self

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = {f.name for f in fields(PoolConfig)} - {"extra"}


def load_config(path: str | Path | None = None, **overrides: Any) -> PoolConfig:
    """Defaults, then the TOML file (flat keys, or under a [pool] table), then overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        if "pool" in data:
            stray = sorted(set(data) - {"pool"})
            if stray:
                raise ConfigError(f"keys outside the [pool] table in {path}: {', '.join(stray)}")
            data = data["pool"]
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise ConfigError(f"unknown config key(s) in {path}: {', '.join(unknown)}")
        values.update(data)
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key, value in values.items():
        _check_type(key, value)
    try:
        config = PoolConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
    return config.validate()


_TYPES = get_type_hints(PoolConfig)


def _check_type(key: str, value: Any) -> None:
    """A config value must have its field's type (an int is fine where a float is wanted)."""
    hint = _TYPES.get(key)
    allowed = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return
    for kind in allowed:
        origin = get_origin(kind) or kind
        if origin is float and type(value) in (int, float):
            return
        if isinstance(origin, type) and type(value) is not bool and isinstance(value, origin):
            return
        if origin is bool and type(value) is bool:
            return
    names = " or ".join(getattr(get_origin(k) or k, "__name__", str(k)) for k in allowed if k is not type(None))
    raise ConfigError(f"config key {key!r} must be {names}, got {type(value).__name__} {value!r}")
