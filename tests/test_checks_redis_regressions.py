"""REDIS settings that worked before the stricter checks and must keep working, the check and
the fleet store agreeing on REDIS with BACKEND 'local', and passwords kept out of check output
even when they make the URL malformed."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from resilience_django.checks import check_settings
from resilience_django.conf import parse_settings
from resilience_django.exceptions import ConfigError
from resilience_django.fleetstore import select
from resilience_django.limiting.redis_conn import make_sync_client
from tests.services import REDIS_URL

URL = "redis://127.0.0.1:6379/0"


def _messages(resilience: Any) -> list[checks.CheckMessage]:
    with override_settings(RESILIENCE=resilience):
        return check_settings()


@pytest.mark.parametrize(
    "location",
    [
        "redis://127.0.0.1:6379/1,redis://127.0.0.1:6380/1",  # django-redis: primary,replica
        "redis://127.0.0.1:6379/1;redis://127.0.0.1:6380/1",  # Django's RedisCache: [;,]
        ["redis://127.0.0.1:6379/1", "redis://127.0.0.1:6380/1"],
    ],
)
def test_a_cache_location_listing_servers_uses_the_first(location: str | list[str]) -> None:
    caches = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": location}}
    with override_settings(CACHES=caches):
        parsed = parse_settings({"BACKEND": "redis", "REDIS": {"CACHE": "default"}})
    assert parsed.errors == ()
    assert parsed.redis_settings is not None
    assert parsed.redis_settings.url == "redis://127.0.0.1:6379/1"


def test_max_connections_as_digits_and_an_empty_key_prefix_are_read() -> None:
    # os.environ.get("REDIS_MAX_CONNECTIONS", "64") was read before, as sentinel ports are.
    raw = {"URL": REDIS_URL, "MAX_CONNECTIONS": "64", "KEY_PREFIX": ""}
    parsed = parse_settings({"BACKEND": "redis", "REDIS": raw})
    assert parsed.errors == () and parsed.redis_settings is not None
    assert parsed.redis_settings.max_connections == 64
    assert parsed.redis_settings.key_prefix == ""
    client = make_sync_client(parsed.redis_settings)
    try:
        assert client.ping()
    finally:
        client.close()


CLUSTER_URL = "redis://127.0.0.1:7000/0?read_from_replicas=true"


def test_a_cluster_url_may_carry_redis_cluster_arguments() -> None:
    assert _messages({"BACKEND": "redis", "REDIS": {"URL": CLUSTER_URL, "CLUSTER": True}}) == []


@pytest.mark.parametrize(
    ("redis", "named"),
    [
        ({"URL": CLUSTER_URL}, "'read_from_replicas'"),  # not a plain connection's argument
        ({"URL": f"{CLUSTER_URL}&foo=1", "CLUSTER": True}, "'foo'"),
    ],
)
def test_other_url_options_are_still_refused(redis: dict[str, Any], named: str) -> None:
    messages = _messages({"BACKEND": "redis", "REDIS": redis})
    assert [m.id for m in messages] == ["resilience.E040"] and named in messages[0].msg


def test_a_timeout_above_a_minute_names_the_bound() -> None:
    messages = _messages({"BACKEND": "redis", "REDIS": {"URL": URL, "SOCKET_TIMEOUT": "2m"}})
    assert [m.id for m in messages] == ["resilience.E040"]
    assert "SOCKET_TIMEOUT" in messages[0].msg and "at most 60s" in messages[0].msg


REDIS_VALUES = [
    {"SOCKET_TIMEOUT": "2m"},
    {"CONNECT_TIMEOUT": 0},
    {"MAX_CONNECTIONS": 0},
    {"MAX_CONNECTIONS": "64"},
    {"KEY_PREFIX": ""},
    {"KEY_PREFIX": None},
    {"CLUSTER": "false"},
    {"PASSWORD": 12345},
    {"NOPE": 1},
    {"URL": f"{URL}?foo=1"},
    {},
]


@pytest.mark.parametrize("extra", REDIS_VALUES)
def test_with_the_local_backend_the_check_refuses_what_the_fleet_store_refuses(
    extra: dict[str, Any],
) -> None:
    parsed = parse_settings({"BACKEND": "local", "REDIS": {"URL": URL, **extra}})
    assert select.choose(parsed) == "redis"  # the fleet store reads REDIS
    try:
        select.parse_redis(parsed.redis, budget=1.0)  # what select.build() does
    except ConfigError:
        assert [e.check_id for e in parsed.errors] == ["resilience.E040"]
        assert "the fleet store uses it" in str(parsed.errors[0]) and parsed.errors[0].hint
    else:
        assert parsed.errors == ()


@pytest.mark.parametrize(
    "fleet", [{"URL": "redis://127.0.0.1:6379/3"}, {"STORE": "database"}, {"STORE": "cache"}]
)
def test_a_bad_redis_the_fleet_store_does_not_read_passes_with_the_local_backend(
    fleet: dict[str, Any],
) -> None:
    redis = {"URL": f"{URL}?foo=1", "MAX_CONNECTIONS": 0}
    backend = "django.core.cache.backends.db.DatabaseCache"
    caches = {"default": {"BACKEND": backend, "LOCATION": "resilience_cache"}}
    with override_settings(CACHES=caches):
        assert _messages({"BACKEND": "local", "REDIS": redis, "FLEET": fleet}) == []


@pytest.mark.parametrize("password", ["Zx9/Qk2+Lm", "Hq7#vN3", "Rb5?kW8", "Tp4@Jc1/Ws6"])
@pytest.mark.parametrize("where", ["REDIS", "FLEET"])
def test_a_password_holding_url_delimiters_is_not_in_check_output(
    password: str, where: str
) -> None:
    url = f"redis://default:{password}@10.0.0.5:6379/0"
    resilience = {"BACKEND": "redis", "REDIS": {"URL": url}}
    messages = _messages(resilience if where == "REDIS" else {"FLEET": {"URL": url}})
    assert messages, "the URL is malformed: a check must say so"
    for message in messages:
        text = f"{message.msg} {message.hint}"
        # Nor the part before or after a delimiter (urlsplit quoted it as the "port").
        for piece in [password, *re.split("[/?#@]", password)]:
            assert piece not in text, text
    assert "redis://default:***@10.0.0.5:6379/0" in messages[0].msg  # the host still shown
    if "@" not in password:  # one "@": the rest reads as a port
        assert "percent-encode / ? # @ in a password" in messages[0].msg


def test_a_password_in_the_url_and_an_at_sign_in_the_query_are_both_hidden() -> None:
    url = "redis://u:se/cret@10.0.0.5:6379/0?client_name=me@host&password=pw2secret"
    message = _messages({"FLEET": {"URL": url}})[0].msg
    assert "se/cret" not in message and "pw2secret" not in message and "redis://u:***@" in message
