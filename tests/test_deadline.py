from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import resilience_django
from resilience_django import deadline as deadline_module
from resilience_django import deadline_policy as deadline_policy_module
from resilience_django.clock import ManualClock
from resilience_django.deadline import (
    Deadline,
    DeadlineExceeded,
    _current,
    check,
    current,
    format_grpc_timeout,
    parse_grpc_timeout,
    parse_timeout_ms,
    remaining,
)
from resilience_django.deadline_policy import DeadlinePolicy, DeadlineSettings, RouteBudget
from resilience_django.routes import RouteMatcher


def test_budget_counts_down_with_the_clock() -> None:
    clock = ManualClock(100.0)
    dl = Deadline(0.5, clock=clock)
    assert dl.remaining() == pytest.approx(0.5)
    clock.advance(0.2)
    assert dl.remaining() == pytest.approx(0.3)
    assert not dl.expired()
    clock.advance(0.3)
    assert dl.expired()


def test_tighten_only_ever_shortens_and_counts_from_arrival() -> None:
    clock = ManualClock()
    dl = Deadline(1.0, clock=clock, route="default")
    clock.advance(0.1)
    dl.tighten(5.0, route="loose")
    assert dl.budget == 1.0 and dl.route == "default"
    dl.tighten(0.3, route="tight")
    assert dl.remaining() == pytest.approx(0.2)
    assert dl.route == "tight"


def test_remaining_and_current_are_none_outside_a_request() -> None:
    assert remaining() is None
    assert current() is None
    check()  # no deadline, nothing to raise


def test_check_raises_once_the_budget_is_spent() -> None:
    clock = ManualClock()
    token = _current.set(Deadline(0.1, clock=clock))
    try:
        check()
        clock.advance(0.1)
        with pytest.raises(DeadlineExceeded):
            check()
    finally:
        _current.reset(token)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("250m", 0.25), ("1S", 1.0), ("2M", 120.0), ("1H", 3600.0), ("500u", 0.0005), ("7n", 7e-9)],
)
def test_grpc_timeout_values_parse(value: str, seconds: float) -> None:
    assert parse_grpc_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "250", "m", "123456789m", "-1S", "1.5S", "1s ms", "1x"])
def test_malformed_grpc_timeout_is_none(value: str) -> None:
    assert parse_grpc_timeout(value) is None


@pytest.mark.parametrize(
    ("value", "seconds"), [("150", 0.15), ("0", 0.0), (" 20 ", 0.02), ("\t20\t", 0.02)]
)
def test_x_timeout_ms_parses(value: str, seconds: float) -> None:
    assert parse_timeout_ms(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "-1", "1.5", "abc", "1e3", "12345678901"])
def test_malformed_x_timeout_ms_is_none(value: str) -> None:
    assert parse_timeout_ms(value) is None


@pytest.mark.parametrize("value", ["\xa0250m", "250m\x85", "\x0c250m", "250m\u2003"])
def test_grpc_timeout_loses_only_spaces_and_tabs(value: str) -> None:
    assert parse_grpc_timeout(" \t250m\t ") == pytest.approx(0.25)
    assert parse_grpc_timeout(value) is None
    assert parse_timeout_ms(value.replace("250m", "250")) is None


def test_timeout_header_with_a_latin1_space_is_a_bad_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad: list[str] = []
    monkeypatch.setattr(deadline_policy_module.metrics, "bad_header", bad.append)
    raw = [(b"x-timeout-ms", b"20\xa0"), (b"grpc-timeout", b"\xa010m")]
    dl = _policy().start_scope("GET", "/", raw, 0.0)
    assert dl is not None and dl.budget == 30.0 and not dl.by_caller
    assert sorted(bad) == ["grpc-timeout", "x-timeout-ms"]


@given(st.text(max_size=30))
def test_no_header_value_makes_the_parsers_raise(value: str) -> None:
    for parser in (parse_grpc_timeout, parse_timeout_ms):
        result = parser(value)
        assert result is None or result >= 0


@given(st.floats(min_value=0, max_value=10**6, allow_nan=False))
def test_formatted_grpc_timeout_parses_back_within_a_millisecond(seconds: float) -> None:
    parsed = parse_grpc_timeout(format_grpc_timeout(seconds))
    assert parsed is not None
    assert (
        seconds - 1.0 <= parsed <= seconds + 1e-9
        if seconds >= 1e5
        else abs(parsed - seconds) < 1e-3
    )


def _policy(**routes: float) -> DeadlinePolicy:
    budgets = tuple(
        RouteBudget(
            matcher=RouteMatcher(prefix=k) if k.startswith("/") else RouteMatcher(view=k),
            budget=v,
            label=k,
        )
        for k, v in routes.items()
    )
    return DeadlinePolicy(DeadlineSettings(default=30.0, routes=budgets))


