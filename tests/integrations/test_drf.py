"""The DRF throttles, against real DRF views with BasicAuthentication, in process.

Token authentication over a real server, with Redis, is in ``test_drf_e2e.py``.
"""

from __future__ import annotations

import base64
import re

import pytest
from django.test import override_settings

pytest.importorskip("rest_framework")

from resilience_django.integrations.drf import parse_drf_rate
from resilience_django.units import Rate
from resilience_django.view_limits.decorator import process_limiter

RATES = {"user": "3/min", "anon": "2/minute", "uploads": "2/m", "keys": "2/hour"}
SETTINGS = {
    "ROOT_URLCONF": "tests.integrations.drf_views",
    "REST_FRAMEWORK": {"DEFAULT_THROTTLE_RATES": RATES},
    # Basic authentication hashes the password on every request: keep it cheap.
    "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
}

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.integrations.drf_views")]


@pytest.fixture(autouse=True)
def _fresh_limiter():
    process_limiter().clear()


@pytest.fixture
def users(django_user_model):
    with override_settings(**SETTINGS):
        for name in ("alice", "bob"):
            django_user_model.objects.create_user(name, password=f"{name}-pw")


def basic(name: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{name}-pw".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def assert_throttled(response, rule: str) -> None:
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert f'"{rule}";q=' in response["RateLimit-Policy"]
    assert re.search(rf'"{rule}";r=0;t=\d+', response["RateLimit"]), response["RateLimit"]


@override_settings(**SETTINGS)
def test_five_requests_as_alice_get_three_200_then_429_with_retry_after_and_headers(client, users):
    responses = [client.get("/drf/user/", **basic("alice")) for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert responses[0].json() == {"user": "alice", "decided": True}
    assert responses[0]["RateLimit-Policy"] == '"drf.user";q=3;w=60'
    assert responses[0]["RateLimit"].startswith('"drf.user";r=2;')
    assert responses[2]["RateLimit"].startswith('"drf.user";r=0;')
    for response in responses[3:]:
        assert_throttled(response, "drf.user")
        assert "throttled" in response.json()["detail"].lower()
    # Bob has his own budget; so does an anonymous client of the same address.
    assert client.get("/drf/user/", **basic("bob")).status_code == 200
    assert client.get("/drf/user/").status_code == 200


@override_settings(**SETTINGS)
def test_anonymous_requests_are_keyed_by_ip(client, users):
    one = [client.get("/drf/user/", REMOTE_ADDR="203.0.113.1").status_code for _ in range(4)]
    assert one == [200, 200, 200, 429]
    assert client.get("/drf/user/", REMOTE_ADDR="203.0.113.2").status_code == 200


@override_settings(**SETTINGS)
def test_anon_throttle_limits_anonymous_clients_only(client, users):
    assert [client.get("/drf/anon/").status_code for _ in range(3)] == [200, 200, 429]
    assert all(client.get("/drf/anon/", **basic("alice")).status_code == 200 for _ in range(4))


@override_settings(**SETTINGS)
def test_scoped_throttle_takes_the_views_throttle_scope(client, users):
    codes = [client.get("/drf/scoped/", **basic("alice")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.get("/drf/scoped/", **basic("alice"))["RateLimit-Policy"].startswith(
        '"drf.uploads";q=2;w=60'
    )
    # A view without throttle_scope is not limited by the scoped throttle.
    assert all(client.get("/drf/unscoped/").status_code == 200 for _ in range(5))


@override_settings(**SETTINGS)
def test_a_subclass_picks_key_algorithm_and_burst(client, users):
    assert client.get("/drf/api-key/", HTTP_X_API_KEY="k1").status_code == 200
    refused = client.get("/drf/api-key/", HTTP_X_API_KEY="k1")
    assert_throttled(refused, "drf.keys")  # gcra with burst 1: the second at once is refused
    assert int(refused["Retry-After"]) > 60  # 2/hour: the next one in about half an hour
    assert client.get("/drf/api-key/", HTTP_X_API_KEY="k2").status_code == 200
    # No key, no limit (as for every header key).
    assert all(client.get("/drf/api-key/").status_code == 200 for _ in range(3))


@override_settings(
    **{
        **SETTINGS,
        "REST_FRAMEWORK": {
            "DEFAULT_THROTTLE_CLASSES": ["resilience_django.integrations.drf.ResilienceThrottle"],
            "DEFAULT_THROTTLE_RATES": {"user": "1/m"},
        },
    }
)
def test_default_throttle_classes_setting_takes_the_throttle_by_dotted_path(client, users):
    assert client.get("/drf/defaults/", **basic("alice")).status_code == 200
    assert_throttled(client.get("/drf/defaults/", **basic("alice")), "drf.user")


@override_settings(
    **{**SETTINGS, "REST_FRAMEWORK": {"DEFAULT_THROTTLE_RATES": {**RATES, "user": None}}}
)
def test_a_rate_of_none_means_no_limit_as_in_drf(client, users):
    assert all(client.get("/drf/user/", **basic("alice")).status_code == 200 for _ in range(5))


USER_RULE = {"name": "per-user", "key": "user", "rate": "3/m", "after_auth": True}


@override_settings(**SETTINGS, RESILIENCE={"LIMITS": [{**USER_RULE, "path": "/drf/"}]})
def test_an_after_auth_rule_sees_the_user_drf_authenticated(client, users):
    codes = [client.get("/drf/rules/", **basic("alice")).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    refused = client.get("/drf/rules/", **basic("alice"))
    assert_throttled(refused, "per-user")
    assert client.get("/drf/rules/", **basic("bob")).status_code == 200
    # A user key has no key for anonymous requests: the rule does not apply to them.
    assert all(client.get("/drf/rules/").status_code == 200 for _ in range(5))


@override_settings(
    **SETTINGS,
    RESILIENCE={"LIMITS": [{"name": "later", "key": "ip", "rate": "1/m", "after_auth": True}]},
)
def test_after_auth_rules_are_left_out_of_the_middleware(client):
    assert [client.get("/plain/").status_code for _ in range(3)] == [200, 200, 200]


@override_settings(
    **SETTINGS,
    RESILIENCE={"LIMITS": [{"name": "drf-per-ip", "path": "/drf/", "key": "ip", "rate": "10/m"}]},
)
def test_throttle_and_middleware_headers_are_listed_together(client, users):
    response = client.get("/drf/user/", **basic("alice"))
    assert response.status_code == 200
    policy = response["RateLimit-Policy"]
    assert '"drf-per-ip";q=10;w=60' in policy and '"drf.user";q=3;w=60' in policy
    assert '"drf-per-ip";r=9;' in response["RateLimit"]
    assert '"drf.user";r=2;' in response["RateLimit"]
    for _ in range(2):
        client.get("/drf/user/", **basic("alice"))
    refused = client.get("/drf/user/", **basic("alice"))
    assert_throttled(refused, "drf.user")
    assert '"drf-per-ip";q=10' in refused["RateLimit-Policy"]


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/min", Rate(100, 60.0)),
        ("10/second", Rate(10, 1.0)),
        ("1000/day", Rate(1000, 86400.0)),
        ("5/hour", Rate(5, 3600.0)),
        ("5/hours", Rate(5, 3600.0)),  # DRF reads the unit's first letter
        ("3/s", Rate(3, 1.0)),
        ("100/30s", Rate(100, 30.0)),  # and ours still work
    ],
)
def test_drf_rate_strings_parse_as_drf_reads_them(text, rate):
    assert parse_drf_rate(text) == rate


@override_settings(**{**SETTINGS, "REST_FRAMEWORK": {"DEFAULT_THROTTLE_RATES": {"user": "3/x"}}})
def test_a_bad_drf_rate_is_improperly_configured():
    from django.core.exceptions import ImproperlyConfigured

    from resilience_django.integrations.drf import ResilienceThrottle

    with pytest.raises(ImproperlyConfigured, match="'3/x'"):
        ResilienceThrottle().get_rate("user")


@override_settings(**SETTINGS)
def test_disable_limits_turns_the_throttles_off_too(client, users):
    from resilience_django.testing import disable_limits

    with disable_limits():
        assert all(client.get("/drf/user/", **basic("alice")).status_code == 200 for _ in range(5))


def test_an_after_auth_that_is_not_a_bool_is_check_error_e031():
    from resilience_django.conf import parse_settings

    parsed = parse_settings({"LIMITS": [{"name": "u", "rate": "1/m", "after_auth": "yes"}]})
    assert [e.check_id for e in parsed.errors] == ["resilience.E031"]
    assert "after_auth" in str(parsed.errors[0]) and parsed.errors[0].hint
