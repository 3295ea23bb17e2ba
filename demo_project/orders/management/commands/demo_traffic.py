"""Drives realistic order traffic at the local demo, so the dashboard has something to show.

Several partners order at a human pace from their own addresses (sent as
``X-Forwarded-For``, which the demo trusts from 127.0.0.1 only) with their own
``X-Api-Key``; one greedy scraper orders ten times a second and meets the
per-client limit (429).  ``--scenario`` breaks a downstream for the middle
third of the run, through the same shared chaos knobs as the ``/chaos/`` page,
and puts them back afterwards.

Bounded on purpose: at most ``--seconds`` (600) and ``--max-requests``, and
only against a loopback address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo_project.orders import chaos
from demo_project.orders.views import TRIPS

MAX_SECONDS = 600
MAX_REQUESTS = 100_000
SCENARIOS: dict[str, dict[str, chaos.Knobs]] = {
    "none": {},
    "pricing-outage": {"pricing": chaos.Knobs(outage=True)},
    "inventory-outage": {"inventory": chaos.Knobs(outage=True)},
    "slow-inventory": {"inventory": chaos.Knobs(latency=1.0)},
    "flaky-risk": {"risk": chaos.Knobs(error_rate=0.4)},
}


@dataclass(frozen=True)
class Client:
    name: str
    address: str  # a documentation address (RFC 5737), never a real one
    api_key: str
    pause: tuple[float, float]  # seconds between orders


# Polite clients average over a second between orders, inside the 60/m per-client
# limit; the scraper orders ten times a second and meets it.
CLIENTS = [
    Client("travel-co", "203.0.113.10", "partner-travel-co", (0.5, 1.7)),
    Client("fly-cheap", "203.0.113.11", "partner-fly-cheap", (0.5, 1.7)),
    Client("trip-hub", "203.0.113.12", "partner-trip-hub", (0.6, 2.0)),
    Client("city-breaks", "203.0.113.13", "partner-city-breaks", (0.8, 2.5)),
    Client("rail-and-fly", "203.0.113.14", "partner-rail-and-fly", (0.8, 2.5)),
    Client("mobile-app", "198.51.100.20", "app-ios", (0.5, 1.7)),
    Client("web-shop", "198.51.100.21", "web-shop", (0.5, 1.7)),
    Client("scraper", "198.51.100.66", "scraper-key", (0.05, 0.15)),
]


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    by_client: dict[str, Counter[str]] = field(default_factory=dict)
    fallback: int = 0
    latencies: list[float] = field(default_factory=list)
    sent: int = 0

    def record(self, client: str, outcome: str, seconds: float, body: Any = None) -> None:
        self.statuses[outcome] += 1
        self.by_client.setdefault(client, Counter())[outcome] += 1
        self.latencies.append(seconds)
        if isinstance(body, dict) and body.get("degraded"):
            self.fallback += 1


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


class Command(BaseCommand):
    help = "Send realistic orders from several fake clients to the local demo (bounded)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seconds", type=float, default=30.0, help="how long (max 600)")
        parser.add_argument("--max-requests", type=int, default=5000, help="at most this many")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="a loopback URL")
        parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="none",
                            help="break a downstream for the middle third of the run")  # fmt: skip
        parser.add_argument("--seed", type=int, default=None, help="for repeatable runs")

    def handle(self, *args: Any, **options: Any) -> None:
        seconds, limit, url = options["seconds"], options["max_requests"], options["url"]
        if not 0 < seconds <= MAX_SECONDS:
            raise CommandError(f"--seconds must be in (0, {MAX_SECONDS}]")
        if not 0 < limit <= MAX_REQUESTS:
            raise CommandError(f"--max-requests must be in [1, {MAX_REQUESTS}]")
        if not _loopback(url):
            raise CommandError(f"{url} is not a loopback address; this only drives the local demo")
        rng = random.Random(options["seed"])
        scenario = SCENARIOS[options["scenario"]]
        tally = Tally()
        started = time.monotonic()
        asyncio.run(self._run(url.rstrip("/"), seconds, limit, rng, scenario, tally))
        self._summary(tally, time.monotonic() - started)
        if not tally.latencies or tally.statuses.total() == tally.statuses["error"]:
            raise CommandError(f"no answer from {url}: is the demo running (make demo)?")

    async def _run(
        self,
        url: str,
        seconds: float,
        limit: int,
        rng: random.Random,
        scenario: dict[str, chaos.Knobs],
        tally: Tally,
    ) -> None:
        stop_at = time.monotonic() + seconds
        self.stdout.write(f"ordering at {url}/api/orders for {seconds:g} s from "
                          f"{len(CLIENTS)} clients (at most {limit} orders)")  # fmt: skip
        async with httpx.AsyncClient(base_url=url, timeout=5.0) as http:
            tasks = [
                asyncio.create_task(self._client(http, c, stop_at, limit, rng, tally))
                for c in CLIENTS
            ]
            tasks.append(asyncio.create_task(self._progress(stop_at, tally)))
            if scenario:
                tasks.append(asyncio.create_task(self._scenario(seconds, scenario, stop_at)))
            await asyncio.gather(*tasks)

    async def _client(
        self,
        http: httpx.AsyncClient,
        client: Client,
        stop_at: float,
        limit: int,
        rng: random.Random,
        tally: Tally,
    ) -> None:
        headers = {"X-Forwarded-For": client.address, "X-Api-Key": client.api_key}
        while time.monotonic() < stop_at and tally.sent < limit:
            tally.sent += 1
            order = {"trip": rng.choice(TRIPS), "seats": rng.choice((1, 1, 1, 2, 2, 3, 4))}
            began = time.perf_counter()
            try:
                response = await http.post("/api/orders", json=order, headers=headers)
            except httpx.HTTPError:
                tally.record(client.name, "error", time.perf_counter() - began)
                await asyncio.sleep(0.5)  # the server is gone or restarting: do not spin
                continue
            elapsed = time.perf_counter() - began
            body = response.json() if response.status_code == 201 else None
            tally.record(client.name, str(response.status_code), elapsed, body)
            await asyncio.sleep(
                min(rng.uniform(*client.pause), max(0.0, stop_at - time.monotonic()))
            )

    async def _progress(self, stop_at: float, tally: Tally) -> None:
        start = time.monotonic()
        while (left := stop_at - time.monotonic()) > 0:
            await asyncio.sleep(min(5.0, left))
            counts = " ".join(f"{k}={v}" for k, v in sorted(tally.statuses.items()))
            self.stdout.write(
                f"  t={time.monotonic() - start:4.0f}s {counts} fallback={tally.fallback}"
            )

    async def _scenario(
        self, seconds: float, scenario: dict[str, chaos.Knobs], stop_at: float
    ) -> None:
        await asyncio.sleep(seconds / 3)
        before = {service: chaos.knobs(service) for service in scenario}
        try:
            for service, knobs in scenario.items():
                chaos.set_knobs(service, knobs)
                self.stdout.write(f"  chaos: {service} {knobs}")
            await asyncio.sleep(max(0.0, min(seconds / 3, stop_at - time.monotonic())))
        finally:
            for service, knobs in before.items():
                chaos.set_knobs(service, knobs)
            self.stdout.write("  chaos: knobs restored")

    def _summary(self, tally: Tally, elapsed: float) -> None:
        total = tally.statuses.total()
        lat = tally.latencies
        self.stdout.write(self.style.SUCCESS(f"summary: {total} orders in {elapsed:.1f} s "
                                             f"({total / max(elapsed, 1e-9):.1f}/s)"))  # fmt: skip
        for outcome, count in sorted(tally.statuses.items()):
            self.stdout.write(f"  {outcome:>5}: {count}")
        self.stdout.write(f"  fallback prices: {tally.fallback}")
        self.stdout.write(
            f"  latency ms: p50={_percentile(lat, 0.5) * 1000:.0f} "
            f"p95={_percentile(lat, 0.95) * 1000:.0f} max={max(lat, default=0) * 1000:.0f}"
        )
        for name, counts in sorted(tally.by_client.items()):
            parts = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
            self.stdout.write(f"  {name:<12} {parts}")
