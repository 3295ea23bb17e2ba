from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User

from resilience_django import live
from resilience_django.breakers.registry import registry


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # The default hasher is slow on purpose; these tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_live_state() -> Iterator[None]:
    # The reload thread itself is kept quiet by tests/conftest.py unless a
    # test asks for `live_thread`.
    live.reset()
    yield
    live.reset()


@pytest.fixture
def fresh_breakers() -> Iterator[None]:
    registry.clear()
    yield
    registry.clear()


def _staff(username: str, *perms: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)  # fresh: no stale permission cache


@pytest.fixture
def viewer(db: None) -> User:
    """Staff who may look at the dashboard but not operate breakers."""
    return _staff("viewer", "view_breakerdashboard")


@pytest.fixture
def operator(db: None) -> User:
    return _staff("operator", "view_breakerdashboard", "operate_breakers")


@pytest.fixture
def editor(db: None) -> User:
    """Staff who may edit every rule kind."""
    perms = [
        f"{action}_{model}"
        for action in ("add", "change", "delete", "view")
        for model in ("limitrule", "breakerpolicy", "routedeadline", "sheddingrule")
    ]
    return _staff("editor", *perms)
