"""Behind ``ResilienceASGIMiddleware`` rules match the path Django matches on: without
``FORCE_SCRIPT_NAME`` when it is set (Django strips it instead of ``root_path``)."""

from __future__ import annotations

import json

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.test import override_settings

from resilience_django.asgi import ResilienceASGIMiddleware
from tests.settings import MIDDLEWARE
from tests.utils.asgi import call_asgi, http_scope

ONE_A_MINUTE = {
    "LIMITS": [{"name": "budget-per-ip", "path": "/budget/", "key": "ip", "rate": "1/m"}],
    "DEADLINE": {"DEFAULT": "30s", "ROUTES": {"/budget/": "20s"}},
}


async def _get(path: str, root_path: str = "") -> tuple[int, bytes]:
    sent = await call_asgi(ResilienceASGIMiddleware(ASGIHandler()), http_scope(path, root_path))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


@pytest.mark.parametrize("root_path", ["", "/elsewhere"])
@pytest.mark.parametrize("middleware", [[], MIDDLEWARE], ids=["wrapper-alone", "middleware"])
async def test_rules_match_without_the_forced_script_name(
    root_path: str, middleware: list[str]
) -> None:
    with override_settings(
        FORCE_SCRIPT_NAME="/app", MIDDLEWARE=middleware, RESILIENCE=ONE_A_MINUTE
    ):
        status, body = await _get("/app/budget/", root_path)
        assert status == 200
        # The route's 20 s budget, not the 30 s default: the route rule matched.
        assert 0 < json.loads(body)["remaining"] <= 20
        status, _ = await _get("/app/budget/", root_path)
        assert status == 429


async def test_without_a_forced_script_name_root_path_is_stripped() -> None:
    with override_settings(FORCE_SCRIPT_NAME=None, MIDDLEWARE=[], RESILIENCE=ONE_A_MINUTE):
        assert (await _get("/mount/budget/", "/mount"))[0] == 200
        assert (await _get("/mount/budget/", "/mount"))[0] == 429


async def test_a_forced_script_name_set_later_is_followed() -> None:
    with override_settings(FORCE_SCRIPT_NAME=None, MIDDLEWARE=[], RESILIENCE=ONE_A_MINUTE):
        assert (await _get("/other/"))[0] == 404  # the runtime is built without one
        with override_settings(FORCE_SCRIPT_NAME="/app"):
            assert (await _get("/app/budget/"))[0] == 200
            assert (await _get("/app/budget/"))[0] == 429
