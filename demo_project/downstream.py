"""The pricing, inventory and risk services, as one small ASGI app under ``/downstream/``.

They stand for other teams' services, so they are not Django views: in the
same process, Django's session, auth, CSRF and messages middleware would cost
each call about ten thread hand-offs, and the order service's throughput would
be spent on its own dependencies.  ``asgi.py`` mounts this app behind the same
``ResilienceASGIMiddleware`` as Django, so each call still gets its deadline
from the caller's ``X-Timeout-Ms`` (and the admin's route deadline), is
answered 504 when it runs past it, and counts against the admin's limit rules.

Each service misbehaves as its chaos knobs say (``orders/chaos.py``).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from demo_project.orders import chaos
from demo_project.orders.clients import base_fare

__all__ = ["PREFIX", "app"]

PREFIX = "/downstream/"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    service = scope["path"][len(PREFIX) :]
    if service not in chaos.SERVICES:
        await _send(send, 404, {"error": f"no service {service!r}"})
        return
    body = await _body(receive)
    knobs = await chaos.aknobs(service)
    if knobs.outage:
        # Retry-After longer than any caller's backoff: an outage is not retried.
        await _send(send, 503, {"error": f"{service} is down for maintenance"}, retry_after=30)
        return
    if knobs.latency:
        # Past the caller's X-Timeout-Ms, ResilienceASGIMiddleware cancels this and answers 504.
        await asyncio.sleep(knobs.latency)
    if knobs.error_rate and random.random() < knobs.error_rate:
        await _send(send, 503, {"error": f"{service} had a hiccup"})
        return
    query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    try:
        answer = _answer(service, query, body)
    except ValueError as exc:
        await _send(send, 400, {"error": str(exc)})
        return
    await _send(send, 200, answer)


def _answer(service: str, query: dict[str, str], body: bytes) -> dict[str, Any]:
    if service == "pricing":
        trip, seats = query.get("trip", "LIS-BER"), int(query.get("seats", "1"))
        # Live prices move a little around the fare; the fallback list price is above them.
        amount = base_fare(trip) * seats * random.uniform(0.9, 1.05)
        return {"trip": trip, "amount": round(amount, 2), "currency": "EUR"}
    if service == "inventory":
        trip = query.get("trip", "LIS-BER")
        return {"trip": trip, "seats_left": 12 + int(base_fare(trip)) % 40}
    data = json.loads(body or b"{}")
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return {"score": round(random.betavariate(1.2, 12.0), 3), "client": data.get("client")}


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _send(send: Send, status: int, payload: dict[str, Any], retry_after: int = 0) -> None:
    content = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
