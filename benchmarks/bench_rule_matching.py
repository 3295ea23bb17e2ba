"""Rule matching cost against the number of prefix rules: 10 rules and 10,000.

Each figure is µs per request for the limit engine to find the rules that
match a request and build its decision, with every rule on a path the
request does not take (the engine returns "no limits": what is timed is the
matching), and, for reference, a plain scan that asks every rule's matcher
(what matching cost before rules were indexed by path prefix).  Best of
several repeats.

Run: ``python benchmarks/bench_rule_matching.py`` (``--quick`` for fewer
repeats); ``run(quick)`` returns the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

COUNTS = (10, 10_000)
PATH = "/api/orders/42"


def _setup_django() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(INSTALLED_APPS=[], RESILIENCE={"FLEET": {"ENABLED": False}})
        django.setup()


def _per_call_us(fn: Any, repeats: int) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeats, number=number)) / number * 1e6


def run(quick: bool = False) -> dict[str, Any]:
    _setup_django()
    from django.test import RequestFactory

    from resilience_django.limiting.engine import NO_LIMITS, LimitEngine
    from resilience_django.limiting.local import LocalLimiter
    from resilience_django.limiting.rules import parse_limit_rules

    repeats = 3 if quick else 7
    request = RequestFactory().get(PATH)
    figures: dict[str, Any] = {}
    for count in COUNTS:
        specs = [
            {"name": f"tenant-{i}", "path": f"/tenant/{i}/", "methods": ["POST"], "rate": "1/m"}
            for i in range(count)
        ]
        rules, errors = parse_limit_rules(specs)
        assert not errors
        engine = LimitEngine(rules, LocalLimiter(max_keys=1000))
        assert engine.decide("GET", PATH, request) is NO_LIMITS
        matchers = [r.matcher for r in rules]

        def scan(matchers: Any = matchers) -> bool:
            return any(m.matches("GET", PATH) for m in matchers)

        figures[f"engine_{count}_us"] = _per_call_us(
            lambda engine=engine: engine.decide("GET", PATH, request), repeats
        )
        figures[f"scan_{count}_us"] = _per_call_us(scan, repeats)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    figures = run(parser.parse_args().quick)
    print(f"{'rules':>8}  {'engine (indexed)':>18}  {'plain scan':>12}")
    for count in COUNTS:
        engine_us = figures[f"engine_{count}_us"]
        scan_us = figures[f"scan_{count}_us"]
        print(f"{count:>8,}  {engine_us:>15.2f} µs  {scan_us:>9.2f} µs")


if __name__ == "__main__":
    main()
