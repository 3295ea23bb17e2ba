"""django-ratelimit's documented examples, run through our API.

Each example is written as django-ratelimit's documentation writes it, with
``ratelimit`` replaced by ``limit`` (and ``django_ratelimit.core`` by
``resilience_django``); the differences are in
``docs/migrating-from-django-ratelimit.md``.
"""

from __future__ import annotations

import logging

import pytest
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from resilience_django import (
    ALL,
    UNSAFE,
    aget_usage,
    ais_ratelimited,
    get_usage,
    is_ratelimited,
    limit,
)
from resilience_django.exceptions import ConfigError
from resilience_django.units import Rate
from resilience_django.view_limits.decorator import process_limiter

factory = RequestFactory()


@pytest.fixture(autouse=True)
def _fresh_limiter():
    with override_settings(RESILIENCE={}):
        process_limiter().clear()
        yield


def ok(request):
    return HttpResponse("ok")


# -- the decorator ---------------------------------------------------------------


@limit(key="ip", rate="5/m", block=False)
def myview(request):
    # django-ratelimit: "was_limited = getattr(request, 'limited', False)"
    return HttpResponse("limited" if getattr(request, "limited", False) else "fresh")


def test_block_false_sets_request_limited_and_still_runs_the_view():
    bodies = [myview(factory.get("/")).content for _ in range(7)]
    assert bodies == [b"fresh"] * 5 + [b"limited"] * 2
    request = factory.get("/")
    myview(request)
    assert request.limited is True
    decision = request.resilience_decision  # our decision, for headers or logging
    assert not decision.allowed and decision.rejected == (
        "tests.view_limits.test_ratelimit_compat.myview",
    )


@limit(key="post:username", rate="5/m", method=["POST"], block=True)
def login(request):
    return HttpResponse("ok")


