from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from resilience_django import fleet
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.registry import registry
from resilience_django.breakers.state import Breaker
from resilience_django.fleet import FleetPublisher
from resilience_django.limiting.health import register as register_limiter_health

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {
    "FLEET": {"PREFIX": "status-test", "TTL": 30},
    "LIMITS": [{"name": "orders-per-ip", "rate": "100/m", "scope": "distributed"}],
    "SHEDDING": [
        {"name": "orders", "path": "/api/orders", "max_concurrent": 50, "queue": 100,
         "max_wait": "200ms", "critical_share": 0.2},
    ],
}  # fmt: skip


@pytest.fixture(autouse=True)
def published() -> Iterator[None]:
    # Limiters built by other tests register their health; this process's is local.
    register_limiter_health(None)
    fleet.stop()
    registry.clear()
    with override_settings(RESILIENCE=SETTINGS):
        store = fleet.get_store()
        assert store is not None
        pricing = Breaker("pricing", BreakerPolicy(failure_threshold=1))
        pricing.record_failure(pricing.acquire())
        inventory = Breaker("inventory")
        inventory.record_success(inventory.acquire())
        FleetPublisher(store, lambda: [pricing, inventory]).tick()
        yield
        fleet.stop()
    registry.clear()


def test_prints_every_breaker_with_state_rates_and_last_transition() -> None:
    out = StringIO()
    call_command("resilience_status", stdout=out)
    text = out.getvalue()
    pricing = next(line for line in text.splitlines() if line.strip().startswith("pricing"))
    assert f":{os.getpid()}" in pricing
    assert "open" in pricing and "closed -> open" in pricing
    assert "1 consecutive failures" in pricing
    inventory = next(line for line in text.splitlines() if line.strip().startswith("inventory"))
    assert "closed" in inventory and "0.0%" in inventory


@pytest.mark.django_db
def test_prints_the_limiter_backend_health_and_the_rules_from_settings_and_admin() -> None:
    from resilience_django.models import LimitRule

    LimitRule.objects.create(name="admin-burst", rate="5/s", key="ip", algorithm="gcra")
    out = StringIO()
    call_command("resilience_status", stdout=out)
    text = out.getvalue()
    assert "Limiter backend" in text
    assert "backend: local" in text
    assert "orders-per-ip: 100/m sliding_window key=ip on * distributed enforce (settings)" in text
    assert "admin-burst: 5/s gcra key=ip on * local enforce (admin)" in text


@pytest.mark.django_db
def test_prints_the_shedding_rules_from_settings_then_admin_in_the_order_they_apply() -> None:
    from resilience_django.models import SheddingRule

    SheddingRule.objects.create(name="search", path="/api/search", max_concurrent=200,
                                adaptive=True, min_concurrent=10, max_wait="1s")  # fmt: skip
    SheddingRule.objects.create(name="checkout", path="/api/checkout", max_concurrent=5,
                                critical=True, position=-1)  # fmt: skip
    SheddingRule.objects.create(name="orders", max_concurrent=1)  # settings win: left out
    out = StringIO()
    call_command("resilience_status", stdout=out)
    text = out.getvalue()
    section = text[text.index("Shedding rules in force") :].splitlines()[1:4]
    assert section == [
        "  orders: max_concurrent=50 queue=100 max_wait=200ms on /api/orders "
        "critical_share=0.2 (settings)",
        "  checkout: max_concurrent=5 queue=0 max_wait=100ms on /api/checkout critical (admin)",
        "  search: max_concurrent=10..200 adaptive queue=0 max_wait=1s on /api/search (admin)",
    ]


def test_an_unreachable_database_leaves_the_settings_rules_and_says_so() -> None:
    # No django_db mark: pytest-django refuses the query, as a down database would.
    out = StringIO()
    call_command("resilience_status", stdout=out)
    text = out.getvalue()
    assert "orders-per-ip:" in text
    assert "orders: max_concurrent=50" in text
    assert "admin rules unavailable" in text


