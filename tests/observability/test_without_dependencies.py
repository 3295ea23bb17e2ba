"""Without prometheus-client or opentelemetry-api installed, everything still works.

Each case runs in a fresh interpreter where importing the package raises
ImportError (a ``None`` entry in ``sys.modules`` does that), so nothing this
test process imported can hide a module-level import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
for name in {blocked!r}:
    sys.modules[name] = None
import django
django.setup()
from django.test import Client
from resilience_django import metrics
from resilience_django.observability import otel

metrics.request_rejected("r", "shed")
metrics.deadline_exceeded("default", budget=1.0)
metrics.bad_header("grpc-timeout")
metrics.breaker_state("b", "open")
metrics.breaker_transition("b", "closed", "open")
metrics.breaker_short_circuit("b", 1.0)
metrics.limiter_backend_seconds(0.001)
metrics.limiter_fallback_active(True, reason="x")
metrics.inflight("r", 1)
client = Client()
out = {{
    "enabled": metrics.enabled(),
    "deadline_status": client.get("/hello/", HTTP_X_TIMEOUT_MS="0").status_code,
    "metrics_status": client.get("/resilience/metrics/", REMOTE_ADDR="127.0.0.1").status_code,
    "prometheus_imported": sys.modules.get("prometheus_client") is not None,
}}
print(json.dumps(out))
"""


def run(blocked: list[str]) -> dict[str, object]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.observability.settings_enabled",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT.format(blocked=blocked)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_prometheus_client_every_facade_call_is_a_quiet_no_op():
    out = run(["prometheus_client"])
    assert out["enabled"] is False
    assert out["prometheus_imported"] is False
    assert out["deadline_status"] == 504  # the feature works, only the counting is gone
    assert out["metrics_status"] == 501


@pytest.mark.parametrize("blocked", [["opentelemetry"], ["opentelemetry", "prometheus_client"]])
def test_without_opentelemetry_metrics_still_count(blocked):
    out = run(blocked)
    assert out["deadline_status"] == 504
    assert out["enabled"] is ("prometheus_client" not in blocked)
    assert out["metrics_status"] == (501 if "prometheus_client" in blocked else 200)
