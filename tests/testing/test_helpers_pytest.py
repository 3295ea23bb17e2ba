"""The pytest side of ``resilience_django.testing``: fixtures, reset, clock, switch, breakers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import AsyncClient, Client, override_settings

from resilience_django.breakers.registry import get_breaker
from resilience_django.retrying.budget import budget_for
from resilience_django.runtime import get_runtime
from resilience_django.testing import (
    ManualClock,
    disable_limits,
    force_closed,
    force_open,
    reset,
    trip,
    use_clock,
)

TWO_PER_MINUTE = {"LIMITS": [{"name": "two", "path": "/hello/", "key": "ip", "rate": "2/m"}]}
ONE_PER_MINUTE = {"LIMITS": [{"name": "one", "path": "/hello/", "key": "ip", "rate": "1/m"}]}
SHORT_BREAKER = {"BREAKERS": {"helpers-dep": {"failure_threshold": 2, "open_for": "30s"}}}
IP = "10.77.0.1"


def codes(client: Client, n: int, path: str = "/hello/") -> list[int]:
    return [client.get(path, REMOTE_ADDR=IP).status_code for _ in range(n)]


@override_settings(RESILIENCE=TWO_PER_MINUTE)
def test_reset_gives_back_a_spent_quota(
    client: Client, resilience_reset: Callable[[], None]
) -> None:
    assert codes(client, 3) == [200, 200, 429]
    resilience_reset()
    assert codes(client, 1) == [200]


def test_override_settings_of_resilience_starts_from_fresh_counts(client: Client) -> None:
    with override_settings(RESILIENCE=TWO_PER_MINUTE):
        assert codes(client, 3) == [200, 200, 429]
    # The same rule again, as in the next test of a suite: no quota left over.
    with override_settings(RESILIENCE=TWO_PER_MINUTE):
        assert codes(client, 2) == [200, 200]


@override_settings(RESILIENCE=ONE_PER_MINUTE)
def test_clock_moves_a_limit_window(client: Client, resilience_clock: ManualClock) -> None:
    assert codes(client, 2) == [200, 429]
    resilience_clock.advance(30)
    assert codes(client, 1) == [429]
    resilience_clock.advance(31)
    assert codes(client, 1) == [200]


@override_settings(RESILIENCE=SHORT_BREAKER)
def test_clock_moves_a_tripped_breaker_to_half_open(
    client: Client, resilience_clock: ManualClock
) -> None:
    breaker = trip("helpers-dep")
    assert breaker.state == "open"
    assert client.get("/dependency/?name=helpers-dep").status_code == 503
    resilience_clock.advance(29)
    assert client.get("/dependency/?name=helpers-dep").status_code == 503
    resilience_clock.advance(2)
    answer = client.get("/dependency/?name=helpers-dep")
    assert answer.status_code == 200 and answer.content == b"called"


@override_settings(RESILIENCE={"DEADLINE": {"ROUTES": {"/budget/": "800ms"}}})
def test_deadline_runs_on_the_clock(client: Client, resilience_clock: ManualClock) -> None:
    # Frozen: the view sees the whole budget, to the microsecond.
    assert client.get("/budget/").json()["remaining"] == pytest.approx(0.8, abs=1e-9)


def test_use_clock_puts_the_real_clock_back() -> None:
    with use_clock() as clock:
        breaker = force_open("helpers-dep")
        clock.advance(3600)
    # The state taken on the hand clock is gone with it.
    assert breaker.state == "closed"
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)


def test_force_open_and_force_closed(client: Client) -> None:
    force_open("helpers-dep")
    assert client.get("/dependency/?name=helpers-dep").status_code == 503
    force_closed("helpers-dep")
    assert client.get("/dependency/?name=helpers-dep").status_code == 200


@override_settings(RESILIENCE={"BREAKERS": {"helpers-off": {"mode": "disabled"}}})
def test_trip_refuses_a_breaker_that_cannot_open() -> None:
    with pytest.raises(ValueError, match=r"its mode is 'disabled'"):
        trip("helpers-off")


def test_changing_resilience_settings_closes_breakers() -> None:
    breaker = force_open("helpers-dep")
    with override_settings(RESILIENCE=SHORT_BREAKER):
        assert breaker.state == "closed"
        assert get_breaker("helpers-dep") is breaker  # decorators keep their reference


@override_settings(RESILIENCE=ONE_PER_MINUTE, ROOT_URLCONF="tests.testing.views")
def test_disabled_limits_admit_everything(client: Client, resilience_disabled: None) -> None:
    assert codes(client, 5) == [200] * 5
    assert codes(client, 3, "/decorated/") == [200] * 3


@override_settings(RESILIENCE=ONE_PER_MINUTE, ROOT_URLCONF="tests.testing.views")
def test_limits_are_back_after_disable_limits(client: Client) -> None:
    with disable_limits():
        assert codes(client, 2) == [200, 200]
        assert codes(client, 2, "/decorated/") == [200, 200]
    assert codes(client, 2) == [200, 429]
    assert codes(client, 2, "/decorated/") == [200, 429]


def test_disable_limits_holds_inside_override_settings(client: Client) -> None:
    with disable_limits(), override_settings(RESILIENCE=ONE_PER_MINUTE):
        assert codes(client, 3) == [200] * 3


@override_settings(
    RESILIENCE={"SHEDDING": [{"name": "helpers-shed", "path": "/hello/", "max_concurrent": 1}]}
)
def test_disable_limits_turns_shedding_off() -> None:
    assert get_runtime().shedder is not None
    with disable_limits():
        assert get_runtime().shedder is None
    assert get_runtime().shedder is not None


@override_settings(RESILIENCE=ONE_PER_MINUTE)
@disable_limits()
async def test_disable_limits_decorates_async_tests(async_client: AsyncClient) -> None:
    answers = [(await async_client.get("/hello/", REMOTE_ADDR=IP)).status_code for _ in range(3)]
    assert answers == [200] * 3


def test_unbalanced_enable_is_refused() -> None:
    from resilience_django.switch import limits_enabled, set_limits_enabled

    with pytest.raises(RuntimeError):
        set_limits_enabled(True)
    assert limits_enabled()


def test_reset_refills_retry_budgets_in_place() -> None:
    budget = budget_for("helpers-target", 0.0, min_per_second=0.1)  # one retry per 10 s
    assert budget.try_withdraw()
    assert not budget.try_withdraw()
    reset()
    assert budget_for("helpers-target") is budget
    assert budget.try_withdraw()
