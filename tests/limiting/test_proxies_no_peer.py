"""A server on a Unix socket (uvicorn ``--uds``, gunicorn ``--bind unix:``) behind a proxy
reports no peer: a hop count still reads ``X-Forwarded-For`` then, as it never looks at the
peer (docs/settings.md#trusted_proxies); before, the ``ip`` rule silently limited nobody."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.test import Client, override_settings

from resilience_django.asgi import ResilienceASGIMiddleware
from tests.utils.asgi import call_asgi, http_scope


def _config(trusted: Any) -> dict[str, Any]:
    rule = {"name": "per-ip", "path": "/hello/", "key": "ip", "rate": "1/m"}
    return {"RELOAD_INTERVAL": None, "TRUSTED_PROXIES": trusted, "LIMITS": [rule]}


def test_a_hop_count_reads_the_header_without_a_peer_through_the_middleware() -> None:
    with override_settings(RESILIENCE=_config(1)):
        client = Client(REMOTE_ADDR="")  # what gunicorn reports on a Unix socket
        codes = [
            client.get("/hello/", HTTP_X_FORWARDED_FOR=f).status_code
            for f in ("203.0.113.7", "203.0.113.7", "198.51.100.1")
        ]
    assert codes == [200, 429, 200]


@pytest.mark.parametrize("middleware", [[], None], ids=["fast-path", "middleware"])
async def test_a_hop_count_reads_the_header_without_a_peer_behind_the_wrapper(
    middleware: list[str] | None,
) -> None:
    extra = {} if middleware is None else {"MIDDLEWARE": middleware}
    with override_settings(RESILIENCE=_config(1), **extra):
        app = ResilienceASGIMiddleware(ASGIHandler())
        codes = []
        for forwarded in (b"203.0.113.7", b"203.0.113.7", b"198.51.100.1"):
            scope = http_scope("/hello/") | {
                "client": None,  # uvicorn --uds
                "headers": [(b"x-forwarded-for", forwarded)],
            }
            codes.append((await call_asgi(app, scope))[0]["status"])
    assert codes == [200, 429, 200]


@pytest.mark.parametrize("trusted", [None, ["10.0.0.0/8"]])
def test_without_a_hop_count_no_peer_reads_no_header_and_the_rule_does_not_apply(
    trusted: Any,
) -> None:
    # Networks trust a peer by its address: with none, the header is nobody's word.
    with override_settings(RESILIENCE=_config(trusted)):
        client = Client(REMOTE_ADDR="")
        codes = [
            client.get("/hello/", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code for _ in "ab"
        ]
    assert codes == [200, 200]
