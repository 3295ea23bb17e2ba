"""resilience_status against other processes' malformed reports and a database that is down."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from resilience_django import fleet
from resilience_django.breakers.state import Breaker
from resilience_django.fleet import FleetPublisher
from resilience_django.fleetstore.base import FleetStore

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> tuple[str, int, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("resilience_status", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), exc.returncode, str(exc)
    return out.getvalue(), 0, ""


def strict_json(text: str) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def publish_bad_reports(store: FleetStore) -> None:
    now, cycle = time.time(), []
    cycle.append(cycle)
    breakers = [
        {"name": "listed-state", "state": ["open"]},  # unhashable: `in BAD_STATES` raised
        {"name": "odd-rate", "state": "closed", "failure_rate": "x", "calls": 1},
        {"name": "nan-rate", "state": "closed", "failure_rate": float("nan"), "calls": 2,
         "ewma": float("inf"), "trials": {("a", 1): 1}, "loop": cycle,
         "last_transition": {"from": "open", "to": "closed", "at": "yesterday"}},
    ]  # fmt: skip
    limiter = {"backend": ["redis"], "healthy": True}
    report = {"host": "odd-host", "pid": 1, "time": now, "breakers": breakers, "limiter": limiter}
    store.publish("odd-host:1", report, 30)
    store.publish("odd-host:x", {"host": "odd-host", "pid": "x", "time": now, "breakers": []}, 30)


@pytest.fixture
def bad_reports():
    with override_settings(RESILIENCE={"FLEET": {"PREFIX": f"faults-{uuid.uuid4().hex[:8]}"}}):
        store = fleet.get_store()
        assert store is not None
        good = Breaker("good-one")
        good.record_success(good.acquire())
        FleetPublisher(store, lambda: [good]).tick()
        publish_bad_reports(store)
        yield
        fleet.stop()


@pytest.mark.django_db
def test_malformed_reports_are_left_out_and_named_never_a_crash(bad_reports):
    text, code, _ = run()
    assert code == 0
    assert "good-one" in text and "nan-rate" in text  # the sound rows stay
    assert "listed-state" not in text.replace("'listed-state'", "")
    assert "breaker row of 'odd-host':1 left out: malformed state" in text
    assert "breaker row of 'odd-host':1 left out: malformed failure_rate" in text
    assert "limiter row of 'odd-host':1 left out: malformed backend" in text
    assert "report of 'odd-host':'x' left out: malformed pid" in text
    assert "unknown (2)" in text  # a breaker nobody can read may be open


@pytest.mark.django_db
def test_check_cannot_tell_with_a_malformed_report(bad_reports):
    _, code, message = run("--check")
    assert code == 2
    assert message.startswith("status unknown: ")
    assert "breaker row of 'odd-host':1 left out: malformed state" in message


@pytest.mark.django_db
def test_json_is_valid_whatever_a_report_holds(bad_reports):
    text, code, _ = run("--json")
    assert code == 0
    doc = strict_json(text)  # no bare NaN or Infinity
    assert isinstance(doc, dict)
    row = next(r for r in doc["breakers"] if r["name"] == "nan-rate")
    assert (row["failure_rate"], row["ewma"]) == ("nan", "inf")
    assert row["trials"] == "{('a', 1): 1}" and row["loop"] == "[[...]]"
    assert any("malformed state" in line for line in doc["malformed"])
    assert doc["status"]["code"] == 2


# -- the database (admin rules) down ------------------------------------------------------


def status_check(tmp_path: Path, resilience: dict[str, object], database: str) -> object:
    (tmp_path / "db_down_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        f"DATABASES = {{'default': {database}}}\n"
        f"RESILIENCE = {resilience!r}\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "db_down_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "resilience_status", "--check", "--skip-checks"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip


@pytest.mark.redis
def test_check_cannot_tell_while_the_database_is_down(tmp_path: Path) -> None:
    from tests.services import free_port, redis_url

    closed = free_port()  # nothing listens there
    database = repr({"ENGINE": "django.db.backends.postgresql", "NAME": "test",
                     "HOST": "127.0.0.1", "PORT": str(closed), "USER": "nobody",
                     "OPTIONS": {"connect_timeout": 5}})  # fmt: skip
    config: dict[str, object] = {"FLEET": {"URL": redis_url(), "PREFIX": f"dbdown-{closed}"}}
    with override_settings(RESILIENCE=config):
        store = fleet.get_store()
        assert store is not None
        closed_breaker = Breaker("pricing")
        closed_breaker.record_success(closed_breaker.acquire())
        FleetPublisher(store, lambda: [closed_breaker]).tick()
        try:
            # Control: the same fleet with admin rules off is all well.
            done = status_check(tmp_path, {**config, "RELOAD_INTERVAL": None}, database)
            assert done.returncode == 0, done.stdout + done.stderr
            done = status_check(tmp_path, config, database)
        finally:
            fleet.stop()
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "status unknown: admin rules unavailable: OperationalError" in done.stderr
    assert "pricing" in done.stdout  # the rest of the report is still there


# -- other processes' text on the operator's terminal ---------------------------------------

CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # every control character but \n
HOST, NAME = "evil\x1b[2Jhost", "pay\x1b]8;;https://x.example\x07ments\r"


@pytest.mark.django_db
def test_other_processes_text_cannot_drive_the_terminal():
    with override_settings(RESILIENCE={"FLEET": {"PREFIX": f"esc-{uuid.uuid4().hex[:8]}"}}):
        store = fleet.get_store()
        assert store is not None
        change = {"from": "closed", "to": "open", "at": time.time(), "reason": "\rall \x9bfine"}
        breaker = {"name": NAME, "state": "open", "calls": 3, "last_transition": change}
        limiter = {"backend": "local\x1b[1A", "fallback_active": True, "healthy": True}
        report = {"host": HOST, "pid": 7, "time": time.time(), "breakers": [breaker]}
        store.publish(f"{HOST}:7", {**report, "limiter": limiter}, 30)
        try:
            text, code, message = run("--check")
            doc = strict_json(run("--json")[0])
        finally:
            fleet.stop()
    assert code == 1
    assert not CONTROL.search(text) and not CONTROL.search(message), (text, message)
    assert "evil\\x1b[2Jhost:7" in text and "pay\\x1b]8;;https://x.example\\x07ments\\x0d" in text
    assert "\\x0dall \\x9bfine" in text and "local\\x1b[1A" in text
    assert "breaker pay\\x1b]8;;https://x.example\\x07ments\\x0d is open in evil\\x1b" in message
    assert isinstance(doc, dict) and doc["breakers"][0]["name"] == NAME  # JSON escapes on its own
