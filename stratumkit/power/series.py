"""A price series from a CSV file, looked up by time.

The header must hold ``timestamp`` (ISO 8601, UTC: a ``Z`` or ``+00:00`` suffix, or none) and
``power_usd_per_kwh``; ``hashprice_usd_per_th_day`` and ``gpu_usd_per_hour`` are optional (an
empty cell keeps the previous row's value). Timestamps must increase strictly. Every error
names the line and the reason. A row holds from its timestamp until the next row's.
"""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .prices import BadPrice, check_price

__all__ = ["PriceRow", "PriceSeries", "load_price_csv", "parse_timestamp"]

REQUIRED = ("timestamp", "power_usd_per_kwh")
OPTIONAL = ("hashprice_usd_per_th_day", "gpu_usd_per_hour")


def parse_timestamp(text: str) -> float:
    """Unix seconds from an ISO 8601 UTC time; BadPrice for anything else."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadPrice(f"timestamp {text!r} is not ISO 8601 (e.g. 2025-01-15T14:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.utcoffset() != UTC.utcoffset(None):
        raise BadPrice(f"timestamp {text!r} must be UTC")
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class PriceRow:
    at: float  # unix seconds
    update: dict[str, Any]  # the fields this row sets: a partial update for the price book


class PriceSeries:
    def __init__(self, rows: list[PriceRow]) -> None:
        if not rows:
            raise BadPrice("a price series needs at least one row")
        self.rows = rows
        self._times = [row.at for row in rows]

    @property
    def start(self) -> float:
        return self._times[0]

    @property
    def end(self) -> float:
        return self._times[-1]

    def index_at(self, t: float) -> int | None:
        """The row in force at unix time `t` (None before the first)."""
        i = bisect.bisect_right(self._times, t) - 1
        return None if i < 0 else i

    def __len__(self) -> int:
        return len(self.rows)


def load_price_csv(path: str | Path) -> PriceSeries:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise BadPrice(f"cannot read price file {path}: {exc.strerror}") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [h for h in REQUIRED if h not in header]
    if missing:
        raise BadPrice(f"{path}: the header needs {', '.join(missing)} (got {', '.join(header) or 'nothing'})")
    unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
    if unknown:
        raise BadPrice(f"{path}: unknown column(s) {', '.join(unknown)}; known: {', '.join(REQUIRED + OPTIONAL)}")
    rows: list[PriceRow] = []
    for number, raw in enumerate(reader, start=2):
        cells = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        try:
            at = parse_timestamp(cells["timestamp"])
            if rows and at <= rows[-1].at:
                raise BadPrice("timestamps must increase")
            update: dict[str, Any] = {}
            for name in ("power_usd_per_kwh", *OPTIONAL):
                cell = cells.get(name, "")
                if cell:
                    try:
                        value = float(cell)
                    except ValueError:
                        raise BadPrice(f"{name}: {cell!r} is not a number") from None
                    update[name] = check_price(name, value)
            if "power_usd_per_kwh" not in update:
                raise BadPrice("power_usd_per_kwh is empty")
        except BadPrice as exc:
            raise BadPrice(f"{path} line {number}: {exc}") from None
        rows.append(PriceRow(at, update))
    return PriceSeries(rows)
