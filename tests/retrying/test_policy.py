from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from resilience_django import deadline
from resilience_django.breakers.state import Breaker, CircuitOpen
from resilience_django.clock import ManualClock
from resilience_django.retrying.budget import RetryBudget
from resilience_django.retrying.policy import retry
from resilience_django.retrying.throttle import AdaptiveThrottle, LocallyThrottled


class FakeResponse:
    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


class Calls:
    """A callable that fails (raising or answering) a given number of times, then succeeds."""

    def __init__(self, failures: int, failure: Any = None) -> None:
        self.failures = failures
        self.failure = failure if failure is not None else ConnectionError("reset")
        self.count = 0

    def __call__(self) -> Any:
        self.count += 1
        if self.count <= self.failures:
            if isinstance(self.failure, BaseException):
                raise self.failure
            return self.failure
        return "ok"


def no_budget(**kwargs: Any) -> dict[str, Any]:
    return {"budget": None, "sleep": kwargs.pop("sleep", lambda s: None), **kwargs}


def test_retries_until_success_within_the_attempts() -> None:
    calls = Calls(failures=2)
    assert retry(attempts=3, **no_budget())(calls)() == "ok"
    assert calls.count == 3


def test_gives_up_after_the_attempts_and_raises_the_last_error() -> None:
    calls = Calls(failures=10)
    with pytest.raises(ConnectionError):
        retry(attempts=4, **no_budget())(calls)()
    assert calls.count == 4


def test_errors_not_in_retry_on_are_raised_at_once() -> None:
    calls = Calls(failures=1, failure=ValueError("bad input"))
    with pytest.raises(ValueError):
        retry(**no_budget())(calls)()
    assert calls.count == 1
    calls = Calls(failures=1, failure=ValueError("bad input"))
    assert retry(retry_on=(ValueError,), **no_budget())(calls)() == "ok"


def test_delays_follow_full_jitter_with_the_cap() -> None:
    slept: list[float] = []
    draws = iter([0.5, 0.25, 0.9, 1.0, 0.1])
    calls = Calls(failures=5)
    policy = retry(
        attempts=6,
        backoff="100ms",
        max_backoff="300ms",
        random=lambda: next(draws),
        **no_budget(sleep=slept.append),
    )
    assert policy(calls)() == "ok"
    # ceilings: 0.1, 0.2, 0.3 (cap), 0.3, 0.3
    assert slept == pytest.approx([0.05, 0.05, 0.27, 0.3, 0.03])


def test_real_random_delays_stay_within_the_jitter_bounds() -> None:
    slept: list[float] = []
    rnd = random.Random(4)
    for _ in range(50):
        retry(
            attempts=5,
            backoff=0.1,
            max_backoff=1.0,
            random=rnd.random,
            **no_budget(sleep=slept.append),
        )(Calls(failures=4))()
    for i, delay in enumerate(slept):
        assert 0 <= delay <= min(1.0, 0.1 * 2 ** (i % 4))
    assert len(set(slept)) == len(slept)  # jittered, not fixed


def test_retryable_answers_are_retried_and_the_last_one_returned() -> None:
    calls = Calls(failures=5, failure=FakeResponse(502))
    result = retry(attempts=3, **no_budget())(calls)()
    assert isinstance(result, FakeResponse) and result.status_code == 502
    assert calls.count == 3
    calls = Calls(failures=5, failure=FakeResponse(404))
    assert retry(attempts=3, **no_budget())(calls)().status_code == 404
    assert calls.count == 1


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    slept: list[float] = []
    calls = Calls(failures=1, failure=FakeResponse(503, {"Retry-After": "1"}))
    assert retry(backoff="10ms", max_backoff="2s", **no_budget(sleep=slept.append))(calls)() == "ok"
    assert slept == [1.0]


def test_retry_after_beyond_max_backoff_stops_retrying() -> None:
    slept: list[float] = []
    calls = Calls(failures=1, failure=FakeResponse(429, {"Retry-After": "60"}))
    result = retry(max_backoff="2s", **no_budget(sleep=slept.append))(calls)()
    assert result.status_code == 429 and slept == [] and calls.count == 1


def test_never_sleeps_past_the_deadline() -> None:
    slept: list[float] = []
    calls = Calls(failures=10)
    policy = retry(
        attempts=5,
        backoff="200ms",
        max_backoff="2s",
        random=lambda: 1.0,
        **no_budget(sleep=slept.append),
    )

    @deadline.deadline("300ms")
    def handler() -> Any:
        return policy(calls)()

    with pytest.raises(ConnectionError):
        handler()
    # 0.2 s fits in the 0.3 s budget; the next sleep (0.4 s) would not.
    assert slept == [pytest.approx(0.2)]
    assert calls.count == 2


def test_retry_after_past_the_deadline_is_not_waited_for() -> None:
    slept: list[float] = []
    calls = Calls(failures=1, failure=FakeResponse(503, {"Retry-After": "1"}))

    @deadline.deadline("500ms")
    def handler() -> Any:
        return retry(**no_budget(sleep=slept.append))(calls)()

    assert handler().status_code == 503 and slept == []


