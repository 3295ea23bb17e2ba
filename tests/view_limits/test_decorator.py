"""``@limit`` on sync and async views, through Django's test clients."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from resilience_django.exceptions import ConfigError
from resilience_django.view_limits.decorator import limit, process_limiter

pytestmark = pytest.mark.urls("tests.limiting.urls")

# Only our decorator in the way: the project's middleware is tested elsewhere.
SETTINGS = {"MIDDLEWARE": [], "ROOT_URLCONF": "tests.limiting.urls"}


@pytest.fixture(autouse=True)
def _fresh_limiter():
    process_limiter().clear()


def assert_ratelimit(value, rule, remaining):
    # The reset is when the oldest bucket (a tenth of the minute) leaves.
    match = re.fullmatch(rf'"{rule}";r={remaining};t=(\d+)', value)
    assert match is not None, value
    assert 54 <= int(match.group(1)) <= 60


def assert_rejected(response, rule, json_body):
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert f'"{rule}";q=' in response["RateLimit-Policy"]
    assert response["RateLimit"].startswith(f'"{rule}";r=0;t=')
    if json_body:
        body = response.json()
        assert body["error"] == "rate_limited"
        assert body["retry_after"] == int(response["Retry-After"])
    else:
        assert response["Content-Type"].startswith("text/plain")


@override_settings(**SETTINGS)
def test_sync_view_admits_the_rate_then_answers_429(client):
    ok = [client.get("/sync-ip/") for _ in range(2)]
    assert [r.status_code for r in ok] == [200, 200]
    assert_ratelimit(ok[0]["RateLimit"], "sync-ip", 1)
    assert ok[0]["RateLimit-Policy"] == '"sync-ip";q=2;w=60'
    assert_rejected(client.get("/sync-ip/"), "sync-ip", json_body=False)
    assert_rejected(
        client.get("/sync-ip/", HTTP_ACCEPT="application/json"), "sync-ip", json_body=True
    )


@override_settings(**SETTINGS)
async def test_async_view_admits_the_rate_then_answers_429(async_client):
    ok = [await async_client.get("/async-ip/") for _ in range(2)]
    assert [r.status_code for r in ok] == [200, 200]
    assert_ratelimit(ok[1]["RateLimit"], "async-ip", 0)
    response = await async_client.get("/async-ip/", headers={"Accept": "application/json"})
    assert_rejected(response, "async-ip", json_body=True)


@override_settings(**SETTINGS)
def test_each_client_ip_has_its_own_budget(client):
    for _ in range(2):
        assert client.get("/sync-ip/", REMOTE_ADDR="198.51.100.1").status_code == 200
    assert client.get("/sync-ip/", REMOTE_ADDR="198.51.100.1").status_code == 429
    assert client.get("/sync-ip/", REMOTE_ADDR="198.51.100.2").status_code == 200


@override_settings(**SETTINGS)
def test_methods_and_header_key_restrict_where_the_limit_applies(client):
    assert client.post("/per-key/", HTTP_X_API_KEY="k1").status_code == 200
    assert client.post("/per-key/", HTTP_X_API_KEY="k1").status_code == 429
    assert client.post("/per-key/", HTTP_X_API_KEY="k2").status_code == 200
    # Other methods, and requests without the header, are not limited.
    assert all(client.get("/per-key/", HTTP_X_API_KEY="k1").status_code == 200 for _ in range(3))
    assert all(client.post("/per-key/").status_code == 200 for _ in range(3))


@override_settings(**SETTINGS)
async def test_shadow_mode_lets_everything_through_with_headers(async_client):
    responses = [await async_client.get("/shadowed/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert responses[-1]["RateLimit"].startswith('"shadowed";r=0;')


@override_settings(**SETTINGS, RESILIENCE={"RATELIMIT_HEADERS": False})
def test_headers_on_admitted_responses_can_be_turned_off(client):
    response = client.get("/sync-ip/")
    assert response.status_code == 200 and "RateLimit" not in response
    client.get("/sync-ip/")
    assert "RateLimit" in client.get("/sync-ip/")  # a 429 always says why


@override_settings(**SETTINGS, RESILIENCE={"TRUSTED_PROXIES": 1})
def test_trusted_proxies_setting_is_honoured(client):
    for _ in range(2):
        client.get("/sync-ip/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.1")
    assert (
        client.get("/sync-ip/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.1")
    ).status_code == 429
    assert (
        client.get("/sync-ip/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.2")
    ).status_code == 200


@override_settings(
    **SETTINGS,
    RESILIENCE={"RESPONSE_HANDLERS": {"rate_limited": "tests.view_limits.test_decorator.teapot"}},
)
def test_the_429_is_replaceable_through_the_handler_setting(client):
    client.get("/sync-ip/")
    client.get("/sync-ip/")
    response = client.get("/sync-ip/")
    assert response.status_code == 418
    assert response["X-Rules"] == "sync-ip"


def teapot(request, *, rules, retry_after, headers):
    from django.http import HttpResponse

    response = HttpResponse(status=418)
    response["X-Rules"] = ",".join(rules)
    return response


@override_settings(**SETTINGS)
async def test_default_name_is_the_views_dotted_path(async_client):
    response = await async_client.get("/default-name/")
    assert response["RateLimit-Policy"].startswith('"tests.limiting.views.default_name";q=1;')
    assert (await async_client.get("/default-name/")).status_code == 429


def test_bad_decorator_arguments_raise_at_decoration():
    with pytest.raises(ConfigError) as info:
        limit("10/x")(lambda request: None)
    assert info.value.check_id == "resilience.E020"
    assert "@limit on" in str(info.value)
    with pytest.raises(ConfigError):
        limit("1/s", key="nope")(lambda request: None)


# -- @limit behind ResilienceMiddleware ----------------------------------------------

BEHIND_MIDDLEWARE = {
    "MIDDLEWARE": ["resilience_django.middleware.ResilienceMiddleware"],
    "ROOT_URLCONF": "tests.limiting.urls",
    "RESILIENCE": {"LIMITS": [{"name": "site", "path": "/", "key": "ip", "rate": "100/m"}]},
}


def assert_both_rules_listed(response, rule, remaining):
    # One line each, naming the middleware's rule and the view's, the one that refused too.
    assert response["RateLimit-Policy"] == f'"site";q=100;w=60, "{rule}";q=2;w=60'
    assert re.fullmatch(
        rf'"site";r=\d+;t=\d+, "{rule}";r={remaining};t=\d+', response["RateLimit"]
    ), response["RateLimit"]


@override_settings(**BEHIND_MIDDLEWARE)
def test_behind_the_middleware_the_headers_name_the_views_rule_too(client):
    responses = [client.get("/sync-ip/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert_both_rules_listed(responses[0], "sync-ip", 1)
    # The 429 says which rule refused: not only the middleware's rule, with quota left.
    assert_both_rules_listed(responses[2], "sync-ip", 0)
    assert int(responses[2]["Retry-After"]) >= 1


@override_settings(**BEHIND_MIDDLEWARE)
async def test_behind_the_middleware_an_async_views_429_names_its_rule(async_client):
    responses = [await async_client.get("/async-ip/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert_both_rules_listed(responses[1], "async-ip", 0)
    assert_both_rules_listed(responses[2], "async-ip", 0)


# -- @limit on the runtime's limiters: BACKEND and scope ----------------------------


def test_limit_counts_in_the_same_local_store_as_the_middleware(rf):
    from resilience_django.runtime import get_runtime

    @limit("5/m", name="store-probe")
    def view(request):
        from django.http import HttpResponse

        return HttpResponse("ok")

    view(rf.get("/"))
    # One store, one LOCAL_MAX_KEYS bound: not a second LocalLimiter of its own.
    assert process_limiter() is get_runtime().stores.local
    assert len(get_runtime().stores.local) == 1


@pytest.fixture(scope="module")
def redis_server():
    from tests.utils.redis_server import RedisServer

    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
async def redis_backend(redis_server):
    from resilience_django.runtime import get_runtime

    with override_settings(RESILIENCE={"BACKEND": "redis", "REDIS": {"URL": redis_server.url},
                                       "FALLBACK_LATENCY": "500ms"}):  # fmt: skip
        yield
        stores = get_runtime().stores
        # The asyncio client closes on the test's own loop; the probe thread ends too.
        await stores.distributed.aclose()
        stores.close()


def _decorated(scope):
    from django.http import HttpResponse

    @limit("2/m", name=f"backend-{scope}", scope=scope)
    def view(request):
        return HttpResponse("ok")

    @limit("2/m", name=f"abackend-{scope}", scope=scope)
    async def aview(request):
        return HttpResponse("ok")

    return view, aview


@pytest.mark.redis
@pytest.mark.parametrize(("scope", "backend"), [(None, "redis"), ("distributed", "redis"),
                                                ("local", "local")])  # fmt: skip
async def test_limit_follows_backend_and_scope_like_a_settings_rule(
    rf, redis_backend, scope, backend
):
    from asgiref.sync import sync_to_async

    view, aview = _decorated(scope)
    requests = [rf.get("/") for _ in range(3)]
    codes = [(await sync_to_async(view)(r)).status_code for r in requests]
    assert codes == [200, 200, 429]
    assert {r.resilience_decision.decision.backend for r in requests} == {backend}
    arequests = [rf.get("/") for _ in range(3)]
    assert [(await aview(r)).status_code for r in arequests] == [200, 200, 429]
    assert {r.resilience_decision.decision.backend for r in arequests} == {backend}


def test_a_settings_rule_without_scope_follows_backend():
    from resilience_django.conf import parse_settings

    rule = {"name": "r", "rate": "1/s"}
    redis = parse_settings({"BACKEND": "redis", "REDIS": {"URL": "redis://127.0.0.1:1/0"},
                            "LIMITS": [rule]})  # fmt: skip
    assert [r.scope for r in redis.limits] == ["distributed"]
    assert [r.scope for r in parse_settings({"LIMITS": [rule]}).limits] == ["local"]
    pinned = parse_settings({"BACKEND": "redis", "REDIS": {"URL": "redis://127.0.0.1:1/0"},
                             "LIMITS": [{**rule, "scope": "local"}]})  # fmt: skip
    assert [r.scope for r in pinned.limits] == ["local"]
