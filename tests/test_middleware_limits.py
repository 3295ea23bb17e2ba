"""Limits and shedding through ResilienceMiddleware, each path sync and async."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.test import AsyncClient, Client, override_settings

IP_RULE = {
    "LIMITS": [
        {"name": "hello-ip", "path": "/hello/", "key": "ip", "rate": "3/m"},
        {"name": "async-hello-ip", "path": "/async-hello/", "key": "ip", "rate": "3/m"},
    ]
}


@override_settings(RESILIENCE=IP_RULE)
def test_sync_request_over_limit_gets_429_with_retry_after_and_headers(client: Client) -> None:
    codes = [client.get("/hello/", REMOTE_ADDR="10.1.0.1").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    rejected = client.get("/hello/", REMOTE_ADDR="10.1.0.1")
    assert int(rejected["Retry-After"]) >= 1
    assert rejected["RateLimit-Policy"] == '"hello-ip";q=3;w=60'
    assert rejected["RateLimit"].startswith('"hello-ip";r=0;t=')
    # Another client has its own quota.
    assert client.get("/hello/", REMOTE_ADDR="10.1.0.2").status_code == 200


@override_settings(RESILIENCE=IP_RULE)
async def test_async_request_over_limit_gets_429_with_retry_after_and_headers(
    async_client: AsyncClient,
) -> None:
    codes = [
        (await async_client.get("/async-hello/", REMOTE_ADDR="10.2.0.1")).status_code
        for _ in range(5)
    ]
    assert codes == [200, 200, 200, 429, 429]
    rejected = await async_client.get("/async-hello/", REMOTE_ADDR="10.2.0.1")
    assert int(rejected["Retry-After"]) >= 1
    assert rejected["RateLimit"].startswith('"async-hello-ip";r=0;t=')


@override_settings(RESILIENCE=IP_RULE)
def test_admitted_responses_carry_ratelimit_header(client: Client) -> None:
    response = client.get("/hello/", REMOTE_ADDR="10.1.9.9")
    assert response.status_code == 200
    assert response["RateLimit"].startswith('"hello-ip";r=2;t=')


@override_settings(RESILIENCE={**IP_RULE, "RATELIMIT_HEADERS": False})
def test_ratelimit_headers_on_admitted_responses_can_be_turned_off(client: Client) -> None:
    response = client.get("/hello/", REMOTE_ADDR="10.1.9.8")
    assert response.status_code == 200
    assert "RateLimit" not in response


@override_settings(
    RESILIENCE={"LIMITS": [{"name": "spoof", "path": "/hello/", "key": "ip", "rate": "1/m"}]}
)
def test_spoofed_x_forwarded_for_from_untrusted_peer_changes_nothing(client: Client) -> None:
    assert client.get("/hello/", REMOTE_ADDR="10.3.0.1").status_code == 200
    response = client.get("/hello/", REMOTE_ADDR="10.3.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert response.status_code == 429


@override_settings(
    RESILIENCE={
        "LIMITS": [
            {"name": "shadowed", "path": "/hello/", "key": "ip", "rate": "1/m", "mode": "shadow"}
        ]
    }
)
def test_shadow_rule_never_blocks_but_reports(client: Client) -> None:
    from prometheus_client import REGISTRY

    def shadowed() -> float:
        return (
            REGISTRY.get_sample_value(
                "resilience_requests_rejected_total", {"rule": "shadowed", "reason": "shadow"}
            )
            or 0.0
        )

    before = shadowed()
    codes = [client.get("/hello/", REMOTE_ADDR="10.4.0.1").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    assert shadowed() == before + 2


@override_settings(
    RESILIENCE={
        "LIMITS": [
            {"name": "by-view", "view": "hello", "key": "ip", "rate": "1/m"},
        ]
    }
)
def test_sync_rule_by_url_name_is_decided_once_resolved(client: Client) -> None:
    assert client.get("/hello/", REMOTE_ADDR="10.5.0.1").status_code == 200
    assert client.get("/hello/", REMOTE_ADDR="10.5.0.1").status_code == 429
    assert client.get("/budget/", REMOTE_ADDR="10.5.0.1").status_code == 200


@override_settings(
    RESILIENCE={
        "LIMITS": [{"name": "by-view-async", "view": "async-hello", "key": "ip", "rate": "1/m"}]
    }
)
async def test_async_rule_by_url_name_is_decided_once_resolved(async_client: AsyncClient) -> None:
    assert (await async_client.get("/async-hello/", REMOTE_ADDR="10.5.1.1")).status_code == 200
    assert (await async_client.get("/async-hello/", REMOTE_ADDR="10.5.1.1")).status_code == 429


SHED = {
    "SHEDDING": [
        {"name": "slow-async", "path": "/slow/async/", "max_concurrent": 1, "queue": 0},
        {"name": "slow-sync", "path": "/slow/sync/", "max_concurrent": 1, "queue": 0},
    ]
}


@override_settings(RESILIENCE=SHED)
async def test_async_request_beyond_concurrency_is_shed_with_503() -> None:
    client = AsyncClient()
    first = asyncio.ensure_future(client.get("/slow/async/?s=1"))
    await asyncio.sleep(0.2)
    second = await client.get("/slow/async/?s=0")
    assert second.status_code == 503
    assert int(second["Retry-After"]) >= 1
    assert (await first).status_code == 200
    # The slot is free again once the first request finished.
    assert (await client.get("/slow/async/?s=0")).status_code == 200


@override_settings(RESILIENCE=SHED)
@pytest.mark.django_db(transaction=True)
def test_sync_request_beyond_concurrency_is_shed_with_503() -> None:
    results: list[int] = []

    def slow() -> None:
        results.append(Client().get("/slow/sync/?s=1").status_code)

    thread = threading.Thread(target=slow)
    thread.start()
    import time

    time.sleep(0.3)  # the margin is for a loaded CI machine
    assert Client().get("/slow/sync/?s=0").status_code == 503
    thread.join()
    assert results == [200]
    assert Client().get("/slow/sync/?s=0").status_code == 200


@override_settings(
    RESILIENCE={
        "SHEDDING": [{"name": "guarded", "path": "/fail/sync/", "max_concurrent": 2}],
        "BREAKERS": {"guarded-route": {"path": "/fail/sync/"}},
    }
)
def test_refusal_by_a_later_stage_gives_back_the_concurrency_slot(client: Client) -> None:
    from resilience_django.breakers.registry import get_breaker

    breaker = get_breaker("guarded-route")
    breaker.force_open()
    for _ in range(5):
        response = client.get("/fail/sync/?status=200")
        assert response.status_code == 503
        assert "dependency" in response.content.decode()  # the breaker's 503, not "at capacity"
    breaker.force_close()
    assert client.get("/fail/sync/?status=200").status_code == 200


@override_settings(RESILIENCE=SHED)
async def test_a_client_that_goes_away_gives_back_its_slot() -> None:
    from django.core.handlers.asgi import ASGIHandler

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/slow/async/", "raw_path": b"/slow/async/",
        "query_string": b"s=5", "root_path": "", "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234), "server": ("testserver", 80),
    }  # fmt: skip
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, object]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.1)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        pass

    await asyncio.wait_for(ASGIHandler()(scope, receive, send), timeout=3)
    # The only slot is free again: the next request is admitted, not shed.
    assert (await AsyncClient().get("/slow/async/?s=0")).status_code == 200


@override_settings(RESILIENCE=SHED)
async def test_concurrency_slots_survive_a_rules_reload() -> None:
    from resilience_django.runtime import reset_runtime

    client = AsyncClient()
    first = asyncio.ensure_future(client.get("/slow/async/?s=1"))
    await asyncio.sleep(0.2)
    reset_runtime()  # what an admin edit does
    assert (await client.get("/slow/async/?s=0")).status_code == 503
    assert (await first).status_code == 200