def test_post_field_key_limits_each_username_on_post_only():
    codes = [login(factory.post("/", {"username": "alice"})).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    assert login(factory.post("/", {"username": "bob"})).status_code == 200
    assert all(login(factory.get("/")).status_code == 200 for _ in range(7))  # GET: not limited
    # No such field: django-ratelimit would count every such request under "";
    # here, as for every key kind, the rule does not apply.
    assert all(login(factory.post("/", {})).status_code == 200 for _ in range(7))


@limit(key="header:x-real-ip", rate="100/h")
def behind_proxy(request):
    return HttpResponse("ok")


def test_header_key_counts_per_header_value():
    for _ in range(100):
        assert behind_proxy(factory.get("/", HTTP_X_REAL_IP="198.51.100.7")).status_code == 200
    refused = behind_proxy(factory.get("/", HTTP_X_REAL_IP="198.51.100.7"))
    assert refused.status_code == 429  # not django-ratelimit's 403
    assert int(refused["Retry-After"]) >= 1
    assert behind_proxy(factory.get("/", HTTP_X_REAL_IP="198.51.100.8")).status_code == 200


@limit(key="get:q", rate="2/m")
def search(request):
    return HttpResponse("ok")


def test_get_key_is_the_query_parameter():
    assert [search(factory.get("/?q=cats")).status_code for _ in range(3)] == [200, 200, 429]
    assert search(factory.get("/?q=dogs")).status_code == 200


def plan_rate(group, request):
    # django-ratelimit's "rate as a callable": tiers per plan, None for no limit.
    return {"free": "2/m", "pro": "4/m", "internal": None}[request.headers.get("X-Plan", "free")]


@limit(key="header:x-customer", rate=plan_rate, group="api")
def api(request):
    return HttpResponse("ok")


def test_callable_rate_gives_each_plan_its_tier_and_none_means_no_limit():
    def codes(customer, plan, n):
        return [
            api(factory.get("/", HTTP_X_CUSTOMER=customer, HTTP_X_PLAN=plan)).status_code
            for _ in range(n)
        ]

    assert codes("c1", "free", 3) == [200, 200, 429]
    assert codes("c2", "pro", 5) == [200] * 4 + [429]
    assert codes("c3", "internal", 10) == [200] * 10
    response = api(factory.get("/", HTTP_X_CUSTOMER="c4", HTTP_X_PLAN="pro"))
    assert response["RateLimit-Policy"] == '"api";q=4;w=60'


def customer_key(group, request):
    # django-ratelimit's callable key: (group, request) -> str.
    return f"{group}:{request.headers['X-Customer']}"


@limit(key=customer_key, rate="1/m", group="exports")
def export(request):
    return HttpResponse(request.resilience_decision.decision.outcomes[0].check.key)


def test_callable_key_gets_the_group_and_the_request():
    response = export(factory.get("/", HTTP_X_CUSTOMER="acme"))
    assert response.content == b"exports:acme"
    assert export(factory.get("/", HTTP_X_CUSTOMER="acme")).status_code == 429
    assert export(factory.get("/", HTTP_X_CUSTOMER="other")).status_code == 200


@limit(key="ip", rate="1/m", method=UNSAFE)
def comment(request):
    return HttpResponse("ok")


def test_unsafe_limits_only_the_unsafe_methods():
    assert UNSAFE == ["DELETE", "PATCH", "POST", "PUT"] and ALL == (None,)
    assert all(comment(factory.get("/")).status_code == 200 for _ in range(3))
    assert comment(factory.post("/")).status_code == 200
    assert comment(factory.put("/")).status_code == 429


@limit(key="ip", rate="2/m", group="shared-login")
def login_a(request):
    return HttpResponse("ok")


@limit(key="ip", rate="2/m", group="shared-login")
def login_b(request):
    return HttpResponse("ok")


def test_group_is_one_counter_shared_by_views():
    assert login_a(factory.get("/")).status_code == 200
    assert login_b(factory.get("/")).status_code == 200
    assert login_a(factory.get("/")).status_code == 429
    assert login_b(factory.get("/")).status_code == 429


@limit(key="ip", rate="5/10")
def plain_seconds(request):
    return HttpResponse("ok")


@limit(key="ip", rate=(2, 30))
def tuple_rate(request):
    return HttpResponse("ok")


def test_django_ratelimit_rate_forms_are_understood():
    assert plain_seconds(factory.get("/"))["RateLimit-Policy"].endswith(";q=5;w=10")
    assert tuple_rate(factory.get("/"))["RateLimit-Policy"].endswith(";q=2;w=30")


# -- is_ratelimited / get_usage ------------------------------------------------------


def test_is_ratelimited_with_increment_false_peeks_without_consuming():
    request = factory.post("/", {"username": "alice"})
    args = {"group": "login", "key": "post:username", "rate": "2/m", "method": UNSAFE}
    for _ in range(5):
        assert is_ratelimited(request, increment=False, **args) is False
    assert is_ratelimited(request, increment=True, **args) is False
    assert is_ratelimited(request, increment=True, **args) is False
    # Both used: a peek now says the next one would be refused, and consumes nothing.
    assert is_ratelimited(request, increment=False, **args) is True
    assert is_ratelimited(request, increment=True, **args) is True
    # Another username, and a GET (not in UNSAFE), are not limited.
    other = factory.post("/", {"username": "bob"})
    assert is_ratelimited(other, increment=True, **args) is False
    assert is_ratelimited(factory.get("/"), increment=True, **args) is False


def test_get_usage_reports_count_limit_and_time_left():
    request = factory.get("/")
    usage = get_usage(request, group="g", key="ip", rate="3/m", increment=True)
    assert usage is not None
    assert (usage["count"], usage["limit"], usage["should_limit"]) == (1, 3, False)
    assert 0 < usage["time_left"] <= 60
    assert usage["decision"].allowed
    assert get_usage(request, group="g", key="ip", rate=None) is None  # no rate, no limit


def test_is_ratelimited_with_fn_shares_the_decorated_views_counter():
    request = factory.get("/")
    for _ in range(5):
        myview(request)
    assert is_ratelimited(request, fn=myview.__wrapped__, key="ip", rate="5/m") is True
    assert is_ratelimited(factory.get("/", REMOTE_ADDR="203.0.113.9"), fn=myview.__wrapped__,
                          key="ip", rate="5/m") is False  # fmt: skip


async def test_async_variants_decide_the_same_way():
    request = factory.get("/")
    args = {"group": "async-g", "key": "ip", "rate": "1/m"}
    assert await ais_ratelimited(request, increment=True, **args) is False
    assert await ais_ratelimited(request, increment=False, **args) is True
    usage = await aget_usage(request, **args)
    assert usage is not None and usage["should_limit"] and usage["count"] == 1


def test_is_ratelimited_needs_a_group_or_fn():
    from resilience_django.exceptions import ConfigError

    with pytest.raises(ConfigError):
        is_ratelimited(factory.get("/"), key="ip", rate="1/m")


def test_a_bad_rate_from_a_rate_function_is_logged_and_not_limited(caplog):
    @limit(key="ip", rate=lambda group, request: "ten per minute", group="bad-tier")
    def view(request):
        return HttpResponse("ok")

    with caplog.at_level(logging.ERROR, logger="resilience_django.limiting"):
        assert all(view(factory.get("/")).status_code == 200 for _ in range(3))
    assert "bad-tier" in caplog.text and "not limited" in caplog.text


def test_a_get_method_filter_also_limits_head():
    # Django serves HEAD with the GET view: HEAD must not get around a GET limit.
    args = {"group": "head-too", "key": "ip", "rate": "2/m", "method": "GET", "increment": True}
    codes = [is_ratelimited(factory.head("/"), **args) for _ in range(2)]
    assert codes == [False, False]
    assert is_ratelimited(factory.head("/"), **args) is True
    assert is_ratelimited(factory.get("/"), **args) is True
    assert is_ratelimited(factory.post("/"), **args) is False  # not listed


@pytest.mark.parametrize("value", [Rate(5, 0), Rate(0, 60), Rate(-1, 60), Rate(2.5, 60)])
def test_a_rate_object_no_text_could_spell_is_a_bad_rate(caplog, value):
    @limit(key="ip", rate=lambda group, request: value, group="bad-rate-object")
    def view(request):
        return HttpResponse("ok")

    # Not a 500 (a zero period divided by zero), not every request refused: logged, not limited.
    with caplog.at_level(logging.ERROR, logger="resilience_django.limiting"):
        assert [view(factory.get("/")).status_code for _ in range(3)] == [200] * 3
    assert "bad-rate-object" in caplog.text and "not limited" in caplog.text
    with pytest.raises(ConfigError) as info:  # fixed: an error at decoration, as "0/m" is
        limit(value, key="ip", group="bad-fixed-rate")(ok)
    assert info.value.check_id == "resilience.E020"
    with pytest.raises(ConfigError):
        is_ratelimited(factory.get("/"), group="bad-fixed-rate", rate=value)


def failing_rate(group, request):
    raise LookupError("no plan for this customer")


async def afailing_rate(group, request):
    raise LookupError("no plan for this customer")


@pytest.mark.parametrize("rate", [failing_rate, afailing_rate])
async def test_a_rate_function_that_raises_is_logged_and_not_limited(caplog, rate):
    from asgiref.sync import sync_to_async

    @limit(key="ip", rate=rate, group="raising-tier")
    def view(request):
        return HttpResponse("ok")

    @limit(key="ip", rate=rate, group="araising-tier")
    async def aview(request):
        return HttpResponse("ok")

    with caplog.at_level(logging.ERROR, logger="resilience_django.limiting"):
        assert (await sync_to_async(view)(factory.get("/"))).status_code == 200
        assert (await aview(factory.get("/"))).status_code == 200
        assert await aget_usage(factory.get("/"), group="g-raise", rate=rate) is None
    assert "raising-tier" in caplog.text and "araising-tier" in caplog.text
    assert "LookupError" in caplog.text and "not limited" in caplog.text


def test_a_deadline_raised_in_a_rate_function_is_not_swallowed():
    from resilience_django.deadline import DeadlineExceeded

    def rate(group, request):
        raise DeadlineExceeded("spent")

    @limit(key="ip", rate=rate, group="deadline-tier")
    def view(request):
        return HttpResponse("ok")

    with pytest.raises(DeadlineExceeded):
        view(factory.get("/"))


def test_group_and_name_are_one_argument():
    with pytest.raises(TypeError):
        limit("1/m", group="a", name="b")
    with pytest.raises(TypeError):
        limit("1/m", methods=["GET"], method=["POST"])
