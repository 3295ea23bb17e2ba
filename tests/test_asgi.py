"""The pure ASGI wrapper, driven directly with ASGI messages."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from django.test import override_settings

from resilience_django.asgi import ResilienceASGIMiddleware
from resilience_django.deadline import remaining
from resilience_django.middleware import SCOPE_DEADLINE


def _scope(path: str, headers: list[tuple[bytes, bytes]] | None = None, root: str = "") -> Any:
    return {
        "type": "http", "method": "GET", "path": path, "root_path": root,
        "headers": headers or [], "query_string": b"",
    }  # fmt: skip


async def _call(app: Any, scope: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _status(sent: list[dict[str, Any]]) -> int:
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(remaining()).encode()})


async def slow_app(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(2)
    await ok_app(scope, receive, send)


async def app_raising_timeout(scope: Any, receive: Any, send: Any) -> None:
    raise TimeoutError("the app's own timeout")


@override_settings(MIDDLEWARE=[], RESILIENCE={"DEADLINE": {"ROUTES": {"/orders": "150ms"}}})
async def test_route_budget_applies_to_an_app_mounted_under_a_prefix() -> None:
    # Without ResilienceMiddleware behind it, the ASGI layer enforces the deadline itself.
    scope = _scope("/shop/orders/1", root="/shop")
    start = time.monotonic()
    sent = await _call(ResilienceASGIMiddleware(slow_app), scope)
    assert _status(sent) == 504
    assert time.monotonic() - start < 0.4
    assert scope[SCOPE_DEADLINE].route == "/orders"


@override_settings(RESILIENCE={})
async def test_spent_header_budget_is_504_without_calling_the_app() -> None:
    called: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(True)
        await ok_app(scope, receive, send)

    sent = await _call(ResilienceASGIMiddleware(app), _scope("/", [(b"x-timeout-ms", b"0")]))
    assert _status(sent) == 504
    assert called == []


@override_settings(RESILIENCE={})
async def test_incoming_budget_is_visible_inside_the_app() -> None:
    sent = await _call(ResilienceASGIMiddleware(ok_app), _scope("/", [(b"grpc-timeout", b"200m")]))
    assert _status(sent) == 200
    assert 0 < float(sent[1]["body"]) <= 0.2


@override_settings(RESILIENCE={})
async def test_a_timeout_error_from_the_app_is_not_turned_into_a_504() -> None:
    with pytest.raises(TimeoutError, match="own timeout"):
        await _call(ResilienceASGIMiddleware(app_raising_timeout), _scope("/"))


def broken_handler(request: Any, **details: Any) -> Any:
    raise RuntimeError("handler bug")


@override_settings(RESILIENCE={"RESPONSE_HANDLERS": {"deadline": "tests.test_asgi.broken_handler"}})
async def test_a_failing_custom_handler_falls_back_to_the_built_in_504() -> None:
    sent = await _call(ResilienceASGIMiddleware(ok_app), _scope("/", [(b"x-timeout-ms", b"0")]))
    assert _status(sent) == 504


def path_handler(request: Any, **details: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(f"{request.method} {request.path_info}", status=504)


@override_settings(RESILIENCE={"RESPONSE_HANDLERS": {"deadline": "tests.test_asgi.path_handler"}})
async def test_custom_handlers_see_method_and_path_before_django_runs() -> None:
    sent = await _call(
        ResilienceASGIMiddleware(ok_app), _scope("/api/x", [(b"x-timeout-ms", b"0")])
    )
    assert sent[1]["body"] == b"GET /api/x"


@override_settings(RESILIENCE={"DEADLINE": {"DEFAULT": "100ms"}})
async def test_with_the_django_middleware_installed_the_asgi_layer_leaves_enforcing_to_it() -> None:
    # tests.settings has ResilienceMiddleware: the slow non-Django app is not cut here.
    start = time.monotonic()
    sent = await _call(ResilienceASGIMiddleware(slow_app), _scope("/"))
    assert _status(sent) == 200
    assert time.monotonic() - start >= 2


@override_settings(RESILIENCE={"DEADLINE": {"DEFAULT": "100ms"}})
async def test_enforce_deadline_true_cuts_non_django_apps_even_with_the_middleware_installed() -> (
    None
):
    start = time.monotonic()
    sent = await _call(ResilienceASGIMiddleware(slow_app, enforce_deadline=True), _scope("/"))
    assert _status(sent) == 504
    assert time.monotonic() - start < 0.5
