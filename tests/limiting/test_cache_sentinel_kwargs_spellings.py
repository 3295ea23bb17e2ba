"""A django-redis cache's ``OPTIONS["SENTINEL_KWARGS"]`` is django-redis's own dict: the
``ssl_cert_reqs`` spellings redis-py takes there (``None``, ``ssl.CERT_*``) must not make a
working cache a ``resilience.E040`` for the limiter (docs/settings.md#cache).
"""

from __future__ import annotations

import ssl

import pytest
from django.test import override_settings

from resilience_django.conf import parse_redis
from resilience_django.exceptions import ConfigError


def _caches(sentinel_kwargs: dict[str, object]) -> dict[str, object]:
    return {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "limits": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://mymaster/0",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "SENTINELS": [("127.0.0.1", 26379)],
                "SENTINEL_KWARGS": sentinel_kwargs,
            },
        },
    }


@pytest.mark.parametrize(
    ("reqs", "word"),
    [
        (None, "none"),
        (ssl.CERT_NONE, "none"),
        (ssl.CERT_OPTIONAL, "optional"),
        (ssl.CERT_REQUIRED, "required"),
        ("required", "required"),
    ],
)
def test_redis_pys_spellings_of_ssl_cert_reqs_in_a_cache_are_taken(reqs: object, word: str) -> None:
    with override_settings(CACHES=_caches({"password": "s", "ssl": True, "ssl_cert_reqs": reqs})):
        settings = parse_redis({"CACHE": "limits"}, budget=0.05)
    assert dict(settings.sentinel_kwargs) == {"password": "s", "ssl": True, "ssl_cert_reqs": word}


def test_a_cache_without_ssl_cert_reqs_gets_no_verify_mode() -> None:
    with override_settings(CACHES=_caches({"password": "s"})):
        settings = parse_redis({"CACHE": "limits"}, budget=0.05)
    assert settings.sentinel_kwargs == (("password", "s"),)


def test_a_wrong_ssl_cert_reqs_in_a_cache_is_still_e040() -> None:
    caches = _caches({"ssl_cert_reqs": "sometimes"})
    with override_settings(CACHES=caches), pytest.raises(ConfigError) as error:
        parse_redis({"CACHE": "limits"}, budget=0.05)
    assert error.value.check_id == "resilience.E040"
