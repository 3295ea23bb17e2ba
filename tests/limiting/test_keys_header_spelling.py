"""``header:X_Api_Key`` (an underscore: a valid field name) reads the header Django puts at
``HTTP_X_API_KEY``, the one the view sees (``X-Api-Key``; Django drops names spelled with
an underscore), on the ASGI fast path as in the middleware: else the fast path looked for
a header Django never shows and the rule never applied (docs/limits.md, "Keys")."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.test import Client, override_settings

from resilience_django.asgi import ResilienceASGIMiddleware
from tests.utils.asgi import call_asgi, http_scope


def _once_a_minute(spec: str) -> dict[str, Any]:
    rule = {"name": "per-key", "path": "/hello/", "key": spec, "rate": "1/m"}
    return {"RELOAD_INTERVAL": None, "LIMITS": [rule]}


@pytest.mark.parametrize("spec", ["header:X_Api_Key", "header:x-api_key", "header:X-Api-Key"])
async def test_an_underscored_header_key_limits_on_the_fast_path(spec: str) -> None:
    with override_settings(MIDDLEWARE=[], RESILIENCE=_once_a_minute(spec)):
        app = ResilienceASGIMiddleware(ASGIHandler())
        scope = http_scope("/hello/") | {"headers": [(b"x-api-key", b"k1")]}
        assert [(await call_asgi(app, dict(scope)))[0]["status"] for _ in range(2)] == [200, 429]
        # The underscore spelling on the wire is dropped by Django: no key, as for the view.
        spoof = http_scope("/hello/") | {"headers": [(b"x_api_key", b"k2")]}
        assert [(await call_asgi(app, dict(spoof)))[0]["status"] for _ in range(2)] == [200, 200]


@pytest.mark.parametrize("spec", ["header:X_Api_Key", "header:X-Api-Key"])
def test_an_underscored_header_key_limits_through_the_middleware(spec: str) -> None:
    with override_settings(RESILIENCE=_once_a_minute(spec)):
        client = Client()
        codes = [client.get("/hello/", headers={"X-Api-Key": "k1"}).status_code for _ in range(2)]
    assert codes == [200, 429]
