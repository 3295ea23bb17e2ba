"""A process whose PROMETHEUS_MULTIPROC_DIR is set before prometheus-client is imported (it
chooses its storage then): requests through Django's test client, a breaker, one scrape.

Usage: python -m tests.observability.multiproc_dir_worker; prints one JSON line.
"""

from __future__ import annotations

import json
import os

import django

RESILIENCE = {
    "RELOAD_INTERVAL": None,
    "FLEET": {"ENABLED": False},
    "METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": ["127.0.0.1/32"]},
    "LIMITS": [{"name": "mp-hello", "rate": "2/m", "path": "/hello/"}],
    "SHEDDING": [{"name": "mp-shed", "path": "/hello/", "max_concurrent": 10}],
}


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    django.setup()
    from django.test import Client, override_settings

    import resilience_django
    from resilience_django.breakers import events

    client = Client(raise_request_exception=False)
    with override_settings(RESILIENCE=RESILIENCE):
        statuses = [client.get("/hello/").status_code for _ in range(6)]
        breaker = []
        for _ in range(3):
            try:
                with resilience_django.breaker("mp-dependency"):
                    breaker.append("ok")
            except Exception as exc:
                breaker.append(type(exc).__name__)
        events.flush()
        scrape = client.get("/resilience/metrics/", REMOTE_ADDR="127.0.0.1")
    out = {
        "statuses": statuses,
        "breaker": breaker,
        "scrape": scrape.status_code,
        "body": scrape.content.decode(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
