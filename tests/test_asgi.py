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
    assert time.monotonic() - start < 1.5  # cut at 150 ms, far before the app's 2 s
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
    # tests.settings has ResilienceMiddleware: the slow non-Django app is not cut here,
    # once Django has built it in async mode (as it has behind any ASGI server; built
    # here so the test does not rely on an earlier one having built it).
    from django.core.handlers.asgi import ASGIHandler

    ASGIHandler()
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
    assert time.monotonic() - start < 1.5  # cut at 100 ms, far before the app's 2 s


# -- the wrapper alone: answer at the deadline, never wait for the app ----------------

BUDGET = {"DEADLINE": {"DEFAULT": "100ms", "EXEMPT_STREAMS": ["/events"]}}


class Exchange:
    """A server's side of one request: what was sent, and a receive that waits for
    the client (who never leaves)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.after: list[dict[str, Any]] = []  # sent once the wrapper had returned
        self.returned = False

    async def receive(self) -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        (self.after if self.returned else self.sent).append(message)

    async def call(self, app: Any, path: str = "/") -> float:
        start = time.monotonic()
        await ResilienceASGIMiddleware(app, enforce_deadline=True)(
            _scope(path), self.receive, self.send
        )
        self.returned = True
        return time.monotonic() - start


@override_settings(RESILIENCE=BUDGET)
async def test_the_504_is_sent_at_the_deadline_while_the_app_cannot_stop_yet() -> None:
    # Like Django's handler joining a sync view's thread: the app cannot be
    # stopped at once, and answers when it is done.
    done = asyncio.Event()

    async def stubborn_app(scope: Any, receive: Any, send: Any) -> None:
        work = asyncio.ensure_future(asyncio.sleep(1.0))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            await work  # cancelled or not, it waits for its work to end
        try:
            await ok_app(scope, receive, send)
        finally:
            done.set()

    exchange = Exchange()
    await exchange.call(stubborn_app)
    assert _status(exchange.sent) == 504
    assert not done.is_set()  # answered at the deadline, before the app's work ended
    # Its late answer goes nowhere, quietly.
    await asyncio.wait_for(done.wait(), timeout=5)
    assert exchange.after == []


@override_settings(RESILIENCE=BUDGET)
async def test_an_app_waiting_in_receive_hears_that_the_client_is_gone() -> None:
    heard: list[str] = []

    async def listening_app(scope: Any, receive: Any, send: Any) -> None:
        # Django waits in receive() to notice a disconnect, and cancels its view then.
        heard.append((await receive())["type"])

    exchange = Exchange()
    await exchange.call(listening_app)
    assert _status(exchange.sent) == 504
    await asyncio.sleep(0)  # its receive() returns on the next turn
    assert heard == ["http.disconnect"]


@override_settings(RESILIENCE=BUDGET)
async def test_an_app_failing_after_its_504_is_retrieved_not_left_unretrieved() -> None:
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: reported.append(context))
    failed = asyncio.Event()

    async def failing_late_app(scope: Any, receive: Any, send: Any) -> None:
        work = asyncio.ensure_future(asyncio.sleep(0.3))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            await work
        finally:
            failed.set()
        raise RuntimeError("late failure")

    try:
        await Exchange().call(failing_late_app)
        await asyncio.wait_for(failed.wait(), timeout=5)
        await asyncio.sleep(0.05)
        import gc

        gc.collect()
        assert reported == []
    finally:
        loop.set_exception_handler(None)


@override_settings(RESILIENCE=BUDGET)
async def test_a_streamed_body_is_ended_at_the_deadline_unless_its_route_is_exempt() -> None:
    async def streaming_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(6):
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b""})

    cut = Exchange()
    await cut.call(streaming_app, "/stream")
    assert _status(cut.sent) == 200
    assert cut.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert 1 <= sum(m.get("body") == b"x" for m in cut.sent) < 6
    exempt = Exchange()
    await exempt.call(streaming_app, "/events/1")
    assert sum(m.get("body") == b"x" for m in exempt.sent) == 6
