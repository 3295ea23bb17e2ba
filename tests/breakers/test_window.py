from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from resilience_django.breakers.window import OutcomeWindow


def test_totals_cover_only_the_last_size_seconds() -> None:
    w = OutcomeWindow(3)
    w.add(0.1, failure=True, slow=False)
    w.add(1.5, failure=False, slow=True)
    w.add(2.9, failure=False, slow=False)
    assert (w.total_calls, w.total_failures, w.total_slow) == (3, 1, 1)
    w.add(3.0, failure=False, slow=False)  # second 0 falls out
    assert (w.total_calls, w.total_failures, w.total_slow) == (3, 0, 1)
    w.roll(100)
    assert w.total_calls == 0 and w.failure_rate == 0.0


def test_roll_recomputes_the_running_totals_from_the_buckets() -> None:
    w = OutcomeWindow(5)
    w.add(0.0, failure=False, slow=False)
    w.base_calls += 7  # whatever went wrong with a running total does not outlive a second
    w.roll(1)
    assert w.total_calls == 1


def test_ewma_blends_each_closed_second_and_skips_idle_ones() -> None:
    w = OutcomeWindow(10, alpha=0.5)
    w.add(0.0, failure=True, slow=False)
    w.roll(1)
    assert w.ewma == 0.5
    w.roll(5)  # idle seconds change nothing
    assert w.ewma == 0.5
    w.add(5.0, failure=False, slow=False)
    w.roll(6)
    assert w.ewma == 0.25


def test_ewma_starts_afresh_after_an_idle_spell_longer_than_the_window() -> None:
    w = OutcomeWindow(10, alpha=0.5)
    w.add(0.0, failure=True, slow=False)
    w.roll(10)  # the failing second is still in the window
    assert w.ewma == 0.5
    w.add(10.0, failure=True, slow=False)
    w.roll(21)  # ... and now every second it knew is out of it
    assert w.ewma == 0.0 and w.total_calls == 0
    one = OutcomeWindow(1, alpha=1.0)  # a one-second window still blends each second
    one.add(0.0, failure=True, slow=False)
    one.roll(1)
    assert one.ewma == 1.0


def test_lifetime_counts_every_call_ever_recorded() -> None:
    w = OutcomeWindow(2)
    for t in range(10):
        w.add(float(t), failure=t % 2 == 0, slow=False)
    assert w.lifetime() == (10, 5)


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=200))
def test_totals_always_equal_a_brute_force_count_of_the_window(
    steps: list[tuple[int, bool]],
) -> None:
    w = OutcomeWindow(5)
    now = 0
    events: list[tuple[int, bool]] = []
    for gap, failure in steps:
        now += gap
        w.add(now + 0.5, failure=failure, slow=False)
        events.append((now, failure))
        recent = [f for t, f in events if t > now - 5]
        assert w.total_calls == len(recent)
        assert w.total_failures == sum(recent)