@pytest.mark.django_db
def test_json_output_carries_the_same_facts() -> None:
    out = StringIO()
    call_command("resilience_status", "--json", stdout=out)
    doc = json.loads(out.getvalue())
    states = {row["name"]: row["state"] for row in doc["breakers"]}
    assert states == {"inventory": "closed", "pricing": "open"}
    assert doc["rules"][0]["name"] == "orders-per-ip"
    (shedding,) = doc["shedding"]
    assert (shedding["name"], shedding["max_concurrent"], shedding["source"]) == (
        "orders", 50, "settings",
    )  # fmt: skip


def test_says_so_when_no_breaker_has_reported() -> None:
    with override_settings(RESILIENCE={"FLEET": {"PREFIX": "status-empty"}}):
        out = StringIO()
        call_command("resilience_status", stdout=out)
    assert "no breakers reported" in out.getvalue()


@pytest.mark.parametrize(
    ("setting", "check_id"),
    [
        ({"FALLBACK": "x"}, "resilience.E041"),
        ({"FALLBACK": 5}, "resilience.E041"),
        ({"FLEET": {"TTL": "x"}}, "resilience.E042"),
        ({"FLEET": {"CACHE": "nope"}}, "resilience.E042"),
        ({"FLEET": {"URL": "redis://127.0.0.1:notaport/0"}}, "resilience.E042"),
    ],
)
def test_bad_settings_are_listed_with_their_ids_and_the_command_fails(
    setting: dict[str, object], check_id: str
) -> None:
    err = StringIO()
    with override_settings(RESILIENCE=setting), pytest.raises(CommandError, match="error"):
        call_command("resilience_status", stdout=StringIO(), stderr=err)
    assert check_id in err.getvalue() and "HINT" in err.getvalue()


