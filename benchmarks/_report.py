"""Render the figures ``run_all.py`` gathered as ``docs/benchmarks.md``, targets judged.

Each benchmark has a section renderer (tables of its figures and ratios) and a
target function returning rows ``(issue, target, measured, met)``, where
``met`` is ``True``, ``False`` or ``None`` (no number in the issue to judge).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Target = tuple[str, str, str, bool | None]
ALGORITHMS = ("sliding_window", "token_bucket", "gcra")


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows
    ]
    return "\n".join(lines)


# --- local limits (#3) ----------------------------------------------------------------


def _local(r: dict[str, Any]) -> str:
    us = r["us_per_decision"]
    ratios = r["ratio_fastest_limits_over_ours"]
    rows = []
    for base in [k[: -len("_hot_key")] for k in us if k.endswith("_hot_key")]:
        hot, many = us.get(f"{base}_hot_key"), us.get(f"{base}_100k_keys")
        rows.append(
            [
                f"`{base}`",
                hot,
                many,
                _ratio(ratios.get(f"{base}_hot_key")),
                _ratio(ratios.get(f"{base}_100k_keys")),
            ]
        )
    out = [
        "µs per decision, CPU time, best of repeats. `ours_decide` is the full decision "
        "the middleware makes (remaining and reset for the headers), `ours_adecide` the same "
        "on an event loop, `ours_admit` yes/no only; all pure Python, each taking its shard's "
        "lock. Ratio: the fastest `limits` MemoryStorage strategy's time over ours "
        "(higher is better).",
        "",
        _table(
            ["contender", "hot key µs", "100k keys µs", "x faster (hot)", "x faster (100k)"], rows
        ),
        "",
        "Exact under key churn: 1,000 clients x 5 round-robin requests at 3/m "
        "(exactly 3,000 may pass):",
        "",
        _table(["contender", "admitted"], [[f"`{k}`", v] for k, v in r["churn"].items()]),
        "",
        "Memory per stored key (tracemalloc, IPv4 keys, key string included):",
        "",
        _table(["algorithm", "bytes per key"], [[k, v] for k, v in r["bytes_per_key"].items()]),
    ]
    return "\n".join(out)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _local_targets(r: dict[str, Any]) -> list[Target]:
    us = r["us_per_decision"]
    ratios = r["ratio_fastest_limits_over_ours"]
    rows: list[Target] = []
    for label, words in (("hot_key", "hot key"), ("100k_keys", "100,000 keys")):
        keys = [f"ours_decide_{a}_{label}" for a in ALGORITHMS if f"ours_decide_{a}_{label}" in us]
        worst = max(keys, key=lambda k: us[k])
        slowest = min(keys, key=lambda k: ratios[k])
        # #15 dropped the C kernels and set these for pure Python (#3 asked < 1 µs, 3x).
        rows.append(
            (
                "#15",
                f"one-rule decision ≤ 2.5 µs ({words}, each algorithm)",
                f"slowest {us[worst]:.2f} µs ({_algo(worst)})",
                us[worst] <= 2.5,
            )
        )
        rows.append(
            (
                "#15",
                f"≥ 1.5x faster than the fastest `limits` memory strategy ({words})",
                f"least {ratios[slowest]:.2f}x ({_algo(slowest)})",
                ratios[slowest] >= 1.5,
            )
        )
    like = r.get("ratio_limits_with_stats_over_ours")
    if like:
        for label, words in (("hot_key", "hot key"), ("100k_keys", "100,000 keys")):
            keys = [k for k in like if k.startswith("ours_decide_") and k.endswith(label)]
            slowest = min(keys, key=lambda k: like[k])
            rows.append(
                (
                    "#3 (like for like)",
                    "full decision ≥ 3x faster than `limits` `hit` + `get_window_stats` "
                    f"(the pair that gives the same answer; {words})",
                    f"least {like[slowest]:.2f}x ({_algo(slowest)})",
                    like[slowest] >= 3.0,
                )
            )
    ours = {k: v for k, v in r["churn"].items() if k.startswith("ours_")}
    rows.append(
        (
            "#3",
            "exact under key churn (3,000 of 5,000 admitted)",
            ", ".join(f"{_algo(k)} {v}" for k, v in ours.items()),
            all(v == 3000 for v in ours.values()),
        )
    )
    return rows


def _algo(key: str) -> str:
    return next((a for a in ALGORITHMS if a in key), key)


# --- Redis limits (#4) ----------------------------------------------------------------


def _redis(r: dict[str, Any]) -> str:
    rows = [
        [
            name,
            r["decisions_per_second"][name],
            us,
            r["ratio_to_get"][name],
            r["best_us_per_decision"][name],
            r["best_ratio_to_get"][name],
            r["round_trips_per_decision"][name],
            r["redis_commands_per_decision"][name],
        ]
        for name, us in r["us_per_decision"].items()
    ]
    for row in rows:
        row[1] = f"{row[1]:,.0f}"
    return "\n".join(
        [
            f"{r['rounds']} interleaved rounds x {r['iterations']} decisions against a throwaway "
            "redis-server on 127.0.0.1; median of rounds, and the best (least disturbed) round. "
            "Trips: commands the client sent per decision (MONITOR); commands: what Redis "
            "executed, a script's inner calls included (INFO commandstats). MONITOR also sees "
            "background commands (the hybrid limiter's heartbeat), so the round-trip targets "
            "allow up to 1.05 per decision.",
            "",
            _table(
                [
                    "contender",
                    "decisions/s",
                    "µs",
                    "x GET",
                    "best µs",
                    "best x GET",
                    "trips",
                    "commands",
                ],
                rows,
            ),
        ]
    )


def _redis_targets(r: dict[str, Any]) -> list[Target]:
    rows: list[Target] = []
    # Sync rows against a redis-py GET; "async: " rows (adecide on the event loop)
    # against a redis.asyncio GET from the same loop.
    for prefix, get in (("", "a redis-py GET"), ("async: ", "a redis.asyncio GET")):
        for limiter in ("HybridLimiter", "RedisLimiter"):
            for n in ("1 rule", "3 rules"):
                name = f"{prefix}ours {limiter}, {n}"
                if name not in r["us_per_decision"]:
                    continue
                label = f"{prefix}{limiter}, {n}"
                trips = r["round_trips_per_decision"][name]
                rows.append(
                    (
                        "#4",
                        f"one round trip per decision ({label})",
                        f"{trips:.2f}",
                        round(trips, 2) <= 1.05,
                    )
                )
                ratio, best = r["ratio_to_get"][name], r["best_ratio_to_get"][name]
                # Issue #13: a decision on the public-API path, at most 1.3x a GET.
                rows.append(
                    (
                        "#13",
                        f"≤ 1.3x {get} ({label})",
                        f"{ratio:.2f}x (best round {best:.2f}x)",
                        ratio <= 1.3,
                    )
                )
    return rows


# --- breakers (#5) --------------------------------------------------------------------


def _breakers(r: dict[str, Any]) -> str:
    ours = r["sync_us"]["resilience_django"]
    rows = [
        [
            f"`{name}`",
            us,
            f"{us / ours:.2f}x" if ours > 0 else "-",
            r["async_us"].get(name),
            r["contention_2_threads"].get(name),
        ]
        for name, us in r["sync_us"].items()
    ]
    text = [
        f"µs added per call around a no-op (decorated minus bare), best of repeats of "
        f"{r['calls_per_measure']:,} calls; two threads: throughput with two threads sharing "
        "one breaker over one thread's (1.00 = no loss).",
        "",
        _table(["breaker", "sync µs/call", "x ours", "async µs/call", "2 threads / 1"], rows),
        "",
        f"Ours: {r['ours_uncounted_calls']} of {r['ours_calls_made_threaded']:,} threaded calls "
        "went uncounted.",
    ]
    if r.get("skipped"):
        text.append(f"Not installed, skipped: {', '.join(r['skipped'])}.")
    return "\n".join(text)


def _breaker_targets(r: dict[str, Any]) -> list[Target]:
    sync = r["sync_us"]["resilience_django"]
    gap = r["async_minus_sync_us"]
    threads = r["contention_2_threads"].get("resilience_django")
    return [
        ("#5", "< 0.5 µs per sync call", f"{sync:.3f} µs", sync < 0.5),
        (
            "#5",
            "no throughput loss, two threads sharing a breaker (≥ 0.95 allowing for noise)",
            _f(threads),
            None if threads is None else threads >= 0.95,
        ),
        ("#5", "async path within 0.3 µs of the sync one", f"{gap:+.3f} µs", gap <= 0.3),
        (
            "#5",
            "no call uncounted under two threads",
            str(r["ours_uncounted_calls"]),
            r["ours_uncounted_calls"] == 0,
        ),
    ]


# --- shedding (#8) --------------------------------------------------------------------


def _shedding(r: dict[str, Any]) -> str:
    cols = [
        "offered_rps",
        "goodput_rps",
        "ok",
        "shed_503",
        "timeouts",
        "errors",
        "not_sent",
        "ok_p50_ms",
        "ok_p99_ms",
        "shed_p99_ms",
        "settled_limit",
    ]
    rows = [[mode, *(r[mode].get(c) for c in cols)] for mode in ("off", "on", "adaptive")]
    return "\n".join(
        [
            "A real uvicorn with a real capacity (10 requests at once x 50 ms = 200 req/s) offered "
            "twice that by an open-loop generator with a 1 s client timeout; `off`: no shedding, "
            "`on`: a Bulkhead of 10 with a queue of 10 and 100 ms max wait, `adaptive`: the limit "
            "found from latency alone (capacity 10).",
            "",
            _table(["mode", *cols], rows),
            "",
            f"Goodput on / off: {_f(r['ratios']['goodput_on_over_off'])}x; admitted p99 off / on: "
            f"{_f(r['ratios']['p99_off_over_on'])}x.",
        ]
    )


def _shedding_targets(r: dict[str, Any]) -> list[Target]:
    good, p99 = r["ratios"]["goodput_on_over_off"], r["ratios"]["p99_off_over_on"]
    return [
        (
            "#8",
            "shedding on raises goodput under 2x overload (direction; no number in the issue)",
            f"{_f(good)}x",
            good > 1.0,
        ),
        (
            "#8",
            "shedding on lowers admitted p99 (direction; no number in the issue)",
            f"{_f(p99)}x",
            None if p99 is None else p99 > 1.0,
        ),
        _settled_target(r.get("adaptive", {})),
    ]


def _settled_target(adaptive: dict[str, Any]) -> Target:
    settled, capacity = adaptive.get("settled_limit"), adaptive.get("capacity")
    ratio = None if not settled or not capacity else settled / capacity
    return (
        "#8",
        "adaptive limit settles near the real capacity (within 1.25x, not below it)",
        "-" if ratio is None else f"{settled} for a capacity of {capacity} ({ratio:.2f}x)",
        None if ratio is None else 1.0 <= ratio <= 1.25,
    )


# --- middleware overhead in process (#15) ------------------------------------------------


def _middleware(r: dict[str, Any]) -> str:
    rows = [
        [
            f"`{v}`",
            f["us_median"],
            f["us_best"],
            f"{f['added_us']:+.1f}",
            f"{f['added_us_best']:+.1f}",
            f"{f['ratio_to_plain']:.3f}",
        ]
        for v, f in r["variants"].items()
    ]
    return "\n".join(
        [
            "What the middleware adds to a request with a deadline (`DEADLINE` `ROUTES`), one "
            "local rule (key ip, never rejects), `RateLimit` headers and metrics on, in one "
            "process without a server: each handler called directly, "
            f"{r['rounds']} interleaved blocks of {r['requests_per_block']} requests, CPU time "
            "per request; `added`: the median over blocks of the variant minus the plain handler "
            "next to it. `asgi_*`: Django's `ASGIHandler` with its two per-request thread hops "
            "made inline (the same for every variant; the stock handler's new thread per request "
            "varies by hundreds of µs and would hide the difference), measured once more as "
            "`django_asgi_*` (a third of the requests per block); `wsgi_*`: `WSGIHandler` and a "
            "sync view.",
            "",
            _table(
                ["variant", "CPU µs/req (median)", "best", "µs added", "added (best)", "x plain"],
                rows,
            ),
        ]
    )


def _middleware_targets(r: dict[str, Any]) -> list[Target]:
    labels = {
        "asgi_ours": "`ResilienceMiddleware`, async (ASGI)",
        "asgi_ours_wrapper": "`ResilienceASGIMiddleware` + `ResilienceMiddleware`",
        "wsgi_ours": "`ResilienceMiddleware`, sync (WSGI)",
    }
    return [
        (
            "#15",
            f"≤ {r['target_us']:.0f} µs added per request: {labels.get(name, name)}",
            f"{t['added_us']:+.1f} µs",
            t["met"],
        )
        for name, t in r["targets"].items()
    ]


# --- end to end (#3, #4) --------------------------------------------------------------


def _e2e(r: dict[str, Any]) -> str:
    rows = [
        [
            f"`{v}`",
            f"{f['rps']:,.0f}",
            f"{f['ratio_to_plain']:.3f}",
            f["p50_ms"],
            f["p99_ms"],
            f"{f['cpu_us_per_request']:,.0f}",
            f"{f['cpu_ratio_to_plain']:.3f}",
            f["errors"],
        ]
        for v, f in r["variants"].items()
    ]
    return "\n".join(
        [
            f"A hello-world async Django view under uvicorn (one worker per variant"
            f"{', pinned to core 0' if r['pinned'] else ''}); {r['load_generator']} with "
            f"{r['connections']} keep-alive connections{' on core 1' if r['pinned'] else ''}; "
            f"{r['rounds']} interleaved rounds x {r['seconds_per_run']} s; medians. "
            "`x plain`: the median over rounds of the variant's figure relative to the plain run "
            "of the same round (1.000 = costs nothing). CPU µs/req: the server's own CPU time per "
            "request (all threads, from /proc), which the other users of a shared machine do not "
            "inflate the way they do wall-clock requests per second.",
            "",
            "Variants: `plain` Django with no middleware at all (the strictest baseline); "
            "`ours_local` ResilienceMiddleware with one matching local rule (key ip, never "
            "rejects) and a DEADLINE ROUTES budget; `ours_local_asgi` the same behind "
            'ResilienceASGIMiddleware; `ratelimit_locmem` `@ratelimit(key="ip")` on LocMemCache; '
            "`ours_redis` one distributed rule (BACKEND redis) and `ratelimit_redis` "
            "django-ratelimit on django-redis, both against the same throwaway redis-server.",
            "",
            _table(
                [
                    "variant",
                    "req/s",
                    "x plain",
                    "p50 ms",
                    "p99 ms",
                    "CPU µs/req",
                    "CPU x plain",
                    "errors",
                ],
                rows,
            ),
            *_inproc(r.get("inproc")),
        ]
    )


def _inproc(r: dict[str, Any] | None) -> list[str]:
    if not r:
        return []
    rows = [
        [
            f"`{v}`",
            f["cpu_us_median"],
            f["cpu_us_best"],
            f"{f['ratio_to_plain']:.3f}",
            f"{f['added_us']:+.1f}",
        ]
        for v, f in r["variants"].items()
    ]
    return [
        "",
        "The local variants once more, in one process through ASGI without HTTP "
        f"(`benchmarks/_e2e_apps/inproc.py`): {r['rounds']} interleaved blocks of "
        f"{r['requests_per_block']} requests, CPU time per request. No uvicorn and no socket, "
        "so Django's share is smaller and ours larger than under a real server: a stricter "
        "ratio, and the steadiest one a shared machine allows.",
        "",
        _table(["variant", "CPU µs/req (median)", "best", "x plain", "µs added"], rows),
    ]


def _e2e_targets(r: dict[str, Any]) -> list[Target]:
    rows: list[Target] = []
    for name, t in r["targets"].items():
        if "min_ratio" in t:
            rows.append(
                (
                    t["issue"],
                    f"`{name}` keeps ≥ {t['min_ratio']:.0%} of plain Django's req/s",
                    f"{t['ratio']:.1%} (CPU: {t['cpu_ratio']:.1%})",
                    t["met"],
                )
            )
        else:
            ours, peer = name.split("_ahead_of_")
            rows.append(
                (
                    t["issue"],
                    f"`{ours}` ahead of `{peer}` (median per-round ratio > 1)",
                    f"{t['ratio']:.3f}x req/s (CPU: {t['cpu_ratio']:.3f}x)",
                    t["met"],
                )
            )
    inproc = (r.get("inproc") or {}).get("variants", {})
    if "ours_local" in inproc:
        ratio = inproc["ours_local"]["ratio_to_plain"]
        rows.append(
            (
                "#3",
                "`ours_local` keeps ≥ 95% of plain Django, in process without HTTP (stricter)",
                f"{ratio:.1%} ({inproc['ours_local']['added_us']:+.0f} µs)",
                ratio >= 0.95,
            )
        )
        ahead = inproc["ours_local"]["added_us"] < inproc["ratelimit_locmem"]["added_us"]
        rows.append(
            (
                "#3",
                "`ours_local` cheaper than `ratelimit_locmem`, in process",
                f"{inproc['ours_local']['added_us']:+.0f} vs "
                f"{inproc['ratelimit_locmem']['added_us']:+.0f} µs",
                ahead,
            )
        )
    return rows


SECTIONS: dict[
    str, tuple[str, str, Callable[[dict[str, Any]], str], Callable[[dict[str, Any]], list[Target]]]
] = {
    "local_limits": ("Local limit decisions", "bench_local_limits.py", _local, _local_targets),
    "redis_limits": ("Redis limit decisions", "bench_redis_limits.py", _redis, _redis_targets),
    "breakers": ("Circuit breakers", "bench_breakers.py", _breakers, _breaker_targets),
    "shedding": (
        "Load shedding under 2x overload",
        "bench_shedding.py",
        _shedding,
        _shedding_targets,
    ),
    "middleware": (
        "Middleware overhead in process",
        "bench_middleware_overhead.py",
        _middleware,
        _middleware_targets,
    ),
    "e2e": ("End to end under uvicorn", "bench_e2e.py", _e2e, _e2e_targets),
}


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "n/a"}[met]


def render(
    command: str,
    quick: bool,
    info: dict[str, Any],
    results: dict[str, dict[str, Any]],
    skipped: list[str],
) -> str:
    """The whole ``docs/benchmarks.md``."""
    targets: list[tuple[str, Target]] = []
    sections: list[str] = []
    for name, entry in results.items():
        title, script, section, judge = SECTIONS[name]
        head = (
            f"## {title}\n\n`python benchmarks/{script}` — {entry['seconds']} s, "
            f"load average before: {', '.join(map(str, entry['loadavg_before']))}\n"
        )
        if "error" in entry:
            sections.append(head + "\n**Failed:**\n\n```\n" + "\n".join(entry["error"]) + "\n```")
            targets.append((title, ("-", "the benchmark ran to the end", "failed", False)))
            continue
        result = entry["result"]
        try:
            body = section(result)
            targets += [(title, t) for t in judge(result)]
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            body = f"(could not render: {exc!r})\n\n```json\n{json.dumps(result, indent=1)}\n```"
        sections.append(head + "\n" + body)
    met = sum(1 for _, t in targets if t[3] is True)
    missed = [t for _, t in targets if t[3] is False]
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    lines = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/run_all.py`; do not edit by hand. Every benchmark runs our "
        "code and its peers side by side in one run on one machine, so the ratios are the "
        "figures to trust; absolute figures move with the machine and its load.",
        "",
        f"- Command: `{command}`" + (" (quick: shorter runs, noisier figures)" if quick else ""),
        f"- Run: {info['started']}, {info['minutes']} min, commit {info['commit']}",
        f"- Machine: {info['cpu']}, {info['cores']} cores, {info['os']}",
        "- Load average (1, 5, 15 min) at start: "
        + ", ".join(map(str, info["loadavg_start"]))
        + "; at end: "
        + ", ".join(map(str, info["loadavg_end"]))
        + " — a shared machine: other users' work shows up as noise",
        f"- Python: {info['python']}; {info['redis_server']}; {info['wrk']}",
        f"- Packages: {packages}",
    ]
    if skipped:
        lines.append(f"- Not run this time: {', '.join(skipped)}")
    lines += [
        "",
        "## Targets",
        "",
        f"{met} of {len(targets)} targets met"
        + (f"; missed: {len(missed)}." if missed else ".")
        + " Targets come from the issues named; n/a: the issue gives no number to judge.",
        "",
        _table(
            ["issue", "benchmark", "target", "measured", "verdict"],
            [[t[0], b, t[1], t[2], _verdict(t[3])] for b, t in targets],
        ),
        "",
        *[s + "\n" for s in sections],
    ]
    return "\n".join(lines).rstrip() + "\n"
