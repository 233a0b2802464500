"""Price quotes, the price book's freshness and safe mode, and the CSV price series."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratumkit.power.prices import BadPrice, PriceBook, PriceQuote, parse_update
from stratumkit.power.series import load_price_csv, parse_timestamp

FULL = {"power_usd_per_kwh": 0.05, "hashprice_usd_per_th_day": 0.05, "gpu_usd_per_hour": 0.4}


def test_a_partial_update_keeps_the_rest_and_gpu_prices_go_by_model() -> None:
    base = parse_update(FULL | {"gpu_usd_per_hour_by_model": {"RTX 4090": 0.35}}, None)
    quote = parse_update({"power_usd_per_kwh": -0.01}, base)
    assert (quote.power_usd_per_kwh, quote.hashprice_usd_per_th_day) == (-0.01, 0.05)
    assert quote.gpu_hour("rtx 4090") == 0.35 and quote.gpu_hour("A100") == 0.4 and quote.gpu_hour(None) == 0.4
    assert quote.prices("RTX 4090").gpu_hour_usd == 0.35


@pytest.mark.parametrize(
    ("data", "base", "message"),
    [
        ({"power_usd_per_kwh": 45.0}, FULL, "USD/MWh is 1000 times larger"),
        ({"power_usd_per_kwh": "0.1"}, FULL, "must be a number"),
        ({"power_usd_per_kwh": True}, FULL, "must be a number"),
        ({"hashprice_usd_per_th_day": -1}, FULL, "hashprice_usd_per_th_day must be 0..10"),
        ({"gpu_usd_per_hour": float("nan")}, FULL, "gpu_usd_per_hour must be"),
        ({"power": 0.1}, FULL, "unknown price field"),
        ({"gpu_usd_per_hour_by_model": {"": 1.0}}, FULL, "GPU model -> USD"),
        ([0.1], FULL, "must be a JSON object"),
        ({"power_usd_per_kwh": 0.1}, None, "the first prices need gpu_usd_per_hour, hashprice_usd_per_th_day"),
    ],
)
def test_bad_values_are_refused_with_the_reason(data: object, base: dict[str, float] | None, message: str) -> None:
    with pytest.raises(BadPrice, match=message):
        parse_update(data, None if base is None else parse_update(base, None))


def test_live_prices_go_stale_and_the_book_falls_back_to_the_safe_mode() -> None:
    book = PriceBook(None, max_age_s=60.0, safe_mode="curtail")
    status = book.status(0.0)
    assert (status.quote, status.safe_mode, status.reason) == (None, "curtail", "no prices yet")
    book.update(FULL, "api", 10.0)
    assert book.status(70.0).fresh and book.status(70.0).quote is not None
    stale = book.status(70.5)
    assert stale.quote is None and not stale.fresh and "api are 60 s old (max 60 s)" in (stale.reason or "")
    with pytest.raises(BadPrice):
        book.update({"power_usd_per_kwh": 99}, "api", 80.0)
    assert book.status(80.0).quote is None  # a refused update changes nothing
    assert book.status(80.0).to_dict()["safe_mode_reason"] is not None


def test_constants_never_go_stale() -> None:
    book = PriceBook(PriceQuote(0.05, 0.05, 0.4), max_age_s=1.0, safe_mode="mine")
    assert book.status(1e9).fresh and book.status(1e9).source == "config"


def test_a_csv_series_is_read_and_looked_up_by_time(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "timestamp,power_usd_per_kwh,hashprice_usd_per_th_day\n"
        "2025-01-15T00:00:00Z,0.031,0.052\n"
        "2025-01-15T00:15:00+00:00,0.120,\n"
        "2025-01-15T00:30:00,-0.004,0.05\n"
    )
    series = load_price_csv(path)
    t0 = parse_timestamp("2025-01-15T00:00:00Z")
    assert len(series) == 3 and series.start == t0 and series.end == t0 + 1800
    assert series.rows[1].update == {"power_usd_per_kwh": 0.12}  # an empty cell keeps the previous value
    assert series.index_at(t0 - 1) is None and series.index_at(t0 + 899) == 0 and series.index_at(t0 + 2000) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,power_usd_per_kwh\n", "the header needs timestamp"),
        ("timestamp,power_usd_per_kwh,wind\n", "unknown column"),
        ("timestamp,power_usd_per_kwh\nyesterday,0.1\n", "line 2: timestamp 'yesterday' is not ISO 8601"),
        ("timestamp,power_usd_per_kwh\n2025-01-15T00:00:00+01:00,0.1\n", "must be UTC"),
        ("timestamp,power_usd_per_kwh\n2025-01-15T00:00:00Z,cheap\n", "line 2: power_usd_per_kwh: 'cheap'"),
        ("timestamp,power_usd_per_kwh\n2025-01-15T00:00:00Z,0.1\n2025-01-15T00:00:00Z,0.2\n", "line 3: timestamps"),
        ("timestamp,power_usd_per_kwh\n2025-01-15T00:00:00Z,120\n", "line 2: power_usd_per_kwh must be"),
        ("timestamp,power_usd_per_kwh\n", "at least one row"),
    ],
)
def test_a_bad_csv_names_the_line_and_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(BadPrice, match=message):
        load_price_csv(path)


def test_the_sample_series_in_the_repo_loads() -> None:
    series = load_price_csv(Path(__file__).resolve().parents[2] / "examples" / "prices" / "ercot-like-week.csv")
    assert len(series) > 100
