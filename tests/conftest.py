from __future__ import annotations

import pytest

from resilience_django.conf import reset_settings


@pytest.fixture(autouse=True)
def _fresh_settings() -> None:
    # Each test starts from the settings it declares, not a cache left by another.
    reset_settings()
