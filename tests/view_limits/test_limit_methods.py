"""``@limit(methods=...)`` takes what the docs promise: a list, one name, ``ALL`` or ``UNSAFE``."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from resilience_django.view_limits.compat import ALL
from resilience_django.view_limits.decorator import limit, process_limiter


@pytest.fixture(autouse=True)
def _fresh_limiter() -> None:
    process_limiter().clear()


@override_settings(MIDDLEWARE=[])
@pytest.mark.parametrize(
    ("methods", "group"), [("POST", "m-one-name"), (["POST"], "m-a-list"), ({"POST"}, "m-a-set")]
)
def test_limit_with_methods_as_one_name_limits_that_method(methods: object, group: str) -> None:
    @limit("1/m", group=group, methods=methods)  # type: ignore[arg-type]
    def view(request: object) -> HttpResponse:
        return HttpResponse("ok")

    factory = RequestFactory()
    # "POST" was read as the list of its letters, ['P', 'O', 'S', 'T']: never limited.
    assert [view(factory.post("/")).status_code for _ in range(2)] == [200, 429]
    assert [view(factory.get("/")).status_code for _ in range(2)] == [200, 200]


@override_settings(MIDDLEWARE=[])
def test_limit_with_methods_all_limits_every_method() -> None:
    @limit("1/m", group="m-all", methods=ALL)
    def view(request: object) -> HttpResponse:
        return HttpResponse("ok")

    factory = RequestFactory()
    assert [view(factory.get("/")).status_code, view(factory.post("/")).status_code] == [200, 429]
