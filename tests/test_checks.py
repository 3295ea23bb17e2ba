"""Each check id has its own test: a bad setting must fail `manage.py check`."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from resilience_django.checks import check_deploy, check_settings
from resilience_django.conf import get_settings


def _ids(resilience: Any, check: Any = check_settings) -> list[str]:
    with override_settings(RESILIENCE=resilience):
        return [m.id for m in check()]


@pytest.mark.parametrize(
    ("setting", "check_id"),
    [
        ([], "resilience.E001"),
        ({"BACKNED": "local"}, "resilience.E002"),
        ({"BACKEND": "memcached"}, "resilience.E003"),
        ({"REDIS": "redis://x"}, "resilience.E004"),
        ({"LOCAL_MAX_KEYS": 0}, "resilience.E013"),
        ({"RELOAD_INTERVAL": "often"}, "resilience.E014"),
        ({"RELOAD_INTERVAL": 0}, "resilience.E014"),
        # The parsers of each capability report through the same check:
        ({"TRUSTED_PROXIES": "everyone"}, "resilience.E010"),
        ({"LIMITS": [{"name": "a", "rate": "10/x"}]}, "resilience.E020"),
        ({"LIMITS": {"name": "a"}}, "resilience.E030"),
        ({"BACKEND": "redis", "REDIS": {"URL": "http://cache"}}, "resilience.E040"),
        ({"FALLBACK": {"FAILURES": 0}}, "resilience.E041"),
        ({"SHEDDING": {"name": "x"}}, "resilience.E070"),
        ({"SHEDDING": [{"name": "o", "max_concurrent": 0}]}, "resilience.E073"),
        ({"DEADLINE": {"DEFAULT": "soon"}}, "resilience.E005"),
        ({"DEADLINE": "30s"}, "resilience.E005"),
        ({"DEADLINE": {"DEFAULT": "0s"}}, "resilience.E005"),
        ({"DEADLINE": {"ROUTES": {"/api": "0ms"}}}, "resilience.E008"),
        ({"DEADLINE": {"HEADERS": "grpc-timeout"}}, "resilience.E006"),
        ({"DEADLINE": {"OUTBOUND_MARGIN": "-3ms"}}, "resilience.E007"),
        ({"DEADLINE": {"ROUTES": {"/api": "fast"}}}, "resilience.E008"),
        ({"DEADLINE": {"ROUTES": {"^/api/(": "1s"}}}, "resilience.E008"),
        ({"DEADLINE": {"ROUTES": ["/api"]}}, "resilience.E008"),
        ({"RESPONSE_HANDLERS": {"deadline": "no.such.module.handler"}}, "resilience.E009"),
        ({"RESPONSE_HANDLERS": {"teapot": "json.dumps"}}, "resilience.E009"),
        ({"RESPONSE_HANDLERS": {"deadline": "json.decoder"}}, "resilience.E009"),
        ({"FALLBACK_LATENCY": "fast"}, "resilience.E011"),
        ({"RATELIMIT_HEADERS": "yes"}, "resilience.E012"),
    ],
)
def test_bad_setting_fails_its_check_with_a_hint(setting: Any, check_id: str) -> None:
    with override_settings(RESILIENCE=setting):
        messages = check_settings()
    found = [m for m in messages if m.id == check_id]
    assert found, [m.id for m in messages]
    assert found[0].level == checks.ERROR
    assert found[0].hint


def test_default_settings_pass_every_check() -> None:
    assert _ids({}) == []


def test_full_design_example_passes() -> None:
    assert (
        _ids(
            {
                "BACKEND": "local",
                "FALLBACK_LATENCY": "50ms",
                "DEADLINE": {
                    "DEFAULT": "30s",
                    "HEADERS": ["grpc-timeout", "X-Timeout-Ms"],
                    "ROUTES": {"/api/orders": "800ms", "orders:quote": "300ms"},
                },
            }
        )
        == []
    )


def test_bad_settings_never_raise_at_parse_time() -> None:
    with override_settings(RESILIENCE={"DEADLINE": {"DEFAULT": object()}}):
        parsed = get_settings()
    assert parsed.errors
    assert parsed.deadline.default == 30.0


def test_middleware_not_first_is_warned() -> None:
    with override_settings(
        MIDDLEWARE=[
            "django.middleware.common.CommonMiddleware",
            "resilience_django.middleware.ResilienceMiddleware",
        ]
    ):
        ids = [m.id for m in check_settings()]
    assert "resilience.W002" in ids


class SyncOnlyMiddleware:
    """A middleware as Django's docs write the simplest one: sync only by default."""

    def __init__(self, get_response: object) -> None:
        self.get_response = get_response


