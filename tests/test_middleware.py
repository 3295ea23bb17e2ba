"""The middleware's deadline paths, each in a sync and an async test."""

from __future__ import annotations

import time

import pytest
from django.test import AsyncClient, Client, override_settings

ROUTES = {"DEADLINE": {"DEFAULT": "30s", "ROUTES": {"/slow/": "200ms", "orders:quote": "100ms"}}}


def test_sync_budget_is_visible_to_the_view(client: Client) -> None:
    response = client.get("/budget/", HTTP_X_TIMEOUT_MS="500")
    assert 0 < response.json()["remaining"] <= 0.5


async def test_async_budget_is_visible_to_the_view(async_client: AsyncClient) -> None:
    response = await async_client.get("/async-budget/", headers={"X-Timeout-Ms": "500"})
    assert 0 < response.json()["remaining"] <= 0.5


def test_sync_spent_budget_answers_504_without_the_view(client: Client, tmp_path: object) -> None:
    marker = f"{tmp_path}/ran"
    response = client.get(f"/marker/?marker={marker}", HTTP_X_TIMEOUT_MS="0")
    assert response.status_code == 504
    import os

    assert not os.path.exists(marker)


async def test_async_spent_budget_answers_504_without_the_view(
    async_client: AsyncClient, tmp_path: object
) -> None:
    import os

    marker = f"{tmp_path}/ran"
    response = await async_client.get(f"/marker/?marker={marker}", headers={"grpc-timeout": "0m"})
    assert response.status_code == 504
    assert not os.path.exists(marker)


@override_settings(RESILIENCE=ROUTES)
async def test_async_view_is_cancelled_at_the_route_budget(async_client: AsyncClient) -> None:
    start = time.monotonic()
    response = await async_client.get("/slow/async/?s=2")
    assert response.status_code == 504
    assert time.monotonic() - start < 1.5  # cut at 200 ms, far before the view's 2 s


@override_settings(RESILIENCE=ROUTES)
async def test_async_budget_by_url_name_is_applied_once_resolved(async_client: AsyncClient) -> None:
    start = time.monotonic()
    response = await async_client.get("/orders/quote/?s=2")
    assert response.status_code == 504
    assert time.monotonic() - start < 1.5  # cut at 100 ms, far before the view's 2 s


@override_settings(RESILIENCE=ROUTES)
@pytest.mark.django_db
def test_sync_view_is_stopped_at_its_next_query(client: Client) -> None:
    # Under WSGI a running sync view cannot be pre-empted; its query refuses to
    # start once the budget is spent, and the client gets 504, not 500.
    response = client.get("/slow/sync/?s=0.3")
    assert response.status_code == 504


@override_settings(RESILIENCE=ROUTES)
def test_sync_view_within_budget_is_untouched(client: Client) -> None:
    response = client.get("/hello/")
    assert response.status_code == 200 and response.content == b"hello"


async def test_async_decorated_view_gets_504_from_its_own_budget(async_client: AsyncClient) -> None:
    start = time.monotonic()
    response = await async_client.get("/decorated/")
    assert response.status_code == 504
    assert time.monotonic() - start < 0.9  # cut at 100 ms, before the view's 1 s


def test_504_is_json_for_json_clients(client: Client) -> None:
    response = client.get("/hello/", HTTP_X_TIMEOUT_MS="0", HTTP_ACCEPT="application/json")
    assert response.json()["error"] == "deadline_exceeded"
    response = client.get("/hello/", HTTP_X_TIMEOUT_MS="0")
    assert response["Content-Type"].startswith("text/plain")


def custom_deadline_handler(request: object, *, route: str, budget: float) -> object:
    from django.http import HttpResponse

    return HttpResponse(f"custom {route}", status=504)


@override_settings(
    RESILIENCE={"RESPONSE_HANDLERS": {"deadline": "tests.test_middleware.custom_deadline_handler"}}
)
def test_504_response_is_replaceable_through_a_handler(client: Client) -> None:
    response = client.get("/hello/", HTTP_X_TIMEOUT_MS="0")
    assert response.status_code == 504 and response.content == b"custom default"


def test_deadline_exceeded_metric_counts_by_route(client: Client) -> None:
    from prometheus_client import REGISTRY

    def count() -> float:
        return (
            REGISTRY.get_sample_value("resilience_deadline_exceeded_total", {"route": "default"})
            or 0.0
        )

    before = count()
    client.get("/hello/", HTTP_X_TIMEOUT_MS="0")
    assert count() == before + 1


async def test_client_disconnect_still_cancels_the_async_view() -> None:
    """Django cancels a view when the client goes away; our middleware must not stop that."""
    import asyncio

    from django.core.handlers.asgi import ASGIHandler

    handler = ASGIHandler()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/slow/async/", "raw_path": b"/slow/async/",
        "query_string": b"s=5", "root_path": "", "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234), "server": ("testserver", 80),
    }  # fmt: skip
    messages = [
        {"type": "http.request", "body": b"", "more_body": False},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        if len(messages) > 1:
            return messages.pop(0)
        await asyncio.sleep(0.1)
        return messages[0]

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    start = time.monotonic()
    await asyncio.wait_for(handler(scope, receive, send), timeout=3)
    assert time.monotonic() - start < 1.0
    assert not any(m.get("type") == "http.response.start" and m.get("status") == 200 for m in sent)
