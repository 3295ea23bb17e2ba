"""Live reload: the version key, the reload, the precedence, and what happens when things fail."""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
import tracemalloc
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import OperationalError, connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from resilience_django import fleetstore, live
from resilience_django.breakers.policy import BreakerPolicy as ParsedPolicy
from resilience_django.breakers.registry import get_breaker
from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule
from resilience_django.shedding.bulkhead import Permit, Shed

pytestmark = pytest.mark.django_db


def _rules() -> None:
    LimitRule.objects.create(name="api", path="/api/", rate="5/s", mode="shadow")
    LimitRule.objects.create(name="off", rate="1/s", enabled=False)
    BreakerPolicy.objects.create(name="pricing", failure_threshold=3, open_for="10s")
    RouteDeadline.objects.create(route="/api/orders", budget="800ms")


def test_reload_loads_enabled_rows_parsed_by_the_settings_parsers() -> None:
    _rules()
    assert live.reload_now() is True
    rules = live.admin_rules()
    (limit,) = rules.limit_rules
    assert (limit.name, limit.mode) == ("api", "shadow")
    assert (limit.policy.rate.limit, limit.policy.rate.period) == (5, 1.0)
    assert limit.matcher.matches("GET", "/api/x") and not limit.matcher.matches("GET", "/x")
    assert isinstance(rules.breaker_policies["pricing"], ParsedPolicy)
    assert rules.breaker_policies["pricing"].open_for == 10.0
    (budget,) = rules.route_budgets
    assert (budget.label, budget.budget) == ("/api/orders", 0.8)


def test_unchanged_version_means_no_database_query(django_assert_num_queries: Any) -> None:
    _rules()
    live.bump()
    assert live.reload_now() is True
    with django_assert_num_queries(0):
        assert live.reload_now() is False


def test_a_bump_makes_the_next_check_reload(django_capture_on_commit_callbacks: Any) -> None:
    live.reload_now()
    assert live.admin_rules().limit_rules == ()
    with django_capture_on_commit_callbacks(execute=True):
        LimitRule.objects.create(name="new", rate="1/s")
    assert live.reload_now() is True
    assert [r.name for r in live.admin_rules().limit_rules] == ["new"]
    with django_capture_on_commit_callbacks(execute=True):
        LimitRule.objects.all().delete()
    assert live.reload_now() is True
    assert live.admin_rules().limit_rules == ()


def test_version_is_only_bumped_after_commit(django_capture_on_commit_callbacks: Any) -> None:
    cache.delete(live.VERSION_KEY)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        LimitRule.objects.create(name="new", rate="1/s")
        assert cache.get(live.VERSION_KEY) is None
    assert callbacks == [live.bump]


def test_each_bump_writes_a_new_version() -> None:
    live.bump()
    first = cache.get(live.VERSION_KEY)
    live.bump()
    assert cache.get(live.VERSION_KEY) not in (None, first)


@override_settings(
    RESILIENCE={
        "LIMITS": [{"name": "api", "rate": "100/m"}],
        "BREAKERS": {"pricing": {"failure_threshold": 9}},
        "DEADLINE": {"ROUTES": {"/api/orders": "2s"}},
    }
)
def test_settings_rule_with_the_same_name_wins_and_the_conflict_is_listed() -> None:
    _rules()
    LimitRule.objects.create(name="extra", rate="1/s")
    live.reload_now()
    rules = live.admin_rules()
    assert [r.name for r in rules.limit_rules] == ["extra"]  # "api" is the settings' one
    assert rules.breaker_policies == {}
    assert rules.route_budgets == ()
    assert set(rules.conflicts) == {
        ("limit", "api"),
        ("breaker", "pricing"),
        ("route", "/api/orders"),
    }


def test_database_down_keeps_the_last_rules_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _rules()
    live.reload_now()
    before = live.admin_rules()
    LimitRule.objects.create(name="later", rate="1/s")
    live.bump()

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(connection, "cursor", down)
    with caplog.at_level(logging.ERROR, logger="resilience_django.live"):
        assert live.reload_now() is False
    assert live.admin_rules() is before
    assert "cannot load admin rules" in caplog.text and "could not connect" in caplog.text
    monkeypatch.undo()
    assert live.reload_now() is True  # the version was not taken as loaded: it retries
    assert "later" in [r.name for r in live.admin_rules().limit_rules]


