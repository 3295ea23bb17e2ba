"""The order service's three downstream calls, each guarded the way its role asks.

==========  ==========  ===========================================================
service     role        guard
==========  ==========  ===========================================================
pricing     optional    250 ms per attempt, one retry, ``@breaker`` with a fallback:
                        a list price marked ``"source": "fallback"``
inventory   required    300 ms, no retry, breaker in the transport: failing or open
                        means a fast 503, never a slow one
risk        required    200 ms per attempt, up to 3 attempts (scoring has no side
                        effects, so even its POST is safe to repeat), breaker
==========  ==========  ===========================================================

Every call carries the order's remaining budget (``X-Timeout-Ms``) and never
outlives it; each service has a bulkhead so one slow dependency cannot take
every connection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

import resilience_django
from resilience_django.breakers.state import CircuitOpen
from resilience_django.deadline import DeadlineExceeded
from resilience_django.integrations._outbound import BulkheadFull
from resilience_django.integrations.httpx import AsyncResilientTransport
from resilience_django.shedding.bulkhead import Bulkhead

__all__ = ["Unavailable", "check_stock", "list_price", "quote", "score_risk", "warm_up"]


class Unavailable(Exception):
    """A required dependency did not answer usefully; the order cannot be taken now."""

    def __init__(self, service: str, reason: str, retry_after: float = 1.0) -> None:
        super().__init__(f"{service} unavailable: {reason}")
        self.service = service
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class Price:
    amount: float
    currency: str
    source: str  # "pricing" or "fallback"
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"amount": self.amount, "currency": self.currency}
        body["source"] = self.source
        if self.reason:
            body["reason"] = self.reason
        return body


def base_fare(trip: str) -> float:
    """A stable per-trip fare, so the demo's prices look like prices."""
    digest = hashlib.blake2b(trip.encode(), digest_size=2).digest()
    return 49.0 + int.from_bytes(digest, "big") % 250


# One client (connection pool, transport, bulkhead) per downstream and per
# process; its connections attach to the server's event loop on first use.
_clients: dict[str, httpx.AsyncClient] = {}


def _client(service: str) -> httpx.AsyncClient:
    client = _clients.get(service)
    if client is None:
        client = _clients[service] = _build(service)
    return client


def warm_up() -> None:
    """Build the clients before the first order: each costs an SSL context (tens of ms)."""
    for service in ("pricing", "inventory", "risk"):
        _client(service)


def _build(service: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    if service == "pricing":
        # The breaker is the @breaker on quote() below (it owns the fallback),
        # so the transport only retries, and stops retrying once it is open.
        transport = AsyncResilientTransport(
            httpx.AsyncHTTPTransport(limits=limits),
            retry=resilience_django.retry(
                attempts=2, backoff="20ms", max_backoff="100ms", breaker="pricing",
                target="pricing",
            ),
            bulkhead=Bulkhead("pricing-out", 24, queue=48),
        )  # fmt: skip
        timeout = 0.25
    elif service == "inventory":
        transport = AsyncResilientTransport(
            httpx.AsyncHTTPTransport(limits=limits),
            breaker="inventory",
            bulkhead=Bulkhead("inventory-out", 24, queue=48),
        )
        timeout = 0.3
    else:
        transport = AsyncResilientTransport(
            httpx.AsyncHTTPTransport(limits=limits),
            breaker="risk",
            retry=resilience_django.retry(
                attempts=3, backoff="20ms", max_backoff="150ms", budget=0.3, target="risk"
            ),
            retry_methods=frozenset({"POST"}),
            bulkhead=Bulkhead("risk-out", 24, queue=48),
        )
        timeout = 0.2
    return httpx.AsyncClient(
        base_url=settings.DOWNSTREAM_URL.rstrip("/") + "/", transport=transport, timeout=timeout
    )


def list_price(trip: str, seats: int, reason: str = "breaker_open") -> Price:
    """What we charge when pricing cannot tell us: the published fare, no discounts."""
    return Price(round(base_fare(trip) * 1.1 * seats, 2), "EUR", "fallback", reason)


@resilience_django.breaker("pricing", fallback=list_price)
async def _priced(trip: str, seats: int) -> Price:
    response = await _client("pricing").get("pricing", params={"trip": trip, "seats": seats})
    response.raise_for_status()  # a 5xx raises, so the breaker counts it
    body = response.json()
    return Price(float(body["amount"]), str(body["currency"]), "pricing")


async def quote(trip: str, seats: int) -> Price:
    """The live price, or the list price when pricing is open, failing or out of time."""
    try:
        return await _priced(trip, seats)
    except (httpx.HTTPError, ValueError, KeyError, BulkheadFull, DeadlineExceeded) as exc:
        # Even out of budget for pricing, there is time left to answer with a list price.
        return list_price(trip, seats, reason=_reason(exc))


def _reason(exc: Exception) -> str:
    """Why pricing gave no price, in words a client can switch on."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"status_{exc.response.status_code}"
    if isinstance(exc, httpx.HTTPError):
        return "unreachable"
    if isinstance(exc, BulkheadFull):
        return "busy"
    if isinstance(exc, DeadlineExceeded):
        return "no_budget"
    return "bad_answer"


async def check_stock(trip: str, seats: int) -> dict[str, Any]:
    """Seats left on ``trip``; raises ``Unavailable`` at once when inventory cannot say."""
    try:
        response = await _client("inventory").get(
            "inventory", params={"trip": trip, "seats": seats}
        )
    except CircuitOpen as exc:
        raise Unavailable("inventory", "breaker_open", exc.retry_after) from None
    except (httpx.HTTPError, BulkheadFull) as exc:
        raise Unavailable("inventory", _reason(exc)) from None
    if response.status_code >= 500:
        raise Unavailable("inventory", f"status_{response.status_code}")
    body: dict[str, Any] = response.json()
    return body


async def score_risk(trip: str, seats: int, client: str) -> dict[str, Any]:
    """The fraud score of this order; retried, raises ``Unavailable`` when it stays down."""
    payload = {"trip": trip, "seats": seats, "client": client}
    try:
        response = await _client("risk").post("risk", json=payload)
    except CircuitOpen as exc:
        raise Unavailable("risk", "breaker_open", exc.retry_after) from None
    except (httpx.HTTPError, BulkheadFull) as exc:
        raise Unavailable("risk", _reason(exc)) from None
    if response.status_code >= 500:
        raise Unavailable("risk", f"status_{response.status_code}")
    body: dict[str, Any] = response.json()
    return body
