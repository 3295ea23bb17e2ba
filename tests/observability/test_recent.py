"""The per-second counts every process publishes for the dashboard's last minute."""

from __future__ import annotations

from resilience_django.clock import ManualClock
from resilience_django.observability.recent import RecentCounts, window_counts


def test_counts_keep_the_total_and_only_the_last_minute_per_second() -> None:
    clock = ManualClock(1000.2)
    counts = RecentCounts(clock=clock)
    counts.add(("a", "rate_limited"))
    clock.advance(30)
    counts.add(("a", "rate_limited"))
    counts.add(("a", "rate_limited"))
    clock.advance(40)  # the first one is now 70 s old
    (report,) = counts.report()
    assert report == {"labels": ["a", "rate_limited"], "total": 3, "recent": [[1030, 2]]}


def test_label_sets_past_the_bound_are_not_tallied() -> None:
    counts = RecentCounts(max_keys=2, clock=ManualClock(5.0))
    for name in ("a", "b", "c"):
        counts.add((name,))
    assert sorted(r["labels"][0] for r in counts.report()) == ["a", "b"]


def test_window_counts_sum_processes_and_skip_malformed_reports() -> None:
    one = [{"labels": ["r", "x"], "total": 10, "recent": [[900, 5], [990, 2]]}]
    two = [{"labels": ["r", "x"], "total": 4, "recent": [[999, 4]]}, {"labels": None}]
    assert window_counts([one, two, None, "junk", [42]], now=1000.0) == {("r", "x"): (6, 14)}


def test_a_wall_clock_stepped_back_keeps_each_label_set_at_sixty_buckets() -> None:
    clock = ManualClock(10_000.0)
    counts = RecentCounts(clock=clock)
    counts.add(("a",))
    clock.now -= 3600  # NTP steps the wall clock back an hour
    for _ in range(600):
        counts.add(("a",))
        clock.advance(1)
    buckets = counts._entries[("a",)].buckets
    assert len(buckets) <= 60
    (report,) = counts.report()
    assert report["total"] == 601
    # One a second, from 6400 to 6999: the last minute by the clock now (7000) holds 59.
    assert sum(n for _, n in report["recent"]) == 59
