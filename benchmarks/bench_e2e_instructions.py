"""End to end, counted in machine instructions: what a request costs a real uvicorn.

Run: ``python benchmarks/bench_e2e_instructions.py`` (about 2 minutes; needs
valgrind).  ``--standard`` serves with httptools and uvloop (``uvicorn[standard]``,
when both are installed) instead of h11 and asyncio.

``bench_e2e.py`` measures requests per second and CPU time, which a shared
2-core machine moves by several percent from run to run.  This benchmark runs
the same uvicorn and the same apps (``_e2e_apps``) under valgrind's callgrind,
which counts the instructions the server executes, in every thread: the count
does not move with other users' load, so a change of 1 % shows.  Each variant:
one uvicorn, 200 requests to warm up, then counting on for ``--requests``
requests sent over 10 keep-alive connections, counting off; the figure is
instructions per request, and its ratio to plain Django is the fraction of
plain Django's throughput a CPU-bound server would keep.

The apps run with ``BENCH_E2E_QUIET=1``: no live-reload poll and no fleet
publisher.  Those threads work per second, not per request, and under
valgrind a second of work is spread over about 50 times fewer requests, so
they would be charged to requests many times over.  Instructions are not
cycles: cache misses and the thread hand-offs of Django's ``ASGIHandler`` do
not show, which is why ``bench_e2e.py`` stays the benchmark of record.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_e2e import ROOT, TARGETS, _free_port, _Process, _wait_port

VARIANTS = (
    "plain",
    "ours_empty",
    "ours_local_noheaders",
    "ours_local",
    "ours_local_asgi",
    "ratelimit_locmem",
)
CONNECTIONS = 10
WARM_UP = 200


def _drive(port: int, requests: int) -> None:
    """``requests`` GETs over CONNECTIONS keep-alive connections; every answer a 200."""
    failures: list[str] = []

    def one_connection(count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            for _ in range(count):
                conn.request("GET", "/hello/")
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(str(response.status))
        except OSError as exc:
            failures.append(repr(exc))
        finally:
            conn.close()

    threads = [
        threading.Thread(target=one_connection, args=(requests // CONNECTIONS,))
        for _ in range(CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")


def _summary(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary line in {path}")


def _count(variant: str, requests: int, standard: bool, tmp: Path) -> float:
    """Instructions per request of ``variant`` under a real uvicorn."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks._e2e_apps.settings",
        "BENCH_E2E_VARIANT": variant,
        "BENCH_E2E_QUIET": "1",
        "BENCH_E2E_SQLITE": str(tmp / "db.sqlite3"),
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    port = _free_port()
    out = tmp / f"callgrind.{variant}"
    argv = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p",
        sys.executable, "-m", "uvicorn", "benchmarks._e2e_apps.asgi:application",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--no-access-log", "--lifespan", "off",
        "--http", "httptools" if standard else "h11", "--loop", "uvloop" if standard else "asyncio",
    ]  # fmt: skip
    server = _Process(argv, env, tmp / f"{variant}.log")
    pid = str(server.proc.pid)
    try:
        _wait_port(port, server.proc, f"uvicorn under valgrind ({variant})", timeout=180)
        _drive(port, WARM_UP)
        subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
        _drive(port, requests)
        # A dump holds what was counted since counting went on: the measured requests.
        subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
    finally:
        server.stop()
    dumps = sorted(tmp.glob(f"callgrind.{variant}.{pid}.*"))
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump for {variant}")
    return _summary(dumps[0]) / requests


def run(variants: tuple[str, ...], requests: int, standard: bool) -> dict[str, Any]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    if standard:
        try:
            import httptools  # noqa: F401
            import uvloop  # noqa: F401
        except ImportError as exc:
            message = "--standard needs httptools and uvloop (pip install uvicorn[standard])"
            raise SystemExit(message) from exc
    with tempfile.TemporaryDirectory(prefix="resilience-bench-cg-") as tmp_name:
        counts = {v: _count(v, requests, standard, Path(tmp_name)) for v in variants}
    plain = counts.get("plain")
    rows = {
        v: {
            "instructions_per_request": round(n),
            "added": round(n - plain) if plain else None,
            "ratio_to_plain": round(plain / n, 3) if plain else None,
        }
        for v, n in counts.items()
    }
    targets = {
        v: {"min_ratio": TARGETS[v][0], "ratio": rows[v]["ratio_to_plain"], "issue": TARGETS[v][1]}
        for v in rows
        if v in TARGETS and plain
    }
    return {"variants": rows, "targets": targets, "requests": requests, "standard": standard}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--standard", action="store_true", help="httptools + uvloop")
    args = parser.parse_args()
    started = time.perf_counter()
    r = run(tuple(args.variants.split(",")), args.requests, args.standard)
    server = "httptools + uvloop" if r["standard"] else "h11 + asyncio"
    print(
        f"instructions per request under uvicorn ({server}), callgrind, all threads; "
        f"{r['requests']} requests over {CONNECTIONS} connections after {WARM_UP} to warm up"
    )
    print(f"{'variant':20} {'instr/req':>10} {'added':>9} {'x plain':>7}")
    for variant, f in r["variants"].items():
        added = "" if f["added"] is None else f"{f['added']:+,}"
        ratio = "" if f["ratio_to_plain"] is None else f"{f['ratio_to_plain']:.3f}"
        print(f"{variant:20} {f['instructions_per_request']:>10,} {added:>9} {ratio:>7}")
    for name, t in r["targets"].items():
        verdict = "met" if t["ratio"] >= t["min_ratio"] else "MISSED"
        print(f"target {t['issue']} {name}: {t['ratio']:.3f} vs >= {t['min_ratio']}: {verdict}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
