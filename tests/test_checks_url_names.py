"""resilience.W005: a URL name in RESILIENCE that the URLconf does not define is a warning,
not a rule that silently matches nothing (tests/urls.py is the URLconf)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core import checks
from django.test import override_settings
from django.urls import clear_url_caches, path

from resilience_django.checks import check_url_names

from . import views

TYPOS = {
    "DEADLINE": {"ROUTES": {"orders:qoute": "300ms", "orders:quote": "300ms", "/api/": "1s"}},
    "LIMITS": [
        {"name": "by-name", "view": "helo", "rate": "1/s"},
        {"name": "good", "view": "hello", "rate": "1/s"},
    ],
    "SHEDDING": [{"name": "s", "view": "orders:nope", "max_concurrent": 5}],
    "BREAKERS": {"route-breaker": {"view": "fail-snyc"}},
}


def _warnings(resilience: Any) -> list[checks.CheckMessage]:
    with override_settings(RESILIENCE=resilience):
        return check_url_names()


def test_names_the_urlconf_does_not_define_are_listed_in_one_warning_with_a_hint() -> None:
    [warning] = _warnings(TYPOS)
    assert isinstance(warning, checks.Warning)
    assert warning.id == "resilience.W005" and warning.hint
    for where in ("'orders:qoute' (DEADLINE['ROUTES']['orders:qoute'])",
                  "'helo' (LIMITS 'by-name')", "'orders:nope' (SHEDDING 's')",
                  "'fail-snyc' (BREAKERS 'route-breaker')"):  # fmt: skip
        assert where in warning.msg
    for defined in ("'orders:quote'", "'hello'"):
        assert defined not in warning.msg


def test_defined_names_namespaced_names_and_paths_raise_nothing() -> None:
    assert _warnings({}) == []
    assert _warnings({"DEADLINE": {"ROUTES": {"orders:quote": "1s", "/x/": "1s"}}}) == []
    assert _warnings({"LIMITS": [{"name": "a", "view": "resilience:metrics", "rate": "1/s"}]}) == []


def test_an_unnamed_pattern_is_known_by_its_views_dotted_path() -> None:
    # Django's view_name for a pattern without a name, which the matchers then compare with.
    dotted = "tests.views.hello"
    assert _warnings({"LIMITS": [{"name": "a", "view": dotted, "rate": "1/s"}]})
    with _urlconf([path("x/", views.hello)]):
        assert _warnings({"LIMITS": [{"name": "a", "view": dotted, "rate": "1/s"}]}) == []


def test_a_broken_urlconf_does_not_crash_the_check() -> None:
    with _urlconf(None):  # a module without urlpatterns: ImproperlyConfigured
        assert _warnings(TYPOS) == []
    with _urlconf(None, name="tests.no_such_urls_module"):  # cannot be imported
        assert _warnings(TYPOS) == []


@contextmanager
def _urlconf(patterns: list[Any] | None, name: str = "") -> Iterator[None]:
    """ROOT_URLCONF pointed at a module holding ``patterns`` (none: no urlpatterns), or
    at ``name``, a module that does not exist."""
    module = types.ModuleType("tests._check_urls")
    if patterns is not None:
        module.__dict__["urlpatterns"] = patterns
    if not name:
        sys.modules[module.__name__] = module
    try:
        with override_settings(ROOT_URLCONF=name or module.__name__):
            clear_url_caches()
            yield
    finally:
        sys.modules.pop(module.__name__, None)
        clear_url_caches()
