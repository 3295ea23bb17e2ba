"""The fleet-exactness scenario: 4 uvicorn workers, 64 connections, one real Redis.

Shared by ``tests/e2e/test_distributed_exactness.py`` (which asserts) and
``benchmarks/bench_distributed_exactness.py`` (which repeats it and reports
the distribution).  Each rule has its own path, so one burst of mixed
requests measures every algorithm at once; the 3-rule path is limited by its
tightest rule (30).

The rates are per *hour*: a token bucket or GCRA at ``100/m`` refills 1.7
units a second, so a burst lasting a few seconds would rightly admit a few
more than 100 and "exactly the limit" could not be asserted.  Per hour, the
refill during a burst of under 30 s is below one unit.
"""

from __future__ import annotations

import asyncio
import collections
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.load import burst
from tests.e2e.server import Server, uvicorn_server

WORKERS = 4
CONNECTIONS = 64
LIMIT = 100
THREE_RULE_LIMIT = 30
# path -> (what it measures, the limit it must admit exactly)
PATHS = {
    "/hello/": ("sliding_window", LIMIT),
    "/async-hello/": ("token_bucket", LIMIT),
    "/budget/": ("gcra", LIMIT),
    "/async-budget/": ("three_rules", THREE_RULE_LIMIT),
}


def config(redis_url: str, *, fallback: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``RESILIENCE`` setting with one distributed rule of each algorithm and a 3-rule path."""

    def rule(name: str, path: str, rate: str, algorithm: str) -> dict[str, Any]:
        return {"name": name, "path": path, "key": "ip", "rate": rate,
                "algorithm": algorithm, "scope": "distributed"}  # fmt: skip

    return {
        "BACKEND": "redis",
        "REDIS": {"URL": redis_url},
        "FALLBACK_LATENCY": "50ms",
        "FALLBACK": dict(fallback or {"PROBE_INTERVAL": "500ms"}),
        "LIMITS": [
            rule("sw", "/hello/", f"{LIMIT}/h", "sliding_window"),
            rule("tb", "/async-hello/", f"{LIMIT}/h", "token_bucket"),
            rule("gc", "/budget/", f"{LIMIT}/h", "gcra"),
            rule("three-tb", "/async-budget/", f"{THREE_RULE_LIMIT}/h", "token_bucket"),
            rule("three-gc", "/async-budget/", f"{2 * THREE_RULE_LIMIT}/h", "gcra"),
            rule("three-sw", "/async-budget/", f"{3 * THREE_RULE_LIMIT}/h", "sliding_window"),
        ],
        "METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": ["127.0.0.1/32"]},
    }


@contextmanager
def fleet(settings: Mapping[str, Any]) -> Iterator[Server]:
    """A ``WORKERS``-worker uvicorn with multiprocess metrics: one scrape sums every worker."""
    with (
        tempfile.TemporaryDirectory(prefix="rd-prom-") as prom,
        uvicorn_server(
            settings, workers=WORKERS, extra_env={"PROMETHEUS_MULTIPROC_DIR": prom}
        ) as server,
    ):
        yield server


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def sample(server: Server, name: str) -> float:
    """A metric's value summed over the fleet (0 when absent)."""
    text = httpx.get(server.url + "/resilience/metrics/", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                return s.value
    return 0.0


def failed_calls(server: Server) -> int:
    """Redis calls the fleet decided locally because they failed or timed out."""
    return int(sample(server, "resilience_limiter_backend_failures_total"))


@dataclass
class Run:
    """What one burst got: admitted (200) and other answers per path, and how long it took."""

    admitted: dict[str, int]
    other: dict[str, collections.Counter[int]]
    seconds: float

    def by_algorithm(self) -> dict[str, int]:
        return {PATHS[path][0]: n for path, n in self.admitted.items()}


def paths_for(per_path: int, paths: list[str] | None = None) -> list[str]:
    """``per_path`` requests to each path, interleaved so every path is hit throughout."""
    chosen = paths or list(PATHS)
    return [p for _ in range(per_path) for p in chosen]


def run_burst(
    port: int,
    per_path: int = 3 * LIMIT,
    *,
    paths: list[str] | None = None,
    connections: int = CONNECTIONS,
) -> Run:
    """Fire ``per_path`` requests at each path over ``connections`` connections; count answers."""
    chosen = paths or list(PATHS)
    started = time.monotonic()
    results = asyncio.run(burst(port, paths_for(per_path, chosen), connections=connections))
    seconds = time.monotonic() - started
    admitted = dict.fromkeys(chosen, 0)
    other: dict[str, collections.Counter[int]] = {p: collections.Counter() for p in chosen}
    for path, status in results:
        if status == 200:
            admitted[path] += 1
        elif status != 429:
            other[path][status] += 1
    return Run(admitted=admitted, other=other, seconds=seconds)
