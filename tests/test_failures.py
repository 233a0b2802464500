"""`failures.find`: an operator's failure is found through trio's exception groups, unless a bug
came with it."""

from __future__ import annotations

import pytest
import trio

from stratumkit import failures
from stratumkit.failures import ConfigError, StartupFailure


async def test_a_failure_raised_deep_in_nested_nurseries_is_found_with_its_exit_code() -> None:
    async def fails() -> None:
        raise StartupFailure("port 1: in use")

    with pytest.raises(BaseExceptionGroup) as caught:
        async with trio.open_nursery() as outer:
            outer.start_soon(trio.sleep_forever)  # cancelled by the failure beside it
            async with trio.open_nursery() as inner:
                inner.start_soon(fails)
    found = failures.find(caught.value)
    assert isinstance(found, StartupFailure) and str(found) == "port 1: in use" and found.exit_code == 1
    assert ConfigError("x").exit_code == 2


def test_a_bug_beside_a_failure_is_not_hidden() -> None:
    group = ExceptionGroup("two", [ConfigError("port must be 0..65535"), RuntimeError("bug")])
    assert failures.find(group) is None
    assert failures.find(RuntimeError("bug")) is None
