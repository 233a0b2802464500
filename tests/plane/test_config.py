"""`lease_plane` in the configuration: it needs a Redis queue_url and a plain name; a [power]
table goes with it (the plane's leader runs the power layer)."""

from __future__ import annotations

import pytest

from stratumkit.failures import ConfigError
from stratumkit.server.config import PoolConfig, config_keys

REDIS = "redis://127.0.0.1:6379/0"


def test_a_lease_plane_is_a_flag_and_validates() -> None:
    assert "--lease-plane" in {key.flag for key in config_keys()}
    assert PoolConfig(queue_url=REDIS, lease_plane="main-1.a").validate().lease_plane == "main-1.a"
    assert PoolConfig().validate().lease_plane is None  # by default each pool process is alone
    power = {"safe_mode": "mine"}
    assert PoolConfig(queue_url=REDIS, lease_plane="main", power=power).validate().power == power


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lease_plane": "main"}, "needs a Redis queue_url"),
        ({"lease_plane": "a b", "queue_url": REDIS}, "lease_plane must be a name"),
        ({"lease_plane": "", "queue_url": REDIS}, "lease_plane must be a name"),
    ],
)
def test_a_bad_lease_plane_is_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PoolConfig(**values).validate()  # type: ignore[arg-type]
