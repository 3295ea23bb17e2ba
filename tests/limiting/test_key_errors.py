"""A key function that raises: the rule is decided on the client's ip key, never a 500."""

from __future__ import annotations

import logging

import pytest
from django.test import AsyncClient, Client, RequestFactory, override_settings

from resilience_django.clock import ManualClock
from resilience_django.deadline import DeadlineExceeded
from resilience_django.limiting.engine import LimitEngine
from resilience_django.limiting.keys import compile_key
from resilience_django.limiting.local import LocalLimiter
from resilience_django.limiting.rules import parse_limit_rules

rf = RequestFactory()
BROKEN = "tests.limiting.test_key_errors.broken_key"


def broken_key(request):
    if request.META.get("HTTP_X_TENANT"):
        return request.META["HTTP_X_TENANT"]
    raise KeyError("no tenant")


async def async_broken_key(request):
    raise ValueError("bad input")


def deadline_key(request):
    raise DeadlineExceeded("budget spent")


def engine_for(key):
    rules, errors = parse_limit_rules([{"name": "tenant", "path": "/", "rate": "2/m", "key": key}])
    assert not errors
    return LimitEngine(rules, LocalLimiter(clock=ManualClock()))


def test_a_raising_key_function_is_decided_on_the_client_ip(caplog):
    engine = engine_for(BROKEN)

    def allowed(**meta):
        return engine.decide("GET", "/x", rf.get("/x", **meta)).allowed

    with caplog.at_level(logging.ERROR, logger="resilience_django.limiting"):
        assert [allowed(REMOTE_ADDR="10.9.0.1") for _ in range(3)] == [True, True, False]
    # Another address has its own quota, and a working key its own too.
    assert allowed(REMOTE_ADDR="10.9.0.2")
    assert allowed(REMOTE_ADDR="10.9.0.1", HTTP_X_TENANT="a")
    errors = [r for r in caplog.records if r.name == "resilience_django.limiting"]
    # Logged with the traceback, once for the three failures (rate-limited).
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert BROKEN in errors[0].getMessage()


async def test_a_raising_async_key_function_is_decided_on_the_client_ip_too():
    engine = engine_for("tests.limiting.test_key_errors.async_broken_key")
    request = rf.get("/x", REMOTE_ADDR="10.9.1.1")
    allowed = [(await engine.adecide("GET", "/x", request)).allowed for _ in range(3)]
    assert allowed == [True, True, False]
    # The sync twin (a WSGI worker) shares the count.
    assert not engine.decide("GET", "/x", request).allowed


def test_the_fallback_key_is_the_ip_key_marked_as_such():
    key = compile_key(BROKEN)
    assert key.get(rf.get("/x", REMOTE_ADDR="10.9.2.1")) == "ip:10.9.2.1"
    assert key.get(rf.get("/x", REMOTE_ADDR="10.9.2.1", HTTP_X_TENANT="acme")) == "acme"


def test_our_own_exceptions_from_a_key_function_go_through():
    # A deadline spent inside the key function is the deadline's 504, not a key problem.
    with pytest.raises(DeadlineExceeded):
        compile_key("tests.limiting.test_key_errors.deadline_key").get(rf.get("/x"))


FAILING = {"LIMITS": [{"name": "by-tenant", "path": "/hello/", "rate": "2/m", "key": BROKEN}]}
ASYNC_FAILING = {
    "LIMITS": [{"name": "by-tenant-async", "path": "/async-hello/", "rate": "2/m", "key": BROKEN}]
}


@override_settings(RESILIENCE=FAILING)
def test_a_raising_key_function_never_gives_a_500_and_still_limits(client: Client) -> None:
    codes = [client.get("/hello/", REMOTE_ADDR="10.9.3.1").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


@override_settings(RESILIENCE=ASYNC_FAILING)
async def test_async_a_raising_key_function_never_gives_a_500_and_still_limits(
    async_client: AsyncClient,
) -> None:
    codes = [
        (await async_client.get("/async-hello/", REMOTE_ADDR="10.9.4.1")).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
