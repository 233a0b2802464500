"""Pool configuration: defaults, a TOML file, and command-line overrides, in that order.

Every key of the TOML file is a field of `PoolConfig` (same name); unknown keys are an error, so a
typo never silently falls back to a default. Every key is also a flag of `stratumkit serve`
(`--key-name`), made from `config_keys()`: a new field gets its flag with no other change, and
its help from `KEY_HELP` when it has a line there.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from stratumkit.failures import ConfigError
from stratumkit.server.logs import LOG_LEVELS

__all__ = ["KEY_HELP", "ConfigError", "ConfigKey", "PoolConfig", "config_keys", "flag_of", "load_config"]


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
    api_tls: bool = False  # the HTTP API over HTTPS, with tls_cert and tls_key
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
    node_wait: bool = False  # a node that does not answer at start: serve and retry instead of exiting
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
    lease_resume_grace: float = 60.0  # after a restart, a leased rig has this long to resume its stint
    check_jobs: bool = True  # refuse (400) a job no rig would run: kind, OpenAI shape, the leases' models
    rig_secret: str | None = None  # when set (or rig_secrets), a rig must present its secret to register
    rig_secrets: dict[str, str] | None = None  # rig id -> that rig's own secret
    integrator_tokens: dict[str, str] | None = None  # integrator name -> API token; leases belong to their maker
    queue_url: str | None = None  # None: SQLite in data_dir ; redis://host:port/db for Redis
    lease_plane: str | None = None  # a name: front ends with it (and one Redis queue_url) share one lease plane
    job_result_ttl: float = 7 * 24 * 3600.0  # seconds a finished job's result is kept (0: forever)
    # per-worker earnings (stratumkit.shares.payouts): /v1/reports/daily and `stratumkit report daily`
    payout_scheme: str = "pplns"  # pplns | fpps
    pplns_window: float = 2.0  # PPLNS pays the last N x network difficulty of share difficulty
    pool_fee: float = 0.0  # the fraction of every reward the pool keeps
    # prices, the dual-mode policy and curtailment: a [power] table (stratumkit.power.settings)
    power: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> PoolConfig:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.api_port is not None and not 0 <= self.api_port <= 65535:
            raise ConfigError(f"api_port must be 0..65535, got {self.api_port}")
        if self.tls_port is not None and not 0 <= self.tls_port <= 65535:
            raise ConfigError(f"tls_port must be 0..65535, got {self.tls_port}")
        for user in ("tls_port", "api_tls"):
            if getattr(self, user) in (None, False):
                continue
            for key in ("tls_cert", "tls_key"):
                path = getattr(self, key)
                if path is None:
                    raise ConfigError(f"{user} needs {key}: the path of a PEM file")
                if not Path(path).is_file():
                    why = "not a file" if Path(path).exists() else "no such file"
                    raise ConfigError(f"{key}: {why}: {path}")
        if not 0 < self.min_difficulty <= self.start_difficulty <= self.max_difficulty:
            raise ConfigError("need 0 < min_difficulty <= start_difficulty <= max_difficulty")
        if not self.job_result_ttl >= 0:
            raise ConfigError(
                f"job_result_ttl must be >= 0 seconds (0: keep results forever), got {self.job_result_ttl}"
            )
        if not 2 <= self.extranonce2_size <= 16:
            raise ConfigError("extranonce2_size must be 2..16 (what miners accept)")
        if not 0 <= self.instance_id <= 255:
            raise ConfigError("instance_id must be 0..255")
        if self.log_format not in ("console", "json"):
            raise ConfigError(f"log_format must be 'console' or 'json', got {self.log_format!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
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
        if self.payout_scheme not in ("pplns", "fpps"):
            raise ConfigError(f"payout_scheme must be 'pplns' or 'fpps', got {self.payout_scheme!r}")
        if not 0 <= self.pool_fee < 1:
            raise ConfigError(f"pool_fee must be a fraction in [0, 1), got {self.pool_fee}")
        for key in _POSITIVE:
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be positive, got {getattr(self, key)}")
        if self.queue_url is not None and not self.queue_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"queue_url must be a redis://, rediss:// or unix:// URL, got {self.queue_url!r}")
        if self.lease_plane is not None:
            if self.queue_url is None:
                raise ConfigError("lease_plane needs a Redis queue_url: the front ends share the plane through it")
            if not self.lease_plane or not all(c.isalnum() or c in "_.-" for c in self.lease_plane):
                raise ConfigError(
                    f"lease_plane must be a name of letters, digits, '_', '.' and '-', got {self.lease_plane!r}"
                )
        for key in ("rig_secrets", "integrator_tokens"):  # name -> secret tables
            table = getattr(self, key) or {}
            if not all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in table.items()):
                raise ConfigError(f"{key} maps names to non-empty strings")
        tokens = list((self.integrator_tokens or {}).values()) + ([self.api_token] if self.api_token else [])
        if len(set(tokens)) != len(tokens):
            raise ConfigError("every integrator token (and api_token) must be different")
        return self

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Keys whose value must be above zero (durations, sizes, rates).
_POSITIVE = (
    "pplns_window",
    "embedded_difficulty",
    "template_refresh",
    "node_poll_interval",
    "node_retry_max",
    "stale_window",
    "share_interval",
    "retarget_time",
    "max_line_length",
    "rig_max_line_length",
    "handshake_timeout",
    "idle_timeout",
    "send_timeout",
    "max_invalid_shares",
    "lease_drain_timeout",
    "lease_return_timeout",
)

_FIELDS = {f.name for f in fields(PoolConfig)} - {"extra"}
_TYPES = get_type_hints(PoolConfig)

#: What a key means, shown by `stratumkit serve --help` beside its flag.
KEY_HELP: dict[str, str] = {
    "host": "address to listen on for miners",
    "port": "stratum port",
    "api_host": "HTTP API address",
    "api_port": "HTTP API port (0 picks a free one)",
    "api_token": "require Authorization: Bearer <token> on the API's /v1 routes (a flag shows in ps: prefer the file)",
    "tls_port": "TLS stratum port beside the plain one (conventionally 3443); needs tls_cert and tls_key",
    "tls_cert": "PEM certificate chain for TLS (read again on SIGHUP)",
    "tls_key": "PEM private key for TLS (read again on SIGHUP)",
    "api_tls": "serve the HTTP API over HTTPS, with tls_cert and tls_key",
    "data_dir": "where the share log, blocks and chain state live",
    "node_url": "bitcoind JSON-RPC URL, e.g. http://user:pass@127.0.0.1:8332 (default: embedded chain)",
    "node_cookie": "bitcoind .cookie file for RPC auth",
    "network": "mainnet | testnet | signet | regtest (address encoding)",
    "payout_address": "address the coinbase pays",
    "solo": "pay each worker's own address (worker name = address.worker)",
    "node_wait": "a node that does not answer at start: serve and keep retrying instead of exiting 1",
    "pool_tag": "text in the coinbase scriptSig",
    "start_difficulty": "first share difficulty of a miner",
    "min_difficulty": "lowest share difficulty",
    "max_difficulty": "highest share difficulty",
    "share_interval": "vardiff aims at one share per this many seconds",
    "embedded_difficulty": "block difficulty of the embedded chain",
    "max_connections_per_ip": "connections one IP address may hold",
    "instance_id": "extranonce1 prefix byte of this pool process (0..255)",
    "log_format": "console | json",
    "log_level": " | ".join(LOG_LEVELS),
    "payout_scheme": "how workers are paid in the daily report: pplns or fpps",
    "pplns_window": "PPLNS window: this many times the network difficulty of share difficulty (default 2)",
    "pool_fee": "fraction of every reward the pool keeps, 0 <= fee < 1 (default 0)",
    "queue_url": "inference queue engine: redis://host:port/db (default: SQLite in data_dir)",
    "lease_plane": "share one lease plane (rigs, leases, events) with every front end of this name on queue_url",
    "job_result_ttl": "seconds a finished job and its result are kept, then forgotten (default a week; 0: forever)",
    "lease_drain_timeout": "seconds a diverted rig has to say it serves",
    "lease_return_timeout": "seconds a returning rig has to say it mines again",
    "lease_resume_grace": "seconds a leased rig has after a pool restart to resume its stint",
    "check_jobs": "refuse (400) a job no rig would run: its kind, OpenAI shape and the leases' models",
    "rig_secret": "the secret every rig presents to register (a fleet secret)",
    "rig_secrets": "a rig's own secret, RIG_ID=SECRET (once per rig)",
    "integrator_tokens": "an integrator's API token, NAME=TOKEN (once per integrator); leases belong to their maker",
}


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One key of the configuration, as a flag sees it."""

    name: str
    kind: type  # int, float, str, bool or dict[str, str]: what the flag's text is read as
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return flag_of(self.name)


