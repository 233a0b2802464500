"""Pool URLs and the failover plan: what the agent connects to next, and after how long."""

from __future__ import annotations

import pytest

from stratumkit.agent.backoff import Backoff
from stratumkit.agent.pools import REDIRECT_RETRY_S, REDIRECT_TRIES, PoolEndpoint, PoolPlan, parse_pool_url

A, B = PoolEndpoint("a", 1), PoolEndpoint("b", 2, tls=True)


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("127.0.0.1:3333", PoolEndpoint("127.0.0.1", 3333)),
        ("stratum+tcp://pool.example:3333", PoolEndpoint("pool.example", 3333)),
        ("stratum+ssl://pool.example:3443/", PoolEndpoint("pool.example", 3443, tls=True)),
        ("stratum+tcp://[::1]:3333", PoolEndpoint("::1", 3333)),
    ],
)
def test_pool_urls_parse(text: str, endpoint: PoolEndpoint) -> None:
    assert parse_pool_url(text) == endpoint


@pytest.mark.parametrize("text", ["pool.example", "http://pool:80", "stratum+tcp://:3333", "h:0", "h:99999", "h:x"])
def test_bad_pool_urls_say_what_is_wrong(text: str) -> None:
    with pytest.raises(ValueError, match="pool URL"):
        parse_pool_url(text)


def test_failover_goes_down_the_list_then_backs_off_per_round() -> None:
    plan = PoolPlan([A, B], Backoff(1, 4))
    tries = []
    for _ in range(6):
        attempt = plan.next_attempt()
        tries.append((attempt.endpoint.host, attempt.delay))
        plan.failed(worked=False)
    assert tries == [("a", 0), ("b", 0), ("a", 1), ("b", 0), ("a", 2), ("b", 0)]


def test_a_lost_fallback_starts_again_from_the_first_pool_with_no_wait() -> None:
    plan = PoolPlan([A, B])
    plan.next_attempt()
    plan.failed(worked=False)
    assert plan.next_attempt().endpoint == B
    plan.connected()
    assert plan.probe_primary
    plan.failed(worked=True)
    attempt = plan.next_attempt()
    assert (attempt.endpoint, attempt.delay) == (A, 0)
    assert not plan.probe_primary


def test_client_reconnect_is_followed_exactly_and_a_target_not_back_yet_is_retried_without_backoff() -> None:
    plan = PoolPlan([A, B], Backoff(1, 4))
    plan.next_attempt()
    plan.connected()
    plan.follow_reconnect(A, "c", 9, 2.5)
    plan.failed(worked=True)
    attempt = plan.next_attempt()
    assert (attempt.endpoint, attempt.delay, attempt.redirected) == (PoolEndpoint("c", 9), 2.5, True)
    tries = []
    for _ in range(REDIRECT_TRIES):
        plan.failed(worked=False)  # nobody at c:9 yet
        attempt = plan.next_attempt()
        tries.append((attempt.endpoint, attempt.delay))
    assert tries[:-1] == [(PoolEndpoint("c", 9), REDIRECT_RETRY_S)] * (REDIRECT_TRIES - 1)
    assert tries[-1] == (A, 0)  # it never came back: the configured list again
    plan.follow_reconnect(B, None, None, None)  # the same address, at once, TLS kept
    assert plan.next_attempt() == type(attempt)(B, 0.0, redirected=True)


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    backoff = Backoff(0.5, 3)
    assert [backoff.next_delay() for _ in range(4)] == [0.5, 1, 2, 3]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    with pytest.raises(ValueError):
        Backoff(0, 1)
