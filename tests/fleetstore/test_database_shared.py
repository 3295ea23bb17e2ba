"""A shared breaker across real processes whose only fleet store is PostgreSQL: one process
trips, the others follow its open-until marker; an operator's force-close then sticks in every
process (the marker from before it opens nothing again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from resilience_django.fleet import SHARED_REASON
from tests.utils.waiting import wait_for

from .databases import postgres_database

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("w0", "w1", "w2")


def _worker(config: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", "tests.fleetstore.shared_worker", json.dumps(config)]


def _states(directory: Path) -> dict[str, dict[str, Any]]:
    states = {}
    for name in NAMES:
        path = directory / f"state-{name}.json"
        if path.exists():
            states[name] = json.loads(path.read_text())
    return states


def _all(directory: Path, state: str) -> bool:
    states = _states(directory)
    return len(states) == len(NAMES) and {s["state"] for s in states.values()} == {state}


@pytest.mark.postgres
def test_a_shared_open_and_an_operator_close_cross_processes_through_postgres(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with postgres_database() as database:
        migrate = {"database": database, "migrate": True}
        done = subprocess.run(
            _worker(migrate), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        procs = [
            subprocess.Popen(
                _worker({"database": database, "dir": str(tmp_path), "name": name}),
                cwd=ROOT,
                env=env,
                stderr=subprocess.DEVNULL,
            )
            for name in NAMES
        ]
        try:
            wait_for(lambda: _all(tmp_path, "closed"), 60, "every worker running")
            (tmp_path / "trip-w0").touch()
            wait_for(lambda: _all(tmp_path, "open"), 30, "the shared open everywhere")
            states = _states(tmp_path)
            assert states["w1"]["reason"] == states["w2"]["reason"] == SHARED_REASON
            (tmp_path / "close-w2").touch()  # an operator, in one of the processes
            wait_for(lambda: _all(tmp_path, "closed"), 30, "the force-close everywhere")
            closed_at = {n: s["rounds"] for n, s in _states(tmp_path).items()}
            # Twenty rounds on, each having read the marker many times: still closed.
            wait_for(
                lambda: all(s["rounds"] >= closed_at[n] + 20 for n, s in _states(tmp_path).items()),
                60,
                "twenty more rounds",
            )
            assert _all(tmp_path, "closed")
        finally:
            (tmp_path / "stop").touch()
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