def flag_of(key: str) -> str:
    """The `stratumkit serve` flag of a key: node_url -> --node-url."""
    return "--" + key.replace("_", "-")


def config_keys() -> list[ConfigKey]:
    """Every key of `PoolConfig` that a flag can give, in the order the class declares them (not
    `power`: a TOML table of its own keys, `stratumkit.power.settings`)."""
    keys = []
    for f in fields(PoolConfig):
        if f.name in ("extra", "power"):
            continue
        hint = _TYPES[f.name]
        kind = next(k for k in (get_args(hint) or (hint,)) if k is not type(None))
        keys.append(ConfigKey(f.name, kind, f.default, KEY_HELP.get(f.name, "")))
    return keys


def load_config(path: str | Path | None = None, **overrides: Any) -> PoolConfig:
    """Defaults, then the TOML file (flat keys, or under a [pool] table), then overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"--config {path}: cannot read it ({exc.strerror})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--config {path}: not valid TOML ({exc})") from None
        if "pool" in data:
            stray = sorted(set(data) - {"pool"})
            if stray:
                raise ConfigError(f"keys outside the [pool] table in {path}: {', '.join(stray)}")
            data = data["pool"]
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise ConfigError(f"unknown config key(s) in {path}: {', '.join(_suggest(key) for key in unknown)}")
        values.update(data)
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key, value in values.items():
        _check_type(key, value)
    try:
        config = PoolConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
    return config.validate()


def _suggest(key: str) -> str:
    """An unknown key, with the known one it is probably a typo of."""
    close = difflib.get_close_matches(key, _FIELDS, n=1)
    return f"{key} (did you mean {close[0]}?)" if close else key


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