def test_bad_settings_exit_non_zero_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad_status_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        "RESILIENCE = {'FALLBACK': 5, 'FLEET': {'TTL': 'x'}}\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bad_status_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    for extra in ([], ["--skip-checks"]):
        done = subprocess.run(
            [sys.executable, "-m", "django", "resilience_status", *extra],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
        assert done.returncode == 1, done
        assert "Traceback" not in done.stderr
        assert "resilience.E041" in done.stderr and "resilience.E042" in done.stderr


# -- the fleet's view, not the command's own process ------------------------------------


def _status(*args: str) -> tuple[str, int]:
    out = StringIO()
    try:
        call_command("resilience_status", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc.returncode
    return out.getvalue(), 0


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(start))


@pytest.fixture
def redis_worker(tmp_path: Path) -> Iterator[tuple[dict[str, object], int, Path]]:
    """A real worker process on the Redis backend, reporting to a fleet store in Redis."""
    from tests.services import redis_url

    config: dict[str, object] = {
        "BACKEND": "redis",
        "REDIS": {"URL": redis_url()},
        "FLEET": {"PREFIX": f"status-{os.getpid()}-{tmp_path.name}", "TTL": 30},
        "RELOAD_INTERVAL": None,
        "BREAKERS": {"pricing": {"failure_threshold": 1}, "inventory": {}},
    }
    worker = {"resilience": config, "dir": str(tmp_path), "use": ["pricing"], "trip": "pricing"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.management.status_worker", json.dumps(worker)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield config, proc.pid, tmp_path
    finally:
        (tmp_path / "stop").touch()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.redis
def test_reports_the_backend_and_breakers_a_worker_process_reports(
    redis_worker: tuple[dict[str, object], int, Path],
) -> None:
    config, pid, directory = redis_worker
    with override_settings(RESILIENCE=config):
        text, code = _status("--check")
        assert code == 0, text  # every breaker closed, the worker limits on Redis
        assert "configured backend: redis" in text
        assert "redis: reachable from here" in text
        worker = next(line for line in text.splitlines() if f":{pid}: backend=" in line)
        assert "backend=redis" in worker and "healthy=True" in worker
        assert "fallback_active=False" in worker
        assert f":{os.getpid()}:" not in text  # the command's own process is not a worker
        pricing = _line(text, "pricing")
        assert "settings" in pricing and f":{pid}" in pricing and "closed" in pricing
        inventory = _line(text, "inventory")  # configured, never used: listed all the same
        assert "settings" in inventory and "not used yet" in inventory

        (directory / "trip").touch()
        deadline = time.monotonic() + 10
        while (result := _status("--check"))[1] != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        text, code = result
        assert code == 1, text
        assert "breaker pricing is open in " in text and f":{pid}" in _line(text, "pricing")
        doc = json.loads(_status("--json")[0])
        assert doc["status"]["code"] == 1
        (limiter,) = doc["limiters"]
        assert (limiter["pid"], limiter["backend"]) == (pid, "redis")
        assert limiter["configured"] == "redis"
        configured = {b["name"]: (b["source"], b["states"]) for b in doc["configured_breakers"]}
        assert configured == {"inventory": ("settings", {}), "pricing": ("settings", {"open": 1})}


def test_an_unreachable_redis_is_a_clear_line_and_check_exits_2(tmp_path: Path) -> None:
    from tests.services import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    (tmp_path / "dead_redis_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        f"RESILIENCE = {{'BACKEND': 'redis', 'REDIS': {{'URL': {url!r}}}, "
        "'RELOAD_INTERVAL': None}\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dead_redis_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    runs = {}
    for extra in ([], ["--check"], ["--json", "--check"]):
        runs[" ".join(extra)] = subprocess.run(
            [sys.executable, "-m", "django", "resilience_status", *extra],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
        )  # fmt: skip
    for done in runs.values():
        assert "Traceback" not in done.stderr + done.stdout, done
    plain = runs[""]
    assert plain.returncode == 0, plain
    assert "fleet store unreachable: ConnectionError" in plain.stdout
    assert "redis: unreachable: ConnectionError" in plain.stdout
    assert "backend: local" not in plain.stdout.replace("configured backend: redis", "")
    check = runs["--check"]
    assert check.returncode == 2, check
    assert "status unknown: fleet store unreachable" in check.stderr
    doc = json.loads(runs["--json --check"].stdout)
    assert doc["status"]["code"] == 2 and doc["redis"]["reachable"] is False


@pytest.mark.django_db  # a database down is a "cannot tell" of its own
def test_check_exits_0_when_every_reported_breaker_is_closed_on_the_configured_backend() -> None:
    with override_settings(RESILIENCE={**SETTINGS, "FLEET": {"PREFIX": "status-ok"}}):
        store = fleet.get_store()
        assert store is not None
        closed = Breaker("pricing")
        closed.record_success(closed.acquire())
        FleetPublisher(store, lambda: [closed]).tick()
        text, code = _status("--check")
        fleet.stop()
    assert code == 0, text
    assert "ok (0)" in text


@pytest.mark.django_db  # a database down is a "cannot tell" of its own
def test_check_exits_1_when_a_breaker_is_open_and_names_it() -> None:
    # The autouse fixture published "pricing" open from this process.
    text, code = _status("--check")
    assert code == 1
    assert "breaker pricing is open in" in text


@pytest.mark.django_db
def test_breakers_configured_in_settings_and_admin_are_listed_before_any_process_used_them() -> (
    None
):
    from resilience_django.models import BreakerPolicy as BreakerRow

    BreakerRow.objects.create(name="admin-only", failure_threshold=3)
    config = {**SETTINGS, "BREAKERS": {"never-used": {}}}
    with override_settings(RESILIENCE=config):
        text, _ = _status()
    assert "admin" in _line(text, "admin-only") and "not used yet" in _line(text, "admin-only")
    assert "settings" in _line(text, "never-used") and "not used yet" in _line(text, "never-used")
    assert "defaults" in _line(text, "pricing")  # reported, configured nowhere


def test_with_reload_interval_none_the_admin_rules_are_not_read_and_it_says_so() -> None:
    # No django_db mark: a query would fail the test.
    with override_settings(RESILIENCE={**SETTINGS, "RELOAD_INTERVAL": None}):
        text, _ = _status()
    assert "admin rules are off (RELOAD_INTERVAL is None)" in text
    assert "admin rules unavailable" not in text
    assert "orders-per-ip:" in text


def test_check_cannot_tell_when_no_worker_has_reported() -> None:
    with override_settings(RESILIENCE={"FLEET": {"PREFIX": "status-nobody"}}):
        text, code = _status("--check")
    assert code == 2
    assert "no worker has reported" in text
