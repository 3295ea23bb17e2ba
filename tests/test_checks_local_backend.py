"""REDIS is checked against CACHES only when BACKEND is "redis": test settings switch it off."""

from __future__ import annotations

from django.core.checks import run_checks
from django.test import override_settings

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@override_settings(CACHES=LOCMEM, RESILIENCE={"BACKEND": "local", "REDIS": {"CACHE": "default"}})
def test_local_backend_with_redis_naming_a_locmem_cache_passes_the_checks() -> None:
    ids = [m.id for m in run_checks(tags=["resilience"])]
    assert "resilience.E040" not in ids


@override_settings(CACHES=LOCMEM, RESILIENCE={"BACKEND": "redis", "REDIS": {"CACHE": "default"}})
def test_redis_backend_with_a_locmem_cache_is_still_an_error() -> None:
    ids = [m.id for m in run_checks(tags=["resilience"])]
    assert "resilience.E040" in ids