def test_policy_picks_route_budget_then_tighter_header() -> None:
    policy = DeadlinePolicy(
        DeadlineSettings(
            default=30.0,
            routes=(RouteBudget(RouteMatcher(prefix="/api/orders"), 0.8, "/api/orders"),),
        )
    )
    meta = {"HTTP_X_TIMEOUT_MS": "150"}
    dl = policy.start("POST", "/api/orders/1", meta, started_at=0.0)
    assert dl is not None and dl.budget == pytest.approx(0.15)
    dl = policy.start("POST", "/api/orders/1", {}, started_at=0.0)
    assert dl is not None and dl.budget == pytest.approx(0.8) and dl.route == "/api/orders"
    dl = policy.start("GET", "/other", {"HTTP_GRPC_TIMEOUT": "99S"}, started_at=0.0)
    assert dl is not None and dl.budget == 30.0 and dl.route == "default"


def test_policy_counts_and_ignores_malformed_headers() -> None:
    from prometheus_client import REGISTRY

    def count() -> float:
        return (
            REGISTRY.get_sample_value("resilience_bad_headers_total", {"header": "grpc-timeout"})
            or 0.0
        )

    before = count()
    policy = DeadlinePolicy(DeadlineSettings(default=2.0))
    dl = policy.start("GET", "/", {"HTTP_GRPC_TIMEOUT": "soon"}, started_at=0.0)
    assert dl is not None and dl.budget == 2.0
    assert count() == before + 1


def test_policy_without_any_budget_gives_no_deadline() -> None:
    policy = DeadlinePolicy(DeadlineSettings(default=None))
    assert policy.start("GET", "/", {}) is None


def test_deadline_module_is_also_the_decorator() -> None:
    assert resilience_django.deadline is deadline_module
    assert callable(resilience_django.deadline)
    assert resilience_django.deadline.remaining() is None


async def test_decorator_without_middleware_cancels_an_async_view() -> None:
    @resilience_django.deadline("50ms")
    async def view() -> str:
        await asyncio.sleep(1)
        return "late"

    with pytest.raises(DeadlineExceeded):
        await view()
    assert current() is None


def test_sync_decorator_tightens_the_running_deadline() -> None:
    seen: list[float | None] = []

    @resilience_django.deadline("200ms")
    def view() -> None:
        seen.append(remaining())

    token = _current.set(Deadline(10.0))
    try:
        view()
    finally:
        _current.reset(token)
    assert seen[0] is not None and seen[0] <= 0.2


async def test_decorator_without_middleware_lets_the_views_own_timeout_through() -> None:
    @resilience_django.deadline("5s")
    async def view() -> str:
        # A dependency's own timeout, long before the budget: a failure of the
        # dependency (a 500, a breaker verdict), not the request's deadline (a 504).
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)
        return "late"

    with pytest.raises(TimeoutError) as caught:
        await view()
    assert not isinstance(caught.value, DeadlineExceeded)


async def test_decorator_on_the_loop_of_another_thread_enforces_the_budget_there() -> None:
    # The request's deadline is armed on this loop, for the request's task; a
    # decorated coroutine run on a loop of its own (asyncio.run in a sync
    # view's thread) is out of that alarm's reach.
    request_task = asyncio.create_task(asyncio.sleep(10))
    dl = Deadline(0.2)
    alarm = dl.arm(request_task, asyncio.get_running_loop())
    token = _current.set(dl)

    @resilience_django.deadline("10s")
    async def work() -> str:
        await asyncio.sleep(3)
        return "late"

    def in_thread() -> float:
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            asyncio.run(work())
        return time.monotonic() - start

    try:
        elapsed = await asyncio.to_thread(in_thread)  # in this context: the deadline
    finally:
        alarm.close(request_task)
        request_task.cancel()
        _current.reset(token)
    assert elapsed < 2.0


@pytest.mark.parametrize("budget", [0, "0ms", "0s"])
def test_decorator_refuses_a_zero_budget_as_settings_do(budget: str | int) -> None:
    # A zero budget would answer every request 504; settings refuse it with a
    # clear error (resilience.E0xx), and so does the decorator, at import time.
    with pytest.raises(ValueError, match="longer than zero"):
        resilience_django.deadline(budget)


@pytest.mark.parametrize("value", ["\u0663\u0660\u0660", "\u0663\u0660\u0660m", "\uff13\uff10"])
def test_deadline_headers_take_only_ascii_digits(value: str) -> None:
    # \d would read Arabic-Indic or full-width digits as a budget.
    assert parse_timeout_ms(value) is None
    assert parse_grpc_timeout(value) is None