def test_cache_down_keeps_the_last_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    _rules()
    live.reload_now()
    before = live.admin_rules()

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache unreachable")

    monkeypatch.setattr(cache, "get", down)
    assert live.reload_now() is False
    assert live.admin_rules() is before


def test_a_row_that_no_longer_parses_is_left_out_and_the_rest_loads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _rules()
    LimitRule.objects.create(name="bad", rate="1/s")
    LimitRule.objects.filter(name="bad").update(rate="10/x")  # around the admin's validation
    with caplog.at_level(logging.ERROR, logger="resilience_django.live"):
        live.reload_now()
    assert [r.name for r in live.admin_rules().limit_rules] == ["api"]
    assert "E020" in caplog.text


def test_admin_breaker_policy_reconfigures_the_breaker_and_removal_restores_it(
    fresh_breakers: None,
) -> None:
    breaker = get_breaker("pricing")
    assert breaker.policy.failure_threshold == 5
    row = BreakerPolicy.objects.create(name="pricing", failure_threshold=2)
    live.reload_now()
    assert breaker.policy.failure_threshold == 2
    row.delete()
    live.bump()
    live.reload_now()
    assert breaker.policy.failure_threshold == 5


def test_maybe_reload_checks_at_most_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    kicks: list[float] = []
    monkeypatch.setattr(live, "_kick", lambda: kicks.append(1.0))
    with override_settings(RESILIENCE={"RELOAD_INTERVAL": "250ms"}):
        live.reset()
        generation = live.maybe_reload(100.0)
        assert live.maybe_reload(100.2) == generation
        assert len(kicks) == 1
        assert live.maybe_reload(100.25) == generation
        assert len(kicks) == 2


