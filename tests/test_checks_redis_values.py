"""REDIS, FLEET and FALLBACK values that passed the checks and then failed at connect time, or
were silently read as something else: each is a check error (or warning) with its own id now,
found without connecting (redis-py itself is asked whether it takes a URL's query options)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.core import checks
from django.test import override_settings

from resilience_django.checks import check_settings
from resilience_django.conf import UNEXPECTED, parse_settings
from resilience_django.limiting.redis_conn import make_sync_client, parse_redis_settings
from tests.services import REDIS_URL

URL = "redis://127.0.0.1:6379/0"


def _messages(resilience: Any) -> list[checks.CheckMessage]:
    with override_settings(RESILIENCE=resilience):
        return check_settings()


def _only(resilience: Any, check_id: str) -> checks.CheckMessage:
    messages = _messages(resilience)
    assert [m.id for m in messages] == [check_id], [(m.id, m.msg) for m in messages]
    assert UNEXPECTED not in messages[0].msg and messages[0].hint
    return messages[0]


BAD_URLS = [
    (f"{URL}?sockettimeout=1", "'sockettimeout'"),  # a typo: redis-py takes no such option
    (f"{URL}?foo=1", "'foo'"),
    ("unix:///tmp/redis.sock?foo=2", "'foo'"),
    (f"{URL}?ssl_cert_reqs=none", "'ssl_cert_reqs'"),  # TLS options need rediss://
    (f"{URL}?protocol=9", "protocol"),
    (f"{URL}?db=x", "db"),
    (f"{URL}?socket_timeout=-1", "socket_timeout"),
    (f"{URL}?socket_timeout=nan", "socket_timeout"),
    (f"{URL}?socket_connect_timeout=0", "socket_connect_timeout"),
    ("redis://127.0.0.1:6379/orders", "db"),  # redis-py would quietly use db 0
    ("redis://127.0.0.1:6379/-1", "db"),
    ("unix:///tmp/redis.sock?db=-1", "db"),
    ("unix://", "socket path"),
]


@pytest.mark.parametrize(("url", "named"), BAD_URLS)
def test_a_redis_url_redis_py_would_refuse_at_connect_time_is_e040(url: str, named: str) -> None:
    error = _only({"BACKEND": "redis", "REDIS": {"URL": url}}, "resilience.E040")
    assert named in error.msg
    assert "client_name" in str(error.hint) and "socket_keepalive" in str(error.hint)


@pytest.mark.parametrize(("url", "named"), BAD_URLS)
def test_a_fleet_url_redis_py_would_refuse_at_connect_time_is_e042(url: str, named: str) -> None:
    error = _only({"FLEET": {"URL": url}}, "resilience.E042")
    assert named in error.msg and "client_name" in str(error.hint)


def test_a_fleet_url_with_a_pool_size_below_one_is_e042() -> None:
    assert (
        "max_connections"
        in _only({"FLEET": {"URL": f"{URL}?max_connections=-1"}}, "resilience.E042").msg
    )


@pytest.mark.parametrize(
    "url",
    [
        f"{URL}?client_name=orders&socket_keepalive=true&protocol=3",
        "rediss://127.0.0.1:6379/0?ssl_cert_reqs=none&ssl_ca_certs=/etc/ssl/ca.pem",
        # Options the limiter sets itself are ignored, not refused (docs/settings.md#url).
        f"{URL}?health_check_interval=1&retry_on_timeout=true&max_connections=1",
        "unix:///tmp/redis.sock?db=2",
        "redis://127.0.0.1:6379",
        f"{URL}?db=3",
    ],
)
def test_redis_urls_redis_py_takes_still_pass(url: str) -> None:
    assert _messages({"BACKEND": "redis", "REDIS": {"URL": url}, "FLEET": {"URL": url}}) == []


def test_a_url_that_passes_the_check_connects_and_its_options_reach_the_client() -> None:
    settings = parse_redis_settings({"URL": f"{REDIS_URL}?client_name=checked"}, budget=1.0)
    client = make_sync_client(settings)
    try:
        assert client.client_getname() == "checked"
    finally:
        client.close()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_CONNECTIONS", True),  # bool is an int: it was a pool of 1
        ("MAX_CONNECTIONS", 2.7),  # was quietly 2
        ("MAX_CONNECTIONS", float("inf")),  # was "could not be read: OverflowError"
        ("MAX_CONNECTIONS", 10**100),
        ("MAX_CONNECTIONS", "0"),
        ("SOCKET_TIMEOUT", 0),  # a non-blocking socket: every decision would fall back
        ("SOCKET_TIMEOUT", "0ms"),
        ("SOCKET_TIMEOUT", "300d"),
        ("SOCKET_TIMEOUT", None),
        ("CONNECT_TIMEOUT", 0),
        ("CONNECT_TIMEOUT", float("nan")),
        ("CLUSTER", "false"),  # was True: a non-empty string
        ("CLUSTER", 1),
        ("PASSWORD", 12345),  # was dropped: Redis then refuses the unauthenticated client
        ("PASSWORD", b"secret"),
        ("KEY_PREFIX", None),  # was the prefix "None"
        ("KEY_PREFIX", "x" * 201),
        ("KEY_PREFIX", 5),
    ],
)
def test_a_redis_value_of_the_wrong_type_or_range_is_e040(key: str, value: Any) -> None:
    error = _only({"BACKEND": "redis", "REDIS": {"URL": URL, key: value}}, "resilience.E040")
    assert key in error.msg


@pytest.mark.parametrize(
    "sentinels",
    [
        [("10.0.0.5", True)],
        [("10.0.0.5", 70000)],
        [("10.0.0.5", 0)],
        [("10.0.0.5", 26379.9)],
        [("", 26379)],
        [(None, 26379)],
        [("10.0.0.5", "port")],
    ],
)
def test_a_sentinel_address_without_a_host_and_port_is_e040(sentinels: Any) -> None:
    raw = {"URL": "redis://mymaster/0", "SENTINELS": sentinels}
    assert "SENTINELS" in _only({"BACKEND": "redis", "REDIS": raw}, "resilience.E040").msg


def test_a_sentinel_port_written_as_digits_is_a_port() -> None:
    raw = {"URL": "redis://mymaster/0", "SENTINELS": [("10.0.0.5", "26379")]}
    parsed = parse_settings({"BACKEND": "redis", "REDIS": raw})
    assert parsed.errors == ()
    assert parsed.redis_settings is not None
    assert parsed.redis_settings.sentinels == (("10.0.0.5", 26379),)


def test_the_redis_values_at_the_ends_of_their_ranges_pass() -> None:
    raw = {
        "URL": URL,
        "MAX_CONNECTIONS": 1,
        "SOCKET_TIMEOUT": "60s",
        "CONNECT_TIMEOUT": "1ms",
        "CLUSTER": False,
        "PASSWORD": None,
        "KEY_PREFIX": "é",
    }
    parsed = parse_settings({"BACKEND": "redis", "REDIS": raw})
    assert parsed.errors == () and parsed.redis_settings is not None
    assert parsed.redis_settings.max_connections == 1
    assert parsed.redis_settings.socket_timeout == 60.0


# The instance count is trusted only once this process has heartbeated for one HEARTBEAT_TTL
# without a break (docs/fallback.md#a-cold-fleet): a TTL shorter than the gap between two
# heartbeats (PROBE_INTERVAL, +20 % jitter) lets each expire first, and the count stays young.
@pytest.mark.parametrize(
    "fallback",
    [
        {"HEARTBEAT_TTL": "300ms"},
        {"HEARTBEAT_TTL": "1s", "PROBE_INTERVAL": "1s"},
        {"HEARTBEAT_TTL": "2s", "PROBE_INTERVAL": "5s"},
    ],
)
def test_a_heartbeat_ttl_shorter_than_the_heartbeat_gap_is_w041(fallback: dict[str, str]) -> None:
    warning = _only(
        {"BACKEND": "redis", "REDIS": {"URL": URL}, "FALLBACK": fallback}, "resilience.W041"
    )
    assert warning.level == checks.WARNING
    assert "HEARTBEAT_TTL" in warning.msg and "PROBE_INTERVAL" in str(warning.hint)


@pytest.mark.parametrize(
    "resilience",
    [
        {"BACKEND": "redis", "REDIS": {"URL": URL}, "FALLBACK": {"PROBE_INTERVAL": "10s"}},
        {"BACKEND": "redis", "REDIS": {"URL": URL}, "FALLBACK": {"HEARTBEAT_TTL": "3s"}},
        # The count sets no share: nothing to be young.
        {
            "BACKEND": "redis",
            "REDIS": {"URL": URL},
            "FALLBACK": {"HEARTBEAT_TTL": "300ms", "INSTANCES": 4},
        },
        {
            "BACKEND": "redis",
            "REDIS": {"URL": URL},
            "FALLBACK": {"HEARTBEAT_TTL": "300ms", "SHARE": 0.5},
        },
        # The local backend has no heartbeats.
        {"FALLBACK": {"HEARTBEAT_TTL": "300ms"}},
    ],
)
def test_a_heartbeat_ttl_that_outlives_the_gap_or_is_unused_does_not_warn(
    resilience: Any,
) -> None:
    assert _messages(resilience) == []


def test_checking_urls_opens_no_connection() -> None:
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        name = "resilience-check-probe"
        parse_settings({"BACKEND": "redis", "REDIS": {"URL": f"{REDIS_URL}?client_name={name}"}})
        assert name not in [c.get("name") for c in admin.client_list()]
    finally:
        admin.close()


def test_with_the_local_backend_a_bad_redis_url_the_fleet_store_would_use_is_e040() -> None:
    error = _only({"BACKEND": "local", "REDIS": {"URL": f"{URL}?foo=1"}}, "resilience.E040")
    assert "fleet store" in error.msg and "'foo'" in error.msg


def test_with_the_local_backend_the_rest_of_redis_the_fleet_store_reads_is_checked() -> None:
    # tests/test_checks_redis_regressions.py: not when FLEET names its own URL or store.
    error = _only(
        {"BACKEND": "local", "REDIS": {"URL": URL, "MAX_CONNECTIONS": 0}}, "resilience.E040"
    )
    assert "MAX_CONNECTIONS" in error.msg and "fleet store" in error.msg


@pytest.mark.parametrize(
    "resilience",
    [
        {"BACKEND": "redis", "REDIS": {"URL": "redis://:hunter2-secret@127.0.0.1:6379/0?foo=1"}},
        {"BACKEND": "redis", "REDIS": {"URL": "rediss://app:hunter2-secret@[::1"}},
        {"BACKEND": "redis", "REDIS": {"URL": "redis://h/0?password=hunter2-secret&foo=1"}},
        {"BACKEND": "local", "REDIS": {"URL": "redis://u:hunter2-secret@127.0.0.1/x"}},
        {"FLEET": {"URL": "redis://u:hunter2-secret@127.0.0.1:6379/0?foo=1"}},
        {"BACKEND": "redis", "REDIS": {"URL": URL, "PASSWORD": 12345678}},
    ],
)
def test_a_check_message_never_shows_a_password(resilience: Any) -> None:
    # Check output lands in CI logs and deploy logs: the URL is named, its password is not.
    messages = _messages(resilience)
    assert messages, "the setting is bad: a check must say so"
    for message in messages:
        assert "hunter2-secret" not in message.msg and "12345678" not in message.msg
        assert "hunter2-secret" not in (message.hint or "")
