"""The Django version matrix (Django 5.2 LTS on 3.11 and 3.12, the newest Django on 3.13),
and each optional extra installed alone."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

MATRIX = [("3.11", "django>=5.2,<5.3"), ("3.12", "django>=5.2,<5.3"), ("3.13", "django>=6.0,<7")]


@nox.session
@nox.parametrize(("python", "django"), MATRIX, ids=["dj52-py311", "dj52-py312", "dj6-py313"])
def tests(session: nox.Session, django: str) -> None:
    session.install("-e", ".[dev,bench]", django)
    session.run("scripts/run-tests.sh", *session.posargs, external=True,
                env={"PY": os.path.join(session.bin, "python")})  # fmt: skip


# Each extra alone, in a fresh virtualenv, without the dev tools: it installs,
# and the integration it is for imports.  A cheap check that pyproject's
# extras name what the code needs (the suite itself runs with all of them).
SETUP = "import django; from django.conf import settings; settings.configure(); django.setup(); "
EXTRAS = {
    "redis": "import django_redis, redis, resilience_django.limiting.redis",
    "prometheus": "import prometheus_client, resilience_django.metrics",
    "hiredis": "import hiredis, redis",
    "grpc": "import grpc, resilience_django.integrations.grpc",
    "httpx": "import httpx, resilience_django.integrations.httpx",
    "requests": "import requests, resilience_django.integrations.requests",
    "otel": "import opentelemetry.trace, resilience_django.observability.otel",
    "drf": "import rest_framework, resilience_django.integrations.drf",
}


@nox.session(python="3.11", reuse_venv=False)
@nox.parametrize("extra", list(EXTRAS))
def extras(session: nox.Session, extra: str) -> None:
    session.install(f".[{extra}]")
    session.run("python", "-c", SETUP + EXTRAS[extra])
