"""The database fleet store across threads and real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .databases import postgres_database, sqlite_database

ROOT = Path(__file__).resolve().parents[2]
THREADS, PER_THREAD = 8, 25


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "sqlite":
        yield sqlite_database(tmp_path)
    else:
        with postgres_database() as db:
            yield db


def test_concurrent_commands_from_threads_are_all_read_once_in_sequence_order(
    database: dict[str, Any],
) -> None:
    config = {"database": database, "threads": THREADS, "per_thread": PER_THREAD}
    done = subprocess.run(
        [sys.executable, "-m", "tests.fleetstore.command_worker", json.dumps(config)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=100,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    sent, read = result["sent"], result["read"]
    assert len(set(sent)) == THREADS * PER_THREAD  # no two commands share a number
    # Every command, each once, in number order: none committed after a higher one was read.
    assert read == sorted(sent)