def test_every_consumer_sees_the_generation_move_on_after_new_rules_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two consumers in one process (the runtime and, say, a view or a second
    # engine): a change that one of them sees first is not lost to the other.
    monkeypatch.setattr(live, "_kick", lambda: None)
    runtime_seen = view_seen = live.maybe_reload(0.0)
    LimitRule.objects.create(name="api", rate="1/s")
    assert live.reload_now() is True
    runtime_seen, before = live.maybe_reload(0.0), runtime_seen
    assert runtime_seen != before
    assert live.maybe_reload(0.0) != view_seen
    assert live.maybe_reload(0.0) == runtime_seen  # unchanged until the next load
    assert [r.name for r in live.admin_rules().limit_rules] == ["api"]


@pytest.mark.django_db(transaction=True)
def test_a_committed_change_is_picked_up_by_the_background_thread_within_a_second(
    live_thread: None,
) -> None:
    seen = live.maybe_reload(time.monotonic())
    LimitRule.objects.create(name="api", rate="1/s")  # autocommit: bumps at once
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        if live.maybe_reload(time.monotonic()) != seen:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the background thread did not load the new rule")
    assert [r.name for r in live.admin_rules().limit_rules] == ["api"]
    assert time.monotonic() < deadline - 1.0  # within about the 1 s interval


def test_the_reload_thread_closes_its_database_connection_after_each_round(
    live_thread: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connections

    from resilience_django.fleetstore.database import DatabaseStore

    closed = threading.Event()

    def one_round() -> bool:  # runs on the thread: reads the version from the database
        live._state.store = DatabaseStore()
        db = connections["default"]
        db.ensure_connection()
        # The test database lives in memory, where close() does nothing: watch for it.
        monkeypatch.setattr(db, "close", closed.set)
        return False

    monkeypatch.setattr(live, "reload_now", one_round)
    live.maybe_reload(time.monotonic())
    assert closed.wait(10), "the thread kept its connection (CONN_MAX_AGE is 0)"


@pytest.mark.redis
def test_redis_backend_keeps_the_version_in_redis() -> None:
    import redis

    from tests.services import redis_url

    url = redis_url()
    client = redis.Redis.from_url(url)
    client.delete(live.VERSION_KEY)
    cache.delete(live.VERSION_KEY)
    with override_settings(RESILIENCE={"BACKEND": "redis", "REDIS": {"URL": url}}):
        live.reset()
        live.bump()
        assert client.get(live.VERSION_KEY) is not None
        assert cache.get(live.VERSION_KEY) is None  # Redis, not the cache
        LimitRule.objects.create(name="api", rate="1/s")
        assert live.reload_now() is True
        assert live.reload_now() is False
    client.delete(live.VERSION_KEY)


def test_maybe_reload_leaves_no_garbage_when_not_due(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "_kick", lambda: None)
    live.maybe_reload(0.0)  # due: schedules the next check a second later
    check, now = live.maybe_reload, 0.5
    warm_up, calls = itertools.repeat(None, 100), itertools.repeat(None, 1000)
    # A line tracer (coverage, a debugger) allocates on its own as the loop runs;
    # what is measured here is the check's allocations, so the tracer pauses.
    tracer = sys.gettrace()
    sys.settrace(None)
    tracemalloc.start()
    try:
        for _ in warm_up:  # the interpreter specialises the loop and the call once
            check(now)
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        for _ in calls:
            check(now)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sys.settrace(tracer)
    # Nothing kept, and at most one transient small object (Python 3.13 boxes a
    # float in the compare; 3.11 allocates nothing): no per-request garbage.
    assert peak - base <= 64


def test_a_settings_change_reapplies_admin_breaker_policies(fresh_breakers: None) -> None:
    BreakerPolicy.objects.create(name="pricing", failure_threshold=2)
    live.reload_now()
    assert get_breaker("pricing").policy.failure_threshold == 2
    with override_settings(RESILIENCE={"BREAKERS": {"other": {}}}):
        # The registry re-reads its policies on a settings change; pricing is not in
        # the settings, so the admin's policy stays in force without waiting for a load.
        assert get_breaker("pricing").policy.failure_threshold == 2
        live.reload_now()
        assert get_breaker("pricing").policy.failure_threshold == 2
    with override_settings(RESILIENCE={"BREAKERS": {"pricing": {"failure_threshold": 7}}}):
        # Settings win over the admin on a shared name.
        assert get_breaker("pricing").policy.failure_threshold == 7


# -- shedding rules ----------------------------------------------------------------


@pytest.fixture
def fresh_runtime(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A runtime built from scratch: no shedder (and no slots) left by another test."""
    from resilience_django import runtime

    monkeypatch.setattr(runtime, "_previous_stores", None)
    runtime.reset_runtime()
    yield runtime
    runtime.reset_runtime()


def _admit(runtime: Any, path: str) -> Permit | Shed | None:
    return runtime.get_runtime().shedder.admit_sync("GET", path)


def test_reload_loads_shedding_rules_in_position_order() -> None:
    SheddingRule.objects.create(name="b-search", path="/api/search", max_concurrent=200,
                                adaptive=True, min_concurrent=10)  # fmt: skip
    SheddingRule.objects.create(name="z-checkout", path="/api/orders/checkout", max_concurrent=5,
                                critical=True, position=-1)  # fmt: skip
    SheddingRule.objects.create(name="a-orders", path="/api/orders", max_concurrent=50)
    SheddingRule.objects.create(name="off", max_concurrent=1, enabled=False)
    assert live.reload_now() is True
    rules = live.admin_rules().shedding_rules
    assert [r.name for r in rules] == ["z-checkout", "a-orders", "b-search"]
    assert rules[0].critical and rules[2].adaptive and rules[2].min_concurrent == 10


def test_a_saved_shedding_rule_is_in_force_in_a_running_runtime_after_reload(
    fresh_runtime: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django.test import Client

    assert fresh_runtime.get_runtime().shedder is None
    with django_capture_on_commit_callbacks(execute=True):
        SheddingRule.objects.create(name="hello", path="/hello/", max_concurrent=1)
    assert live.reload_now() is True
    held = _admit(fresh_runtime, "/hello/")  # the next get_runtime() rebuilds with the rule
    assert isinstance(held, Permit)
    response = Client().get("/hello/")
    assert response.status_code == 503 and "Retry-After" in response
    held.release()
    assert Client().get("/hello/").status_code == 200


@override_settings(
    RESILIENCE={
        "SHEDDING": [
            {"name": "orders", "path": "/api/orders", "max_concurrent": 3},
            {"name": "api", "path": "/api/", "max_concurrent": 9},
        ]
    }
)
def test_settings_shedding_rules_win_by_name_and_are_tried_first(fresh_runtime: Any) -> None:
    SheddingRule.objects.create(name="orders", path="/", max_concurrent=1)  # same name
    SheddingRule.objects.create(name="checkout", path="/api/orders/checkout", max_concurrent=1,
                                position=-100)  # fmt: skip
    SheddingRule.objects.create(name="static", path="/static/", max_concurrent=1)
    live.reload_now()
    assert ("shedding", "orders") in live.admin_rules().conflicts
    shedder = fresh_runtime.get_runtime().shedder
    assert [r.name for r in shedder.rules] == ["orders", "api", "checkout", "static"]
    assert shedder.match("GET", "/api/orders/checkout").name == "orders"  # settings first
    assert shedder.match("GET", "/static/app.css").name == "static"
    assert shedder.bulkhead("orders").limit == 3  # the settings' size, not the admin's


@override_settings(
    RESILIENCE={"SHEDDING": [{"name": "from-settings", "path": "/s/", "max_concurrent": 1}]}
)
def test_admin_edits_of_one_shedding_rule_keep_the_other_rules_in_flight_counts(
    fresh_runtime: Any, django_capture_on_commit_callbacks: Any
) -> None:
    SheddingRule.objects.create(name="a", path="/a/", max_concurrent=1)
    b = SheddingRule.objects.create(name="b", path="/b/", max_concurrent=2)
    live.reload_now()
    held = [_admit(fresh_runtime, "/s/"), _admit(fresh_runtime, "/a/")]
    assert all(isinstance(p, Permit) for p in held)

    # Any edit of b, even one that gives b a new bulkhead (queue), and adding a rule.
    b.queue, b.max_concurrent = 5, 3
    with django_capture_on_commit_callbacks(execute=True):
        b.save()
        SheddingRule.objects.create(name="c", path="/c/", max_concurrent=1)
    assert live.reload_now() is True
    assert [r.name for r in fresh_runtime.get_runtime().shedder.rules] == [
        "from-settings", "a", "b", "c",
    ]  # fmt: skip
    assert isinstance(_admit(fresh_runtime, "/s/"), Shed)  # still 1 of 1 in flight
    assert isinstance(_admit(fresh_runtime, "/a/"), Shed)
    assert fresh_runtime.get_runtime().shedder.bulkhead("a").inflight == 1

    # Resizing a rule itself keeps its count too: 1 in flight, 1 more fits.
    a = SheddingRule.objects.get(name="a")
    a.max_concurrent = 2
    with django_capture_on_commit_callbacks(execute=True):
        a.save()
    assert live.reload_now() is True
    held.append(_admit(fresh_runtime, "/a/"))  # held: a permit dropped gives its slot back
    assert isinstance(held[-1], Permit)
    assert isinstance(_admit(fresh_runtime, "/a/"), Shed)
    for permit in held:
        permit.release()


def test_database_down_keeps_the_last_shedding_rules_in_force(
    fresh_runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    SheddingRule.objects.create(name="hello", path="/hello/", max_concurrent=1)
    live.reload_now()
    SheddingRule.objects.all().delete()
    live.bump()

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(connection, "cursor", down)
    assert live.reload_now() is False
    assert [r.name for r in fresh_runtime.get_runtime().shedder.rules] == ["hello"]


# -- RELOAD_INTERVAL None ------------------------------------------------------------


def _reload_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "resilience-live"}


@override_settings(RESILIENCE={"RELOAD_INTERVAL": None})
def test_reload_interval_none_starts_no_thread_reads_nothing_and_enforces_settings_rules_alone(
    live_thread: None, client: Client
) -> None:
    LimitRule.objects.create(name="admin-tight", path="/hello/", key="ip", rate="1/m")
    before = _reload_threads()
    with CaptureQueriesContext(connection) as queries:
        codes = [client.get("/hello/", REMOTE_ADDR="10.6.0.1").status_code for _ in range(3)]
        # What the thread would do if there were one: it reads nothing, loads nothing.
        assert live.reload_now() is False
        codes += [client.get("/hello/", REMOTE_ADDR="10.6.0.1").status_code for _ in range(3)]
    assert codes == [200] * 6
    assert "RateLimit" not in client.get("/hello/", REMOTE_ADDR="10.6.0.1")
    assert live.admin_rules().limit_rules == ()
    assert _reload_threads() <= before  # no reload thread was started
    assert len(queries) == 0, [q["sql"] for q in queries]


@override_settings(RESILIENCE={"RELOAD_INTERVAL": None})
def test_reload_interval_none_logs_nothing_when_the_version_store_is_down(
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    class Down:
        kind, publish_every = "cache", 1.0

        def __getattr__(self, name: str) -> Any:
            def down(*args: Any) -> Any:
                raise ConnectionError("version store unreachable")

            return down

    monkeypatch.setattr(fleetstore, "get_store", Down)
    with caplog.at_level(logging.ERROR, logger="resilience_django.live"):
        assert client.get("/hello/", REMOTE_ADDR="10.6.0.2").status_code == 200
        assert live.reload_now() is False
        with django_capture_on_commit_callbacks(execute=True):
            LimitRule.objects.create(name="saved", rate="1/s")  # bumps after the commit
        assert client.get("/hello/", REMOTE_ADDR="10.6.0.2").status_code == 200
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# -- precedence follows the settings -----------------------------------------------------

API_PER_IP = {"LIMITS": [{"name": "api-per-ip", "path": "/hello/", "key": "ip", "rate": "2/m"}]}


@override_settings(RESILIENCE=API_PER_IP)
def test_leaving_override_settings_recomputes_conflicts_so_one_rule_of_a_name_is_in_force(
    client: Client,
) -> None:
    LimitRule.objects.create(name="api-per-ip", path="/hello/", key="ip", rate="1/m")
    live.reload_now()
    assert live.admin_rules().conflicts == (("limit", "api-per-ip"),)
    with override_settings(RESILIENCE={"LIMITS": []}):
        # The settings no longer claim the name: the admin rule is in force at once.
        assert [r.name for r in live.admin_rules().limit_rules] == ["api-per-ip"]
        live.reload_now()  # what the reload thread does within a second
        inside = client.get("/hello/", REMOTE_ADDR="10.7.0.1")
        assert inside["RateLimit-Policy"] == '"api-per-ip";q=1;w=60'
    # Back to the settings' rule, with no reload in between: the settings win again.
    assert live.admin_rules().limit_rules == ()
    assert live.admin_rules().conflicts == (("limit", "api-per-ip"),)
    first = client.get("/hello/", REMOTE_ADDR="10.7.0.2")
    assert first.status_code == 200
    assert first["RateLimit-Policy"] == '"api-per-ip";q=2;w=60'
    codes = [client.get("/hello/", REMOTE_ADDR="10.7.0.2").status_code for _ in range(2)]
    assert codes == [200, 429]


# -- with nothing shared but the database ------------------------------------------------


@pytest.mark.django_db(transaction=True)
@override_settings(RESILIENCE={"FLEET": {"STORE": "database", "ENABLED": False}})
def test_database_store_sees_an_update_without_signals_and_requests_never_query(
    live_thread: None, client: Client
) -> None:
    from django.utils import timezone

    LimitRule.objects.create(name="db-api", path="/hello/", key="ip", rate="100/m")
    rows = LimitRule.objects.filter(name="db-api")
    policies: list[str] = []
    with CaptureQueriesContext(connection) as queries:

        def policy() -> str:
            policies.append(
                client.get("/hello/", REMOTE_ADDR="10.8.0.1").get("RateLimit-Policy", "")
            )
            return policies[-1]

        deadline = time.monotonic() + 10
        while policy() != '"db-api";q=100;w=60':
            assert time.monotonic() < deadline, policies[-5:]
            time.sleep(0.05)
        # QuerySet.update() sends no signal; the updated_at it sets changes the version.
        rows.update(rate="5/m", updated_at=timezone.now() + timedelta(seconds=1))
        during = len(queries)
        while policy() != '"db-api";q=5;w=60':
            assert time.monotonic() < deadline, policies[-5:]
            time.sleep(0.05)
    # The only query on the request thread was the test's own update.
    assert len(queries) == 1 and during == 1, [q["sql"] for q in queries]
