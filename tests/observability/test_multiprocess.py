"""Many workers, one scrape: PROMETHEUS_MULTIPROC_DIR with stand-in workers and a real uvicorn."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from resilience_django.observability.multiprocess import mark_worker_dead
from tests.e2e.server import uvicorn_server

from .scrape import value

ROOT = Path(__file__).resolve().parents[2]


def worker(directory: Path, calls: list[list[object]]) -> dict[str, object]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "tests.observability.mp_worker", json.dumps(calls)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def scrape(directory: Path) -> str:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return generate_latest(registry).decode()


def test_gauge_modes_merge_workers_as_documented(tmp_path, monkeypatch):
    a = worker(
        tmp_path,
        [
            ["breaker_state", "pricing", "open"],
            ["limiter_fallback_active", True],
            ["inflight", "orders", 3],
            ["request_rejected", "orders-per-ip", "rate_limited"],
            ["limiter_backend_seconds", 0.002],
        ],
    )
    b = worker(
        tmp_path,
        [
            ["breaker_state", "pricing", "closed"],
            ["limiter_fallback_active", False],
            ["inflight", "orders", 2],
            ["request_rejected", "orders-per-ip", "rate_limited"],
            ["request_rejected", "orders-per-ip", "rate_limited"],
            ["limiter_backend_seconds", 0.2],
        ],
    )
    assert a["exemplars"] is False and b["exemplars"] is False
    text = scrape(tmp_path)
    # Counters and histograms sum over every process, living or not.
    assert value("resilience_requests_rejected_total", text, rule="orders-per-ip",
                 reason="rate_limited") == 3  # fmt: skip
    assert value("resilience_limiter_backend_seconds_count", text) == 2
    # Breaker state and fallback: the max, so one worker in trouble shows.
    assert value("resilience_breaker_state", text, breaker="pricing") == 1
    assert value("resilience_limiter_fallback_active", text) == 1
    # In-flight: the sum, the whole server's concurrency.
    assert value("resilience_inflight_requests", text, route="orders") == 5

    # Once worker a is marked dead its live gauges go, its counts stay.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    mark_worker_dead(int(a["pid"]))
    text = scrape(tmp_path)
    assert value("resilience_breaker_state", text, breaker="pricing") == 0
    assert value("resilience_limiter_fallback_active", text) == 0
    assert value("resilience_inflight_requests", text, route="orders") == 2
    assert value("resilience_requests_rejected_total", text, rule="orders-per-ip",
                 reason="rate_limited") == 3  # fmt: skip


def per_worker_deadline_counts(directory: Path) -> dict[str, float]:
    """Each worker's own resilience_deadline_exceeded_total{route="default"}, by file."""
    counts = {}
    for path in glob.glob(str(directory / "counter_*.db")):
        families = MultiProcessCollector.merge([path], accumulate=False)
        for family in families:
            for sample in family.samples:
                if sample.name == "resilience_deadline_exceeded_total" and sample.labels == {
                    "route": "default"
                }:
                    counts[Path(path).name] = sample.value
    return counts


@pytest.mark.timeout(120)
def test_one_scrape_of_a_two_worker_uvicorn_sums_both_workers_exactly(tmp_path):
    config = {"METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": ["127.0.0.1/32"]}}
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with uvicorn_server(config, workers=2, extra_env=env) as server:
        metrics_url = server.url + "/resilience/metrics/"

        def scraped() -> float:
            response = httpx.get(metrics_url, timeout=10)
            assert response.status_code == 200, response.text
            return value("resilience_deadline_exceeded_total", response.text, route="default")

        before = scraped()
        sent = 0
        # New connection per request, so the kernel spreads them over both
        # workers; keep going (bounded) until both have answered some.
        while sent < 400:
            for _ in range(10):
                response = httpx.get(server.url + "/hello/", headers={"X-Timeout-Ms": "0"})
                assert response.status_code == 504
                sent += 1
            counts = per_worker_deadline_counts(tmp_path)
            if sum(1 for c in counts.values() if c > 0) >= 2:
                break
        counts = per_worker_deadline_counts(tmp_path)
        assert sum(1 for c in counts.values() if c > 0) >= 2, counts
        # Whichever worker answers the scrape, it reports the whole server.
        for _ in range(4):
            assert scraped() - before == sent
        assert sum(counts.values()) == sent