def test_a_sync_only_middleware_below_ours_is_warned() -> None:
    ours = "resilience_django.middleware.ResilienceMiddleware"
    sync_only = f"{__name__}.SyncOnlyMiddleware"
    with override_settings(MIDDLEWARE=[ours, "django.middleware.common.CommonMiddleware"]):
        assert "resilience.W004" not in [m.id for m in check_settings()]
    with override_settings(MIDDLEWARE=[ours, sync_only]):
        warned = [m for m in check_settings() if m.id == "resilience.W004"]
    assert len(warned) == 1 and sync_only in warned[0].msg
    with override_settings(MIDDLEWARE=[sync_only, ours]):  # above ours: no effect on it
        assert "resilience.W004" not in [m.id for m in check_settings()]


def test_local_backend_with_limits_warns_on_deploy() -> None:
    ids = _ids({"LIMITS": [{"name": "a", "rate": "1/s", "key": "ip"}]}, check_deploy)
    assert "resilience.W001" in ids
    assert "resilience.W001" not in _ids({}, check_deploy)


def test_override_settings_is_seen_without_a_restart() -> None:
    with override_settings(RESILIENCE={"DEADLINE": {"DEFAULT": "2s"}}):
        assert get_settings().deadline.default == 2.0
    with override_settings(RESILIENCE={"DEADLINE": {"DEFAULT": "3s"}}):
        assert get_settings().deadline.default == 3.0


def test_per_process_cache_warns_on_deploy_only_when_store_forces_the_cache() -> None:
    locmem = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    shared = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": "/tmp/resilience-check-test"}}  # fmt: skip
    forced = {"FLEET": {"STORE": "cache"}}
    with override_settings(CACHES=locmem):
        # Left to itself the fleet store falls to the database, which workers share.
        assert "resilience.W003" not in _ids({}, check_deploy)
        assert "resilience.W003" in _ids(forced, check_deploy)
        assert "resilience.W003" not in _ids(forced, check_settings)  # a deploy warning
        redis = {"BACKEND": "redis", "REDIS": {"URL": "redis://127.0.0.1:6379/0"}}
        assert "resilience.W003" not in _ids(redis, check_deploy)
    with override_settings(CACHES=shared):
        assert "resilience.W003" not in _ids(forced, check_deploy)


