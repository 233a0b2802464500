"""The replay on three fixed series (a spike, a negative-price stretch, an oscillation around a
break-even price), against golden files: the policy nets at least as much as each naive strategy
with every switch's cost counted, and no rig switches more than twice on the oscillation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stratumkit.power.plot import PlotError, plot_replay
from stratumkit.power.series import load_price_csv
from stratumkit.power.settings import power_settings
from stratumkit.power.simulate import load_fleet, simulate
from stratumkit.server.config import ConfigError
from tests.support.processes import REPO, child_env, cli_command

SERIES = REPO / "examples" / "prices"
GOLDEN = Path(__file__).parent / "golden"
POLICY = {
    "hashprice_usd_per_th_day": 0.05,
    "gpu_usd_per_hour": 0.35,
    "power_usd_per_kwh": 0.05,
    "min_dwell_s": 1800,
    "switch_cost_usd": 0.05,
    "payback_s": 7200,  # with 3600 the policy nets 0.08 USD less than always_ai on the negative series
}


@pytest.mark.parametrize("name", ["spike", "negative", "oscillation"])
def test_the_policy_beats_the_naive_strategies_and_matches_its_golden_file(name: str) -> None:
    results = simulate(
        load_price_csv(SERIES / f"{name}.csv"), load_fleet(GOLDEN / "fleet.toml"), power_settings(POLICY)
    )
    got = {r.name: r.to_dict() for r in results}
    assert got == json.loads((GOLDEN / f"{name}.json").read_text())
    policy = got["policy"]["net_usd"]
    for naive in ("always_mine", "always_ai", "strike_only"):
        assert policy >= got[naive]["net_usd"], (naive, got)
    assert got["perfect_foresight"]["net_usd"] >= policy
    if name == "oscillation":
        assert got["policy"]["most_switches_per_rig"] <= 2
        assert got["strike_only"]["most_switches_per_rig"] > 2  # the strike alone flaps


def test_the_command_prints_the_table_and_json(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[power]\n" + "".join(f"{k} = {v}\n" for k, v in POLICY.items()))
    args = ["simulate", "--prices", str(SERIES / "spike.csv"), "--fleet", str(GOLDEN / "fleet.toml")]
    done = subprocess.run(cli_command(*args, "--policy", str(policy), "--json"), env=child_env(), capture_output=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["rows"] == 96 and [r["strategy"] for r in out["results"]][:2] == ["policy", "always_mine"]
    table = subprocess.run(cli_command(*args, "--policy", str(policy)), env=child_env(), capture_output=True, text=True)
    assert table.returncode == 0 and "strike_only" in table.stdout and "net_usd" in table.stdout


def test_a_bad_fleet_is_one_line_naming_the_rig(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text("[[rig]]\nname = 'x'\npower_w = 10\n")
    with pytest.raises(ConfigError, match="rig 1: missing hashrate_th"):
        load_fleet(fleet)
    fleet.write_text("[[rig]]\nhashrate_th = 1\npower_w = 10\nwatts = 3\n")
    with pytest.raises(ConfigError, match="rig 1: unknown key"):
        load_fleet(fleet)


def test_the_timeline_adds_up_to_the_totals() -> None:
    fleet = load_fleet(GOLDEN / "fleet.toml")
    results = simulate(load_price_csv(SERIES / "spike.csv"), fleet, power_settings(POLICY))
    for result in results:
        assert len(result.cumulative_net_usd) == len(result.modes) == 96
        assert result.cumulative_net_usd[-1] == pytest.approx(result.net_usd, abs=1e-9)
        assert all(sum(step.values()) == len(fleet) for step in result.modes)
    policy = results[0]
    assert len({tuple(step.items()) for step in policy.modes}) > 1  # the policy changed modes on the spike


def test_plot_writes_a_png_and_a_bad_path_is_one_line(tmp_path: Path) -> None:
    png = tmp_path / "replay.png"
    policy = tmp_path / "policy.toml"
    policy.write_text("[power]\n" + "".join(f"{k} = {v}\n" for k, v in POLICY.items()))
    args = ["simulate", "--prices", str(SERIES / "spike.csv"), "--fleet", str(GOLDEN / "fleet.toml")]
    args += ["--policy", str(policy)]
    done = subprocess.run(cli_command(*args, "--plot", str(png)), env=child_env(), capture_output=True)
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    bad = subprocess.run(
        cli_command(*args, "--plot", str(tmp_path / "no" / "such" / "dir.png")), env=child_env(), capture_output=True
    )
    assert bad.returncode == 2
    (line,) = bad.stdout.decode().splitlines()
    assert line.startswith("stratumkit simulate: cannot write ") and "dir.png" in line


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(PlotError, match=r"pip install 'stratumkit\[plot\]'"):
        plot_replay(tmp_path / "x.png", [], [])
    assert not (tmp_path / "x.png").exists()
