"""Call an ASGI app in process: one GET with an empty body, then a client that stays until
the app is done, and every message the app sent."""

from __future__ import annotations

import asyncio
from typing import Any


def http_scope(path: str = "/", root_path: str = "") -> dict[str, Any]:
    return {
        "type": "http", "method": "GET", "path": path, "root_path": root_path, "headers": [],
        "query_string": b"", "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }  # fmt: skip


async def call_asgi(app: Any, scope: dict[str, Any], timeout: float = 10) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(30)  # the client never leaves while the app works
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), timeout=timeout)
    return sent
