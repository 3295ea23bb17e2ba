"""What the ASGI wrapper logs about a request cannot forge log lines (CVE-2025-48432's kind)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from django.test import override_settings

from resilience_django.asgi import ResilienceASGIMiddleware


async def _never_answers(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(30)


@override_settings(MIDDLEWARE=[], RESILIENCE={"DEADLINE": {"DEFAULT": "50ms"}})
async def test_a_path_with_an_encoded_newline_logs_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A server decodes /x%0D%0AGateway%20Timeout:%20GET%20/admin into the scope's path.
    scope = {
        "type": "http", "method": "GET", "path": "/x\r\nGateway Timeout: GET /admin\x1b[31m",
        "root_path": "", "headers": [], "query_string": b"",
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    wrapper = ResilienceASGIMiddleware(_never_answers, enforce_deadline=True)
    with caplog.at_level(logging.WARNING, logger="resilience_django.deadline"):
        await asyncio.wait_for(wrapper(scope, receive, send), timeout=10)
    assert sent[0]["status"] == 504
    [record] = [r for r in caplog.records if r.getMessage().startswith("Gateway Timeout")]
    message = record.getMessage()
    assert "\n" not in message and "\r" not in message and "\x1b" not in message
    # Escaped as Django escapes its own request logs: still readable.
    assert "/x\\r\\nGateway Timeout: GET /admin\\x1b[31m" in message
