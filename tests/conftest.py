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


@pytest.fixture
def live_thread() -> None:
    """Request it to let the real admin-rules reload thread run."""
