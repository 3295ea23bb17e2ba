from __future__ import annotations

import os
import signal
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import prometheus_client
import pytest
from django.core.cache.backends.locmem import LocMemCache

from resilience_django.breakers import events
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.state import Breaker, CircuitOpen
from resilience_django.fleet import FleetPublisher
from resilience_django.fleetstore.cache import CacheStore
from tests.utils.waiting import holds_within


def sample(name: str, labels: dict[str, str]) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_transitions_and_call_outcomes_reach_prometheus_off_the_hot_path() -> None:
    name = "metrics-probe"
    b = Breaker(name, BreakerPolicy(failure_threshold=2, error_rate=None))
    before = sample(
        "resilience_breaker_transitions_total",
        {"breaker": name, "from_state": "closed", "to_state": "open"},
    )
    for _ in range(3):
        b.record_success(b.acquire())
    for _ in range(2):
        b.record_failure(b.acquire())
    with pytest.raises(CircuitOpen):
        b.acquire()
    assert events.flush()
    assert (
        sample(
            "resilience_breaker_transitions_total",
            {"breaker": name, "from_state": "closed", "to_state": "open"},
        )
        == before + 1
    )
    assert sample("resilience_breaker_state", {"breaker": name}) == 1
    calls = {
        outcome: sample("resilience_breaker_calls_total", {"breaker": name, "outcome": outcome})
        for outcome in ("success", "failure", "rejected")
    }
    assert calls == {"success": 3, "failure": 2, "rejected": 1}


# -- one slow listener holds up nothing else ----------------------------------------------


@pytest.fixture
def stuck_listener() -> Iterator[tuple[Callable[[events.Transition], None], threading.Event]]:
    """A listener that blocks until the test lets it go (set free at the end in any case)."""
    entered = threading.Event()
    release = threading.Event()

    def stuck(transition: events.Transition) -> None:
        entered.set()
        release.wait(60)

    yield stuck, entered
    release.set()


def test_a_stuck_listener_holds_up_neither_other_listeners_nor_the_metrics(
    stuck_listener: tuple[Callable[[events.Transition], None], threading.Event],
) -> None:
    stuck, entered = stuck_listener
    policy = BreakerPolicy(failure_threshold=1, error_rate=None)
    other, shared2 = Breaker("stuck-other", policy), Breaker("stuck-shared2", policy)
    heard: list[tuple[str, str]] = []
    other.add_listener(stuck)
    other.add_listener(lambda t: heard.append((t.breaker, t.to_state)))
    shared2.add_listener(lambda t: heard.append((t.breaker, t.to_state)))
    opened = {"breaker": "stuck-shared2", "from_state": "closed", "to_state": "open"}
    before = sample("resilience_breaker_transitions_total", opened)

    other.record_failure(other.acquire())
    assert entered.wait(10)  # the stuck listener now holds its transition
    shared2.record_failure(shared2.acquire())

    # Neither the other listener of the same breaker, nor another breaker's
    # listener, nor the metrics wait for it.
    assert holds_within(lambda: ("stuck-shared2", "open") in heard)
    assert ("stuck-other", "open") in heard
    transitions = "resilience_breaker_transitions_total"
    assert holds_within(lambda: sample(transitions, opened) == before + 1)


def test_the_fleet_hears_of_an_open_breaker_while_a_listener_is_stuck(
    stuck_listener: tuple[Callable[[events.Transition], None], threading.Event],
) -> None:
    stuck, entered = stuck_listener
    store = CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")
    policy = BreakerPolicy(failure_threshold=1, shared=True, shared_poll=0.05, open_for=30)
    other, shared2 = Breaker("other", policy), Breaker("shared2", policy)
    publisher = FleetPublisher(store, lambda: [other, shared2], ttl=10)
    publisher.attach(other)
    publisher.attach(shared2)
    other.add_listener(stuck)
    publisher.start()
    try:
        other.record_failure(other.acquire())
        assert entered.wait(10)
        shared2.record_failure(shared2.acquire())
        # The fleet thread writes the shared-open marker other processes follow.
        assert holds_within(lambda: "shared2" in store.open_until(["shared2"]))
    finally:
        publisher.stop()


def test_a_breaker_made_while_counters_are_flushed_does_not_break_the_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A WeakSet iterates in Python code; another thread adding to it meanwhile ended
    the flush (and the daemon thread that runs it) with "Set changed size"."""
    tester = threading.current_thread()
    late = Breaker("made-during-flush", BreakerPolicy())
    moved_on = threading.Event()  # the adder added, or waits for the flush to let it

    def add() -> None:
        events.track(late)
        moved_on.set()

    adder = threading.Thread(target=add, name="adder")

    class AddsWhileIterated(weakref.WeakSet):  # type: ignore[type-arg]
        def __iter__(self) -> Iterator[Breaker]:
            items = super().__iter__()
            if threading.current_thread() is not tester or adder.ident is not None:
                yield from items
                return
            yield next(items)
            adder.start()
            assert moved_on.wait(10)
            yield from items

    class NotesWaiters:
        def __init__(self, lock: Any) -> None:
            self.lock = lock

        def __enter__(self) -> None:
            if threading.current_thread() is adder:
                moved_on.set()
            self.lock.acquire()

        def __exit__(self, *exc: object) -> None:
            self.lock.release()

    keep = [Breaker(f"tracked-{i}", BreakerPolicy()) for i in range(3)]  # held weakly below
    tracked = AddsWhileIterated(keep)
    monkeypatch.setattr(events, "_breakers", tracked)
    lock = getattr(events, "_breakers_lock", None)
    if lock is not None:
        monkeypatch.setattr(events, "_breakers_lock", NotesWaiters(lock))
    try:
        events._flush_counters()
    finally:
        moved_on.set()
        adder.join(10)
    assert late in tracked


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_the_events_thread_was_starting_can_start_its_own() -> None:
    held, leave = threading.Event(), threading.Event()

    def start_thread_slowly() -> None:
        with events._start_lock:  # as _ensure_thread does, for as long as the fork takes
            held.set()
            leave.wait(30)

    holder = threading.Thread(target=start_thread_slowly)
    holder.start()
    assert held.wait(10)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork"
            pid = os.fork()
        if pid == 0:  # the child: its first breaker starts the events thread
            code = 1
            try:
                b = Breaker("forked", BreakerPolicy(failure_threshold=1, error_rate=None))
                b.record_failure(b.acquire())
                code = 0 if events.flush(10) and b.state == "open" else 1
            finally:
                os._exit(code)
    finally:
        leave.set()
        holder.join()
    deadline = time.monotonic() + 30
    while (status := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if status[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the child hung on a lock it inherited held")
    assert os.waitstatus_to_exitcode(status[1]) == 0
