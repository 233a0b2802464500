"""Operator curtailment: the request's checks, and least efficient rigs shed first."""

from __future__ import annotations

import pytest

from stratumkit.power.curtail import BadCurtail, CurtailRequest, Unit, choose, parse_curtail

# J/TH: old 100, mid 50, new 20; a leased rig; a plain miner
UNITS = [
    Unit("new", "new.w", True, 100e12, 2000.0),
    Unit("old", "old.w", True, 10e12, 1000.0),
    Unit("mid", "mid.w", True, 20e12, 1000.0),
    Unit("leased", "leased.w", True, 1e12, 1000.0, leased=True),
    Unit("plain.1@127.0.0.1:5", "plain.1", False, 1e12, 30.0),
]


def test_a_kw_target_sheds_the_least_efficient_first_until_met() -> None:
    shed = choose(CurtailRequest(kw=1.5), UNITS)
    assert shed.curtailed == ("old", "mid") and shed.shed_kw == 2.0 and shed.target_kw == 1.5
    assert shed.withheld == () and shed.kept_leased == ("leased",)


def test_a_target_beyond_the_fleet_sheds_what_there_is() -> None:
    shed = choose(CurtailRequest(kw=100.0), UNITS)
    assert shed.curtailed == ("old", "mid", "new") and shed.shed_kw == 4.0


def test_a_fraction_is_of_the_fleets_declared_power() -> None:
    shed = choose(CurtailRequest(fraction=0.2), UNITS)  # 20% of 5 kW = 1 kW
    assert shed.curtailed == ("old",) and shed.target_kw == pytest.approx(1.0)


def test_all_includes_plain_miners_as_not_curtailable() -> None:
    shed = choose(CurtailRequest(all=True), UNITS)
    assert set(shed.curtailed) == {"old", "mid", "new"} and shed.withheld == ("plain.1@127.0.0.1:5",)
    assert shed.shed_kw == 4.0 and shed.target_kw == 5.0  # the leased rig's kW was not shed


def test_named_units_by_id_or_worker_and_unknown_names_reported() -> None:
    shed = choose(CurtailRequest(rigs=("new", "plain.1", "nope")), UNITS)
    assert shed.curtailed == ("new",) and shed.withheld == ("plain.1@127.0.0.1:5",) and shed.unknown == ("nope",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "exactly one target"),
        ({"kw": 1, "all": True}, "exactly one target"),
        ({"kw": -1}, "kw must be a positive number"),
        ({"fraction": 1.5}, "fraction must be 0..1"),
        ({"rigs": "r1"}, "rigs must be a non-empty list"),
        ({"all": "yes"}, "all must be true"),
        ({"all": True, "until": 10}, "until must be in the future"),
        ({"all": True, "until": 2000, "duration_s": 5}, "not both"),
        ({"all": True, "force": True}, "unknown field"),
        ({"all": True, "override_leases": "yes"}, "override_leases must be true or false"),
        ("all", "must be a JSON object"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(body: object, message: str) -> None:
    with pytest.raises(BadCurtail, match=message):
        parse_curtail(body, 1000.0)


def test_duration_becomes_an_end_time() -> None:
    assert parse_curtail({"kw": 2, "duration_s": 60}, 1000.0) == CurtailRequest(kw=2.0, until=1060.0)


def test_override_leases_sheds_leased_rigs_like_the_others() -> None:
    shed = choose(CurtailRequest(kw=3.5, override_leases=True), UNITS)
    assert shed.curtailed == ("leased", "old", "mid", "new") and shed.overridden == ("leased",)
    assert shed.kept_leased == () and shed.shed_kw == 5.0
