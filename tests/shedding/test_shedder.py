from __future__ import annotations

import time

from resilience_django import deadline
from resilience_django.shedding.bulkhead import Shed
from resilience_django.shedding.rules import parse_shedding_rule
from resilience_django.shedding.shedder import Shedder


def rule(**overrides: object) -> object:
    spec: dict[str, object] = {"name": "api", "path": "/api", "max_concurrent": 2}
    spec.update(overrides)
    return parse_shedding_rule(spec, index=0)


def test_first_matching_rule_decides_and_unmatched_requests_pass() -> None:
    door = Shedder(
        [rule(name="orders", path="/api/orders", max_concurrent=1), rule(max_concurrent=5)]
    )
    first = door.admit_sync("GET", "/api/orders/1")
    assert first is not None and first.admitted
    second = door.admit_sync("GET", "/api/orders/2")
    assert isinstance(second, Shed)
    other = door.admit_sync("GET", "/api/users")
    assert other is not None and other.admitted  # the broader rule has room
    assert door.admit_sync("GET", "/health") is None
    first.release()
    other.release()


def test_critical_header_is_looked_up_only_for_rules_that_name_one() -> None:
    asked: list[str] = []

    def header(name: str) -> str | None:
        asked.append(name)
        return "1"

    door = Shedder([rule(max_concurrent=5, critical_share=0.2, critical_header="X-Priority")])
    permits = [door.admit_sync("GET", "/api/x") for _ in range(4)]
    assert all(p is not None and p.admitted for p in permits)
    assert isinstance(door.admit_sync("GET", "/api/x"), Shed)  # the reserved slot is kept
    critical = door.admit_sync("GET", "/api/x", header=header)
    assert critical is not None and critical.admitted and asked == ["X-Priority"]
    plain = Shedder([rule()])
    plain.admit_sync("GET", "/api/x", header=header)
    assert asked == ["X-Priority"]


def test_queue_wait_is_cut_to_the_remaining_deadline() -> None:
    door = Shedder([rule(max_concurrent=1, queue=5, max_wait="2s")])
    held = door.admit_sync("GET", "/api/x")
    assert held is not None

    @deadline.deadline("100ms")
    def view() -> object:
        return door.admit_sync("GET", "/api/x")

    started = time.monotonic()
    result = view()
    assert isinstance(result, Shed) and result.reason == "timeout"
    assert time.monotonic() - started < 0.5
    held.release()


async def test_async_admission_uses_the_same_bulkhead() -> None:
    door = Shedder([rule(max_concurrent=1)])
    held = door.admit_sync("GET", "/api/x")
    assert held is not None and held.admitted
    assert isinstance(await door.admit_async("GET", "/api/x"), Shed)
    held.release()
    again = await door.admit_async("GET", "/api/x")
    assert again is not None and again.admitted
    again.release()


def test_update_resizes_a_rule_whose_size_changed_and_keeps_its_slots() -> None:
    door = Shedder([rule(max_concurrent=2)])
    before = door.bulkhead("api")
    held = [door.admit_sync("GET", "/api/x") for _ in range(2)]
    door.update([rule(max_concurrent=3)])
    assert door.bulkhead("api") is before and before.limit == 3
    third = door.admit_sync("GET", "/api/x")
    assert third is not None and third.admitted
    assert isinstance(door.admit_sync("GET", "/api/x"), Shed)  # 3 in flight, kept across update
    for p in (*held, third):
        assert p is not None
        p.release()


def test_update_rebuilds_when_the_shape_changes_and_drops_removed_rules() -> None:
    door = Shedder([rule(), rule(name="old", path="/old")])
    before = door.bulkhead("api")
    door.update([rule(queue=4)])
    assert door.bulkhead("api") is not before and door.bulkhead("api").queue == 4
    assert door.admit_sync("GET", "/old") is None


def test_view_name_rules_are_announced() -> None:
    assert not Shedder([rule()]).needs_view_name
    by_view = parse_shedding_rule(
        {"name": "q", "view": "orders:quote", "max_concurrent": 1}, index=0
    )
    door = Shedder([by_view])
    assert door.needs_view_name
    assert door.admit_sync("GET", "/quote") is None
    permit = door.admit_sync("GET", "/quote", view_name="orders:quote")
    assert permit is not None and permit.admitted
    permit.release()


def test_rules_renamed_while_requests_arrive_never_fail_a_request() -> None:
    import threading

    first = [rule(name="before", path="/api", max_concurrent=50)]
    second = [rule(name="after", path="/api", max_concurrent=50)]
    door = Shedder(first)
    stop = threading.Event()

    def edit() -> None:  # an admin flipping the rule's name, as fast as it can
        while not stop.is_set():
            door.update(second)
            door.update(first)

    editor = threading.Thread(target=edit)
    editor.start()
    errors: list[BaseException] = []
    try:
        deadline_at = time.monotonic() + 0.5
        while time.monotonic() < deadline_at:
            try:
                answer = door.admit_sync("GET", "/api/x")
            except KeyError as exc:  # a rule of one version, the bulkheads of the other
                errors.append(exc)
                continue
            assert answer is not None and answer.admitted
            answer.release()
    finally:
        stop.set()
        editor.join()
    assert errors == []


def test_limit_gauge_of_a_removed_rule_drops_to_zero() -> None:
    from prometheus_client import REGISTRY

    def gauge(name: str) -> float | None:
        return REGISTRY.get_sample_value("resilience_concurrency_limit", {"route": name})

    door = Shedder([rule(name="gauge-kept", max_concurrent=3), rule(name="gauge-gone")])
    assert gauge("gauge-kept") == 3
    door.update([rule(name="gauge-kept", max_concurrent=5)])
    assert gauge("gauge-kept") == 5
    assert gauge("gauge-gone") == 0
    # A rebuilt bulkhead (another queue) reports; the retired one no longer does.
    retired = door.bulkhead("gauge-kept")
    door.update([rule(name="gauge-kept", max_concurrent=4, queue=9)])
    assert gauge("gauge-kept") == 4
    retired.resize(40)
    assert gauge("gauge-kept") == 4


def test_update_that_only_flips_exempt_streams_keeps_the_bulkhead_and_its_permits() -> None:
    door = Shedder([rule()])
    permit = door.admit_sync("GET", "/api/x")
    assert permit is not None and permit.admitted and not permit.exempt_streams
    bulkhead = door.bulkhead("api")
    door.update([rule(exempt_streams=True)])
    assert door.bulkhead("api") is bulkhead
    assert permit.exempt_streams  # a permit asks its rule as it is now
    permit.release()
    assert bulkhead.inflight == 0
