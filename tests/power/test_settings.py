"""The [power] table: every mistake is one ConfigError naming the key."""

from __future__ import annotations

import pytest

from stratumkit.power.settings import power_settings
from stratumkit.server.config import ConfigError, load_config


def test_defaults_and_a_full_table() -> None:
    assert power_settings({}).constants is None and power_settings({}).safe_mode == "mine"
    s = power_settings(
        {
            "power_usd_per_kwh": 0.05,
            "hashprice_usd_per_th_day": 0.05,
            "gpu_usd_per_hour": 0.3,
            "min_dwell_s": 600,
            "strike_usd_per_kwh": 0.2,
            "safe_mode": "curtail",
            "price_url": "http://127.0.0.1:9/p",
        }
    )
    assert s.constants is not None and s.policy.min_dwell_s == 600 and s.policy.strike_usd_per_kwh == 0.2
    assert power_settings({}).sla_restart_credit_s == 1.0
    assert power_settings({"sla_restart_credit_s": 10}).sla_restart_credit_s == 10.0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"strik_usd_per_kwh": 0.2}, r"unknown key\(s\) in \[power\]: strik_usd_per_kwh"),
        ({"power_usd_per_kwh": 0.05}, "power: the first prices need gpu_usd_per_hour"),
        ({"min_dwell_s": -1}, "power.min_dwell_s must be >= 0"),
        ({"safe_mode": "hold"}, "power.safe_mode must be one of mine, curtail"),
        ({"policy_interval_s": 0}, "power.policy_interval_s must be > 0"),
        ({"price_url": "ftp://x"}, "power.price_url must be an http"),
        ({"price_file": 3}, "power.price_file must be str"),
        ({"sla_restart_credit_s": -1}, "power.sla_restart_credit_s must be >= 0"),
    ],
)
def test_mistakes_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        power_settings(table)


def test_the_table_is_a_config_key(tmp_path: object) -> None:
    assert load_config(None, power={"safe_mode": "curtail"}).power == {"safe_mode": "curtail"}
    with pytest.raises(ConfigError, match="config key 'power' must be dict"):
        load_config(None, power="curtail")
