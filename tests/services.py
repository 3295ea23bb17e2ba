"""Finding the real services the tests need, with one rule for their absence.

A missing service skips the test with one clear reason, unless
``RESILIENCE_REQUIRE_SERVICES=1`` (set by CI), where it fails instead: CI must
never go green by skipping what it was meant to test.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

REDIS_URL = os.environ.get("RESILIENCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get(
    "RESILIENCE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


def services_required() -> bool:
    return os.environ.get("RESILIENCE_REQUIRE_SERVICES") == "1"


def missing(reason: str) -> None:
    """Skip, or fail when CI requires every service."""
    if services_required():
        pytest.fail(f"{reason} (RESILIENCE_REQUIRE_SERVICES=1, so this fails instead of skipping)")
    pytest.skip(reason)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"no `{name}` binary on PATH")
    assert path is not None
    return path


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_url() -> str:
    """The shared Redis; skip (or fail) when it is not reachable."""
    from urllib.parse import urlparse

    parsed = urlparse(REDIS_URL)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if not port_open(host, port):
        missing(f"no Redis reachable at {host}:{port}")
    return REDIS_URL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