# Values that passed the checks and then made requests fail (issue 12, items 3,
# 5 and 9): each is out of its documented range now, and refused with an id.
@pytest.mark.parametrize(
    ("setting", "check_id"),
    [
        ({"LOCAL_MAX_KEYS": 10**30}, "resilience.E013"),
        ({"LOCAL_MAX_KEYS": 10_000_001}, "resilience.E013"),
        ({"LIMITS": [{"name": "a", "rate": "9223372036854775808/s"}]}, "resilience.E020"),
        ({"LIMITS": [{"name": "a", "rate": "1000000001/s"}]}, "resilience.E020"),
        ({"LIMITS": [{"name": "a", "rate": "1/400d"}]}, "resilience.E020"),
        ({"LIMITS": [{"name": "a", "rate": "1" * 5000 + "/s"}]}, "resilience.E020"),
        ({"LIMITS": [{"name": "a", "rate": "10/s", "burst": 10**30}]}, "resilience.E025"),
        ({"DEADLINE": {"DEFAULT": "30d"}}, "resilience.E005"),
        ({"DEADLINE": {"DEFAULT": 86401}}, "resilience.E005"),
        ({"DEADLINE": {"DEFAULT": float("inf")}}, "resilience.E005"),
        ({"DEADLINE": {"ROUTES": {"/api": "25d"}}}, "resilience.E008"),
        ({"DEADLINE": {"OUTBOUND_MARGIN": "2d"}}, "resilience.E007"),
        ({"FALLBACK_LATENCY": "0ms"}, "resilience.E011"),
        ({"FALLBACK_LATENCY": "2m"}, "resilience.E011"),
        ({"RELOAD_INTERVAL": "2d"}, "resilience.E014"),
        ({"TRUSTED_PROXIES": 10**30}, "resilience.E010"),
        ({"TRUSTED_PROXIES": [False]}, "resilience.E010"),
        ({"FALLBACK": "x"}, "resilience.E041"),
        ({"FALLBACK": 5}, "resilience.E041"),
        ({"FALLBACK": {"FAILURES": 10**30}}, "resilience.E041"),
        ({"FALLBACK": {"FAILURES": "3"}}, "resilience.E041"),
        ({"FALLBACK": {"PROBE_INTERVAL": "2d"}}, "resilience.E041"),
        ({"FALLBACK": {"SHARE": float("nan")}}, "resilience.E041"),
        ({"BREAKERS": {"p": {"failure_threshold": 10**30}}}, "resilience.E053"),
        ({"BREAKERS": {"p": {"open_for": "400d"}}}, "resilience.E054"),
        ({"BREAKERS": {"p": {"shared_poll": float("inf")}}}, "resilience.E067"),
        ({"SHEDDING": [{"name": "o", "max_concurrent": 2**63 - 1}]}, "resilience.E073"),
        ({"FLEET": "x"}, "resilience.E042"),
        ({"FLEET": {"TTL": "x"}}, "resilience.E042"),
        ({"FLEET": {"TTL": 0}}, "resilience.E042"),
        ({"FLEET": {"TTL": float("nan")}}, "resilience.E042"),
        ({"FLEET": {"CACHE": "nope"}}, "resilience.E042"),
        ({"FLEET": {"URL": "http://cache"}}, "resilience.E042"),
        ({"FLEET": {"URL": "redis://127.0.0.1:port/0"}}, "resilience.E042"),
        ({"FLEET": {"URL": "redis://"}}, "resilience.E042"),
        ({"FLEET": {"ENABLED": "yes"}}, "resilience.E042"),
        ({"FLEET": {"PREFIX": ""}}, "resilience.E042"),
        ({"FLEET": {"NOPE": 1}}, "resilience.E042"),
    ],
)
def test_out_of_range_or_malformed_value_fails_its_check(setting: Any, check_id: str) -> None:
    with override_settings(RESILIENCE=setting):
        messages = check_settings()
    found = [m for m in messages if m.id == check_id]
    assert found, [(m.id, m.msg) for m in messages]
    assert found[0].level == checks.ERROR and found[0].hint
    assert len(found[0].msg) < 400  # a 5,000-digit value is not echoed whole


@pytest.mark.parametrize(
    "setting",
    [
        {"LOCAL_MAX_KEYS": 10_000_000},
        {
            "LIMITS": [
                {"name": "a", "rate": "1000000000/s", "algorithm": "gcra", "burst": 1_000_000_000}
            ]
        },
        {"LIMITS": [{"name": "a", "rate": "1/365d"}]},
        {"DEADLINE": {"DEFAULT": "1d", "ROUTES": {"/api": "24h"}}},
        {"SHEDDING": [{"name": "o", "max_concurrent": 1_000_000, "queue": 1_000_000}]},
        {"FALLBACK": {"FAILURES": 1_000_000, "PROBE_INTERVAL": "1d", "SHARE": 1}},
        {"FLEET": {"URL": "redis://127.0.0.1:6379/0", "TTL": 86400, "PREFIX": "x"}},
        {"FLEET": {"URL": "unix:///tmp/redis.sock", "CACHE": "default", "ENABLED": False}},
    ],
)
def test_the_ends_of_each_range_pass(setting: Any) -> None:
    assert _ids(setting) == []


def test_a_valid_fleet_is_parsed_into_fleet_settings() -> None:
    with override_settings(RESILIENCE={"FLEET": {"TTL": 30, "PREFIX": "p"}}):
        fleet = get_settings().fleet
    assert (fleet.ttl, fleet.prefix, fleet.cache, fleet.url, fleet.enabled) == (
        30.0,
        "p",
        "default",
        None,
        True,
    )
