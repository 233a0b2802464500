"""`stratumkit simulate --plot FILE`: a PNG of a replay, three panels over the series' time (UTC):
the power price, the policy's rigs by mode (stacked), and every strategy's cumulative net USD.

matplotlib is the optional ``plot`` extra; without it `plot_replay` raises `PlotError` saying how
to install it (the command prints that one line and exits 2). The Agg backend draws without a
display.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .prices import PriceQuote
    from .simulate import StrategyResult

__all__ = ["PlotError", "plot_replay"]

_MODE_COLOURS = {"mine": "#e69f00", "serve_ai": "#0072b2", "curtail": "#999999"}


class PlotError(Exception):
    """The plot cannot be drawn: matplotlib is missing, or the file cannot be written."""


def plot_replay(
    path: str | Path, steps: Sequence[tuple[float, float, PriceQuote]], results: Sequence[StrategyResult]
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install 'stratumkit[plot]'") from None
    times = [datetime.fromtimestamp(start, UTC) for start, _, _ in steps]
    figure, (price, modes, net) = plt.subplots(3, 1, sharex=True, figsize=(11, 8), constrained_layout=True)
    price.step(times, [quote.power_usd_per_kwh for _, _, quote in steps], where="post", color="black")
    price.set_ylabel("power USD/kWh")
    price.axhline(0.0, color="grey", linewidth=0.5)
    policy = next(r for r in results if r.name == "policy")
    names = list(_MODE_COLOURS)
    modes.stackplot(
        times,
        [[step[m] for step in policy.modes] for m in names],
        labels=names,
        colors=[_MODE_COLOURS[m] for m in names],
        step="post",
    )
    modes.set_ylabel("policy: rigs by mode")
    modes.legend(loc="upper right", fontsize="small")
    for result in results:
        net.plot(times, result.cumulative_net_usd, label=result.name, linewidth=2 if result.name == "policy" else 1)
    net.set_ylabel("cumulative net USD")
    net.set_xlabel("time (UTC)")
    net.legend(loc="upper left", fontsize="small")
    try:
        figure.savefig(path, dpi=100)
    except OSError as exc:
        raise PlotError(f"cannot write {path}: {exc}") from None
    finally:
        plt.close(figure)
