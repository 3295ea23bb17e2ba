"""Route breakers in the runtime: methods in any case (GET brings HEAD), first match among many."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client, override_settings

from resilience_django.breakers.registry import get_breaker, registry


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    registry.clear()
    yield
    registry.clear()


def _breakers(**routes: dict[str, object]) -> dict[str, object]:
    return {"BREAKERS": {name: {"open_for": "60s", **spec} for name, spec in routes.items()}}


@override_settings(RESILIENCE=_breakers(hello={"path": "/hello/", "methods": ["get"]}))
def test_a_get_route_breaker_also_guards_head_requests(client: Client) -> None:
    get_breaker("hello").force_open()
    assert client.head("/hello/").status_code == 503
    assert client.get("/hello/").status_code == 503
    assert client.post("/hello/").status_code != 503


_MANY = {f"tenant-{i}": {"path": f"/tenant/{i}/"} for i in range(2_000)}


@override_settings(
    RESILIENCE=_breakers(
        **dict(list(_MANY.items())[:1000]),
        hello={"path": "/hello/"},
        **dict(list(_MANY.items())[1000:]),
        everything={"path": "/"},
    )
)
def test_the_first_route_breaker_that_matches_guards_the_request_among_many(
    client: Client,
) -> None:
    get_breaker("hello").force_open()
    assert client.get("/hello/").status_code == 503
    # /budget/ is not under /hello/: the catch-all breaker (closed) guards it.
    assert client.get("/budget/").status_code == 200
    get_breaker("everything").force_open()
    assert client.get("/budget/").status_code == 503
