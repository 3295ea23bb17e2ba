"""Which fleet store a deployment uses: Redis > a shared cache > the database, or FLEET STORE."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from resilience_django import fleet, fleetstore, live
from resilience_django.checks import check_settings
from resilience_django.fleetstore.cache import CacheStore
from resilience_django.fleetstore.database import DatabaseStore

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
DUMMY = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
FILE = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                    "LOCATION": "/tmp/resilience-select-test"}}  # fmt: skip
REDIS_URL = "redis://127.0.0.1:6379/0"


def _kind(resilience: dict[str, Any], caches: dict[str, Any]) -> str:
    with override_settings(RESILIENCE=resilience, CACHES=caches):
        return fleetstore.choose()


def test_with_no_redis_and_a_per_process_cache_the_database_carries_everything(
    database_fallback: None,
) -> None:
    with override_settings(RESILIENCE={}, CACHES=LOCMEM):
        assert isinstance(fleet.get_store(), DatabaseStore)
        live.reset()
        assert live._version_store() is fleet.get_store()  # one store for both
    assert _kind({}, DUMMY) == "database"


def test_redis_wins_then_a_shared_cache_then_the_database(database_fallback: None) -> None:
    assert _kind({"REDIS": {"URL": REDIS_URL}}, LOCMEM) == "redis"
    assert _kind({"FLEET": {"URL": REDIS_URL}}, FILE) == "redis"
    django_redis = {"default": {"BACKEND": "django_redis.cache.RedisCache",
                                "LOCATION": REDIS_URL}}  # fmt: skip
    assert _kind({"BACKEND": "redis", "REDIS": {"CACHE": "default"}}, django_redis) == "redis"
    assert _kind({}, FILE) == "cache"
    assert _kind({}, LOCMEM) == "database"


def test_store_setting_forces_one(database_fallback: None) -> None:
    assert _kind({"FLEET": {"STORE": "database"}}, FILE) == "database"
    assert _kind({"FLEET": {"STORE": "cache"}}, LOCMEM) == "cache"
    assert _kind({"FLEET": {"STORE": "redis"}, "REDIS": {"URL": REDIS_URL}}, FILE) == "redis"
    with override_settings(RESILIENCE={"FLEET": {"STORE": "cache"}}, CACHES=LOCMEM):
        assert isinstance(fleet.get_store(), CacheStore)


@pytest.mark.parametrize(
    ("fleet_settings", "message"),
    [
        ({"STORE": "mongo"}, "['STORE'] = 'mongo' is not one of redis, cache, database"),
        ({"STORE": ["redis"]}, "is not one of redis, cache, database"),
        ({"STORE": "redis"}, "['STORE'] is 'redis' but no Redis is configured"),
    ],
)
def test_a_bad_store_is_e042_with_a_hint(fleet_settings: dict[str, Any], message: str) -> None:
    with override_settings(RESILIENCE={"FLEET": fleet_settings}):
        (error,) = [m for m in check_settings() if m.id == "resilience.E042"]
    assert message in error.msg and error.hint
