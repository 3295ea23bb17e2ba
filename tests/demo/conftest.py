from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.demo.server import Demo, demo_server, prepare_database
from tests.demo.staff import login


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One migrated database with the samples and the superuser, copied by every server."""
    database, password, _ = prepare_database(tmp_path_factory.mktemp("demo-db"))
    return database, password


@pytest.fixture
def demo(prepared: tuple[Path, str]) -> Iterator[Demo]:
    with demo_server(*prepared) as server:
        yield server


@pytest.fixture
def staff(demo: Demo) -> Iterator[httpx.Client]:
    """The demo superuser's admin session on ``demo``."""
    client = login(demo)
    try:
        yield client
    finally:
        client.close()