def test_deadline_exceeded_and_open_circuits_are_never_retried() -> None:
    for failure in (deadline.DeadlineExceeded("spent"), CircuitOpen("pricing", 3.0)):
        calls = Calls(failures=5, failure=failure)
        with pytest.raises(type(failure)):
            retry(retry_on=(Exception,), **no_budget())(calls)()
        assert calls.count == 1


def test_an_open_breaker_stops_retries() -> None:
    breaker = Breaker("retry-test", clock=ManualClock())
    breaker.force_open()
    calls = Calls(failures=5)
    with pytest.raises(ConnectionError):
        retry(breaker=breaker, **no_budget())(calls)()
    assert calls.count == 1
    breaker.reset()
    assert retry(breaker=breaker, **no_budget())(Calls(failures=2))() == "ok"


def test_an_empty_budget_stops_retries() -> None:
    budget = RetryBudget(0.0, min_per_second=0.1, ttl=10, clock=ManualClock())  # one retry
    policy = retry(attempts=3, budget=budget, sleep=lambda s: None)
    first, second = Calls(failures=10), Calls(failures=10)
    with pytest.raises(ConnectionError):
        policy(first)()
    with pytest.raises(ConnectionError):
        policy(second)()
    assert (first.count, second.count) == (2, 1)


def test_decorated_functions_share_a_budget_per_target() -> None:
    policy = retry(budget=0.2, target="test-policy-shared", sleep=lambda s: None)
    a, b = policy(Calls(failures=0)), policy(Calls(failures=0))
    a()
    b()
    from resilience_django.retrying.budget import budget_for

    shared = budget_for("test-policy-shared")
    assert shared.balance() == pytest.approx(10 * 10 + 0.2 * 2)


def test_throttled_target_fails_fast_without_calling() -> None:
    throttle = AdaptiveThrottle("t", clock=ManualClock(), random_=lambda: 0.0)
    for _ in range(50):
        throttle.allow()
        throttle.record(accepted=False)
    calls = Calls(failures=0)
    with pytest.raises(LocallyThrottled):
        retry(throttle=throttle, **no_budget())(calls)()
    assert calls.count == 0


def test_throttle_counts_retryable_failures_as_not_accepted() -> None:
    throttle = AdaptiveThrottle("t2", clock=ManualClock(), random_=lambda: 0.999)
    retry(attempts=3, throttle=throttle, **no_budget())(Calls(failures=2))()
    # 3 requests, 1 accepted: p = (3 - 2) / 4
    assert throttle.probability() == pytest.approx(0.25)


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        retry(attempts=0)


def test_decorator_keeps_the_function_name() -> None:
    @retry(**no_budget())
    def fetch_price() -> str:
        return "1"

    assert fetch_price.__name__ == "fetch_price"


async def test_async_retries_with_async_sleep_and_retry_after() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    count = 0

    async def flaky() -> Any:
        nonlocal count
        count += 1
        await asyncio.sleep(0)
        if count == 1:
            return FakeResponse(503, {"Retry-After": "1"})
        if count == 2:
            raise TimeoutError("slow")
        return "ok"

    wrapped = retry(
        attempts=3, backoff="100ms", random=lambda: 0.5, budget=None, async_sleep=fake_sleep
    )(flaky)
    assert asyncio.iscoroutinefunction(wrapped)
    assert await wrapped() == "ok"
    assert slept == pytest.approx([1.0, 0.1])


async def test_a_callable_marked_as_a_coroutine_function_is_awaited_and_retried() -> None:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction

    count = 0

    class View:  # as an async class-based view's as_view(): a callable returning a coroutine
        async def run(self) -> str:
            nonlocal count
            count += 1
            if count < 3:
                raise ConnectionError("reset")
            return "ok"

        def __call__(self) -> Any:
            return self.run()

    wrapped = retry(attempts=3, backoff=0, budget=None)(markcoroutinefunction(View()))
    assert iscoroutinefunction(wrapped)
    assert await wrapped() == "ok"
    assert count == 3


async def test_async_gives_up_after_the_attempts() -> None:
    count = 0

    async def down() -> None:
        nonlocal count
        count += 1
        raise ConnectionError("refused")

    async def fake_sleep(seconds: float) -> None:
        pass

    with pytest.raises(ConnectionError):
        await retry(attempts=2, budget=None, async_sleep=fake_sleep)(down)()
    assert count == 2


def test_a_breaker_named_in_the_registry_stops_retries_while_open() -> None:
    from resilience_django.breakers import get_breaker

    named = get_breaker("retry-test-named")
    named.force_open()
    try:
        calls = Calls(failures=5)
        with pytest.raises(ConnectionError):
            retry(breaker="retry-test-named", **no_budget())(calls)()
        assert calls.count == 1
    finally:
        named.reset()


def test_package_reexports_retry() -> None:
    import resilience_django

    assert resilience_django.retry is retry
