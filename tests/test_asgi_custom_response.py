"""A ``RESPONSE_HANDLERS`` answer the ASGI wrapper sends before Django runs keeps its
cookies and carries one ``Content-Length`` (the body's), as Django's handler would send it."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.test import override_settings

from resilience_django.asgi import ResilienceASGIMiddleware
from tests.utils.asgi import call_asgi, http_scope


def cookie_handler(request: Any, **details: Any) -> HttpResponse:
    response = HttpResponse(b"slow down", status=429)
    response["Content-Length"] = "9"
    response.set_cookie("backoff", "1", max_age=60)
    return response


SETTINGS = {
    "LIMITS": [{"name": "tiny", "path": "/", "key": "ip", "rate": "1/m"}],
    "RESPONSE_HANDLERS": {"rate_limited": f"{__name__}.cookie_handler"},
}


async def _never_called(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _get(app: Any) -> list[dict[str, Any]]:
    return await call_asgi(app, http_scope("/x"))


@override_settings(MIDDLEWARE=[], RESILIENCE=SETTINGS)
async def test_a_custom_429_keeps_its_cookie_and_one_content_length() -> None:
    app = ResilienceASGIMiddleware(_never_called)
    assert (await _get(app))[0]["status"] == 200
    start, body = await _get(app)
    assert start["status"] == 429 and body["body"] == b"slow down"
    names = [name.lower() for name, _ in start["headers"]]
    assert names.count(b"content-length") == 1
    assert (b"content-length", b"9") in [(n.lower(), v) for n, v in start["headers"]]
    cookies = [value for name, value in start["headers"] if name.lower() == b"set-cookie"]
    assert len(cookies) == 1 and cookies[0].startswith(b"backoff=1;")
    assert b"Max-Age=60" in cookies[0]
