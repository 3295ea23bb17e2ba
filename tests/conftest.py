from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilience_django import live
from resilience_django.conf import reset_settings


@pytest.fixture(autouse=True)
def _fresh_settings() -> None:
    # Each test starts from the settings it declares, not a cache left by another.
    reset_settings()


@pytest.fixture(autouse=True)
def _quiet_live_reload(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    # Every request through the middleware would wake the admin-rules reload
    # thread, which would read the test database from another thread while
    # tests run. Tests that exercise live reload ask for `live_thread`.
    if "live_thread" not in request.fixturenames:
        monkeypatch.setattr(live, "_kick", lambda: None)
    yield


@pytest.fixture(autouse=True)
def _per_process_cache_store(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the suite's LocMemCache the fleet store would fall to the database, and
    # every test that uses a breaker would write to the test database from the fleet
    # thread. Tests of that choice ask for `database_fallback`; FLEET["STORE"] wins.
    if "database_fallback" not in request.fixturenames:
        from resilience_django.fleetstore import select

        monkeypatch.setattr(select, "FALLBACK", "cache")


@pytest.fixture
def database_fallback() -> None:
    """Request it to let a per-process cache make the fleet store fall to the database."""


@pytest.fixture
def live_thread() -> None:
    """Request it to let the real admin-rules reload thread run."""
