"""``@limit`` and ``is_ratelimited`` treat keys and methods the way the middleware's rules do."""

from __future__ import annotations

import logging

import pytest
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from resilience_django import aget_usage, ais_ratelimited, is_ratelimited, limit
from resilience_django.exceptions import ConfigError
from resilience_django.view_limits.decorator import process_limiter

factory = RequestFactory()


@pytest.fixture(autouse=True)
def _fresh_limiter():
    with override_settings(RESILIENCE={}):
        process_limiter().clear()
        yield


def broken_key(group, request):
    raise KeyError("X-Customer")


async def abroken_key(request):
    raise KeyError("X-Customer")


@pytest.mark.parametrize("key", [broken_key, abroken_key])
async def test_a_callable_key_that_raises_is_decided_on_the_ip_key_and_logged_once(caplog, key):
    from asgiref.sync import sync_to_async

    @limit(key=key, rate="1/m", group="broken-key")
    def view(request):
        return HttpResponse(request.resilience_decision.decision.outcomes[0].check.key)

    with caplog.at_level(logging.ERROR, logger="resilience_django.limiting"):
        first = await sync_to_async(view)(factory.get("/"))
        assert (first.status_code, first.content) == (200, b"ip:127.0.0.1")
        assert (await sync_to_async(view)(factory.get("/"))).status_code == 429
        other = factory.get("/", REMOTE_ADDR="10.0.0.9")
        assert (await sync_to_async(view)(other)).status_code == 200
        peek = {"group": "broken-key-2", "key": key, "rate": "1/m", "increment": True}
        assert not await ais_ratelimited(factory.get("/"), **peek)
        assert await ais_ratelimited(factory.get("/"), **peek)
        assert await sync_to_async(is_ratelimited)(factory.get("/"), **peek)
    raised = [r for r in caplog.records if "raised" in r.getMessage()]
    assert len(raised) == 2  # once a minute per key function: one for @limit, one for the calls
    assert all(r.exc_info and r.exc_info[0] is KeyError for r in raised)


def test_the_ip_key_a_raising_callable_falls_back_to_follows_trusted_proxies():
    @limit(key=broken_key, rate="1/m", group="broken-key-proxied")
    def view(request):
        return HttpResponse(request.resilience_decision.decision.outcomes[0].check.key)

    with override_settings(RESILIENCE={"TRUSTED_PROXIES": ["127.0.0.0/8"]}):
        response = view(factory.get("/", HTTP_X_FORWARDED_FOR="203.0.113.7"))
    assert response.content == b"ip:203.0.113.7"


@pytest.mark.parametrize("method", [[], (), set()])
def test_an_empty_method_list_is_refused_by_limit_and_is_ratelimited_alike(method):
    with pytest.raises(ConfigError) as decorated:
        limit("1/m", method=method)(lambda request: HttpResponse())
    with pytest.raises(ConfigError) as called:
        is_ratelimited(factory.get("/"), group="no-methods", rate="1/m", method=method)
    assert decorated.value.check_id == called.value.check_id == "resilience.E027"


def test_a_set_of_methods_works_for_limit_and_is_ratelimited_alike():
    @limit("1/m", method={"post"}, group="set-methods")
    def view(request):
        return HttpResponse()

    assert [view(factory.post("/")).status_code for _ in range(2)] == [200, 429]
    assert view(factory.get("/")).status_code == 200
    call = {"group": "set-methods-2", "rate": "1/m", "method": {"post"}, "increment": True}
    assert [is_ratelimited(factory.post("/"), **call) for _ in range(2)] == [False, True]
    assert not is_ratelimited(factory.get("/"), **call)


async def test_a_callable_marked_as_a_coroutine_function_is_awaited_with_the_group():
    from asgiref.sync import markcoroutinefunction

    class Tenant:  # as an async class-based view's as_view(): a callable returning a coroutine
        async def lookup(self, group, request):
            return f"{group}:{request.headers['X-Tenant']}"

        def __call__(self, group, request):
            return self.lookup(group, request)

    key = markcoroutinefunction(Tenant())
    request = factory.get("/", HTTP_X_TENANT="acme")
    usage = await aget_usage(request, group="marked", key=key, rate="1/m", increment=True)
    assert usage["decision"].decision.outcomes[0].check.key == "marked:acme"
