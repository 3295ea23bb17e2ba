"""With django-prometheus installed too, its /metrics shows our metrics, registered once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import warnings
    warnings.simplefilter("error")
    import django
    django.setup()
    from django.test import Client
    from prometheus_client.parser import text_string_to_metric_families

    def sample(text, name, labels):
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and s.labels == labels:
                    return s.value
        return 0.0

    client = Client()
    before = sample(client.get("/metrics").content.decode(), "resilience_deadline_exceeded_total",
                    {"route": "default"})
    assert client.get("/hello/", HTTP_X_TIMEOUT_MS="0").status_code == 504
    # Importing our metrics module again (a second registration attempt) must not raise.
    import importlib, resilience_django.metrics as m
    importlib.reload(m)
    m.request_rejected("r", "shed")
    text = client.get("/metrics").content.decode()
    after = sample(text, "resilience_deadline_exceeded_total", {"route": "default"})
    assert after == before + 1, (before, after)
    assert "django_http_requests_total_by_method_total" in text
    assert text.count("# TYPE resilience_deadline_exceeded_total counter") == 1
    print("ok")
    """
)


def test_django_prometheus_endpoint_shows_our_metrics_once() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.observability.settings_django_prometheus",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("ok")
