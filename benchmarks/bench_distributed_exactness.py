"""Fleet exactness, repeated: how many requests a 4-worker uvicorn fleet admits.

Run: ``python benchmarks/bench_distributed_exactness.py`` (10 runs, about a
minute; ``--runs N``, ``--cold`` for a fleet hit by its first requests,
``--json`` for machine-readable output).

Each run starts a real uvicorn with 4 workers against a throwaway
``redis-server`` (127.0.0.1 only), with one distributed ``100/h`` rule of
each algorithm and a request under three rules (tightest 30/h), and sends
300 requests to each of the four paths over 64 concurrent connections
(``tests/e2e/exactness.py``: the scenario the end-to-end test asserts).  By
default every worker is warmed first with requests to an unlimited path;
``--cold`` fires at a freshly started fleet.  The report is the distribution
of admitted counts per algorithm over the runs, next to the limit: token
bucket and GCRA must admit exactly the limit, the sliding window at most
the limit within 9/10 of its period (so exactly the limit in a burst this
short), and the 3-rule request its tightest rule's limit.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.exactness import (  # noqa: E402
    LIMIT,
    PATHS,
    WORKERS,
    config,
    failed_calls,
    fleet,
    port_of,
    run_burst,
)
from tests.utils.redis_server import RedisServer  # noqa: E402


def one_run(redis: RedisServer, *, cold: bool) -> dict[str, Any]:
    import redis as redis_py

    client = redis_py.Redis(port=redis.port, socket_timeout=5)
    client.flushall()
    client.close()
    with fleet(config(redis.url)) as server:
        if not cold:
            run_burst(port_of(server), 20, paths=["/ready/"], connections=16)
        run = run_burst(port_of(server))
        fallbacks = server.output().count("falling back to local limits")
        failed = failed_calls(server)
    errors = sum(sum(c.values()) for c in run.other.values())
    return {
        **run.by_algorithm(),
        "errors": errors,
        "fallbacks": fallbacks,
        "failed_calls": failed,
        "seconds": run.seconds,
    }


def run(quick: bool = False, runs: int = 10, cold: bool = False) -> dict[str, Any]:
    redis = RedisServer().start()
    try:
        results = [one_run(redis, cold=cold) for _ in range(3 if quick else runs)]
    finally:
        redis.stop()
    limits = dict(PATHS.values())
    # Every admission past the limit should be a request whose Redis call failed.
    explained = sum(
        all(r[name] <= limit + r["failed_calls"] for name, limit in limits.items()) for r in results
    )
    summary: dict[str, Any] = {}
    for name, limit in limits.items():
        counts = [r[name] for r in results]
        summary[name] = {
            "limit": limit,
            "distribution": dict(sorted(collections.Counter(counts).items())),
            "exact_runs": sum(c == limit for c in counts),
            "min": min(counts),
            "max": max(counts),
            "median": statistics.median(counts),
        }
    return {
        "runs": len(results),
        "workers": WORKERS,
        "connections": 64,
        "cold": cold,
        "limit": LIMIT,
        "algorithms": summary,
        "errors": sum(r["errors"] for r in results),
        "fallback_transitions": sum(r["fallbacks"] for r in results),
        "failed_calls_per_run": [r["failed_calls"] for r in results],
        "runs_within_limit_plus_failed_calls": explained,
        "burst_seconds_median": statistics.median(r["seconds"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cold", action="store_true", help="no warm-up before the burst")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(runs=args.runs, cold=args.cold)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    kind = "cold" if args.cold else "warm"
    print(
        f"{result['runs']} runs, {kind} fleet of {result['workers']} uvicorn workers, "
        f"{result['connections']} connections; median burst {result['burst_seconds_median']:.1f} s"
    )
    print(f"{'rule':<16} {'limit':>5} {'exact':>7} {'min':>5} {'max':>5}  distribution")
    for name, s in result["algorithms"].items():
        dist = ", ".join(f"{k}: {v}x" for k, v in s["distribution"].items())
        print(
            f"{name:<16} {s['limit']:>5} {s['exact_runs']:>3}/{result['runs']:<3} "
            f"{s['min']:>5} {s['max']:>5}  {dist}"
        )
    print(
        f"non-200/429 answers: {result['errors']}; "
        f"fallback transitions logged: {result['fallback_transitions']}"
    )
    print(
        f"Redis calls failed (decided locally) per run: {result['failed_calls_per_run']}; "
        f"runs where every rule admitted at most limit + failed calls: "
        f"{result['runs_within_limit_plus_failed_calls']}/{result['runs']}"
    )


if __name__ == "__main__":
    main()
