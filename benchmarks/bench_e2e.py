"""End to end: a real uvicorn serving a hello-world async Django view, ours against the peers.

Run: ``python benchmarks/bench_e2e.py`` (about 2 minutes; ``--quick`` about 50 s).

One uvicorn worker per variant, all started up front and pinned to core 0
(``taskset``); the load generator (``wrk``, one thread, keep-alive
connections) and a throwaway ``redis-server`` share core 1, so the server's
core does nothing but serve.  Traffic goes to 127.0.0.1 only; every run is
bounded in time (``wrk -d``) and connections.  The variants
(``benchmarks/_e2e_apps/settings.py``):

* ``plain``: Django, no middleware at all (the strictest baseline);
* ``ours_local``: ``ResilienceMiddleware``, one matching local rule (key ip,
  a rate that never rejects) and a ``DEADLINE["ROUTES"]`` budget for the path;
* ``ours_local_asgi``: the same behind ``ResilienceASGIMiddleware``;
* ``ratelimit_locmem``: ``@ratelimit(key="ip")`` on the view, LocMemCache;
* ``ours_redis``: one distributed rule, ``BACKEND: "redis"``;
* ``ratelimit_redis``: ``@ratelimit`` on django-redis, the same Redis.

They run interleaved (A B C D E F, A B C D E F, ...) so a burst of load from
other users of the machine hits every variant alike; we report the median
requests per second of the rounds, its ratio to plain Django (the median of
the per-round ratios, each against the plain run next to it), and the median
p50/p99 latency.  The server's own CPU time per request (from /proc) is
reported too, and the local variants are measured once more in one process
through ASGI without HTTP (``_e2e_apps/inproc.py``), the steadiest A/B a
shared machine allows.  If ``wrk`` is missing, a small asyncio keep-alive
HTTP/1.1 generator stands in (it is far faster than the server it drives, but
slower than wrk; the report says which ran).

``--variants plain,ours_empty,ours_deadline_only,...`` runs a subset or the
diagnostic variants in ``_e2e_apps/settings.py`` (what each part costs);
``--rounds N`` sets the number of rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = (
    "plain",
    "ours_local",
    "ours_local_asgi",
    "ratelimit_locmem",
    "ours_redis",
    "ratelimit_redis",
)
PATH = "/hello/"
CONNECTIONS = 10
SERVER_CORE, LOAD_CORE = 0, 1
TARGETS = {
    # variant: (minimum ratio to plain Django, issue)
    "ours_local": (0.95, "#3, #15"),
    "ours_local_asgi": (0.95, "#3, #15"),
    "ours_redis": (0.85, "#4"),
}

WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":%d,"non_2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50.0), latency:percentile(99.0)))
end
"""


def _pinned(core: int, argv: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    if taskset and (os.cpu_count() or 1) > core:
        return [taskset, "-c", str(core), *argv]
    return argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout}s")


class _Process:
    """A child in its own session, stopped by PID (never by name)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def _start_redis(tmp: Path) -> tuple[_Process, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; the Redis variants need one")
    port = _free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(tmp)]  # fmt: skip
    proc = _Process(_pinned(LOAD_CORE, argv), dict(os.environ), tmp / "redis.log")
    _wait_port(port, proc.proc, "redis-server")
    return proc, f"redis://127.0.0.1:{port}/0"


def _start_servers(
    tmp: Path, redis_url: str, variants: tuple[str, ...]
) -> dict[str, tuple[_Process, int]]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks._e2e_apps.settings",
        "BENCH_E2E_SQLITE": str(tmp / "db.sqlite3"),
        "BENCH_E2E_REDIS_URL": redis_url,
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    servers: dict[str, tuple[_Process, int]] = {}
    for variant in variants:
        port = _free_port()
        argv = [
            sys.executable, "-m", "uvicorn", "benchmarks._e2e_apps.asgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--log-level", "warning", "--no-access-log", "--lifespan", "off",
        ]  # fmt: skip
        servers[variant] = (
            _Process(
                _pinned(SERVER_CORE, argv),
                {**env, "BENCH_E2E_VARIANT": variant},
                tmp / f"{variant}.log",
            ),
            port,
        )
    for variant, (proc, port) in servers.items():
        _wait_port(port, proc.proc, f"uvicorn ({variant})")
    return servers


def _cpu_ns(pid: int) -> int:
    """CPU time the server has used, all threads, in ns (``/proc/<pid>/task/*/schedstat``).

    On a shared machine the wall clock also counts the time other processes
    held the server's core; the CPU time per request does not, so its ratio
    is the steadier measure of what each variant costs.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended between listing and reading
    return total


# --- load generators ------------------------------------------------------------------


def _wrk(port: int, seconds: int, script: Path) -> dict[str, float]:
    argv = [
        "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(script),
        f"http://127.0.0.1:{port}{PATH}",
    ]  # fmt: skip
    out = subprocess.run(
        _pinned(LOAD_CORE, argv), capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    line = next(x for x in reversed(out.splitlines()) if x.startswith("{"))
    raw = json.loads(line)
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["errors"] + raw["non_2xx"],
        "requests": raw["requests"],
    }


async def _pyload(port: int, seconds: float) -> dict[str, float]:
    """Keep-alive HTTP/1.1 GETs on CONNECTIONS sockets for ``seconds``."""
    request = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def conn() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
                lower = head.lower()
                if b"content-length:" in lower:
                    n = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
                    await reader.readexactly(n)
                else:  # chunked
                    while True:
                        size = int((await reader.readline()).strip(), 16)
                        await reader.readexactly(size + 2)
                        if size == 0:
                            break
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(conn() for _ in range(CONNECTIONS)))
    took = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / took,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors,
        "requests": len(latencies),
    }


def _load(pid: int, port: int, seconds: int, script: Path | None) -> dict[str, float]:
    before = _cpu_ns(pid)
    figures = _wrk(port, seconds, script) if script else asyncio.run(_pyload(port, seconds))
    figures["cpu_us"] = (_cpu_ns(pid) - before) / 1000 / max(figures["requests"], 1)
    return figures


def _inproc(tmp: Path, quick: bool) -> dict[str, Any]:
    """The local variants in one process through ASGI, no HTTP (``_e2e_apps/inproc.py``)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks._e2e_apps.settings",
        "BENCH_E2E_SQLITE": str(tmp / "db.sqlite3"),
        "PYTHONPATH": str(ROOT),
    }
    argv = [sys.executable, "-m", "benchmarks._e2e_apps.inproc", *(["--quick"] if quick else [])]
    out = subprocess.run(
        _pinned(SERVER_CORE, argv), cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300, check=True,
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# --- the run --------------------------------------------------------------------------


def run(
    quick: bool = False, variants: tuple[str, ...] = VARIANTS, rounds: int | None = None
) -> dict[str, Any]:
    """Interleaved rounds over every variant; medians, ratios to plain Django, targets.

    ``variants`` may name the diagnostic ones in ``_e2e_apps/settings.py``
    too (``plain`` is always run: every ratio is to it).
    """
    variants = ("plain", *(v for v in variants if v != "plain"))
    # Many short rounds rather than a few long ones: the median then shrugs off
    # the bursts other users of a shared machine cause.  wrk takes whole seconds.
    default_rounds, seconds = (5, 1) if quick else (12, 1)
    rounds = rounds or default_rounds
    tmp = Path(tempfile.mkdtemp(prefix="resilience-bench-e2e-"))
    script: Path | None = None
    if shutil.which("wrk"):
        script = tmp / "report.lua"
        script.write_text(WRK_SCRIPT)
    redis, url = _start_redis(tmp)
    servers: dict[str, tuple[_Process, int]] = {}
    try:
        servers = _start_servers(tmp, url, variants)
        for proc, port in servers.values():  # warm up: imports, connections, scripts
            _load(proc.proc.pid, port, 1, script)
        samples: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        for _ in range(rounds):
            for variant in variants:
                proc, port = servers[variant]
                samples[variant].append(_load(proc.proc.pid, port, seconds, script))
    finally:
        for proc, _ in servers.values():
            proc.stop()
        redis.stop()
    inproc = _inproc(tmp, quick) if variants == VARIANTS else None
    figures: dict[str, dict[str, float]] = {}
    for variant, runs in samples.items():
        pairs = list(zip(runs, samples["plain"], strict=True))
        figures[variant] = {
            "rps": round(statistics.median(r["rps"] for r in runs), 1),
            "ratio_to_plain": round(statistics.median(r["rps"] / p["rps"] for r, p in pairs), 3),
            "cpu_us_per_request": round(statistics.median(r["cpu_us"] for r in runs), 1),
            "cpu_ratio_to_plain": round(
                statistics.median(p["cpu_us"] / r["cpu_us"] for r, p in pairs), 3
            ),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 2),
            "errors": int(sum(r["errors"] for r in runs)),
            "requests": int(sum(r["requests"] for r in runs)),
        }
    targets: dict[str, dict[str, Any]] = {}
    for variant, (minimum, issue) in TARGETS.items():
        if variant not in figures:
            continue
        ratio = figures[variant]["ratio_to_plain"]
        cpu_ratio = figures[variant]["cpu_ratio_to_plain"]
        targets[variant] = {
            "min_ratio": minimum,
            "ratio": ratio,
            "cpu_ratio": cpu_ratio,
            "met": ratio >= minimum,
            "met_on_cpu": cpu_ratio >= minimum,
            "issue": issue,
        }
    for ours, peer in (("ours_local", "ratelimit_locmem"), ("ours_local_asgi", "ratelimit_locmem"),
                       ("ours_redis", "ratelimit_redis")):  # fmt: skip
        if ours not in samples or peer not in samples:
            continue
        # Paired by round, like the ratios to plain: runs a second apart see
        # more alike noise than the medians of whole columns do.
        pairs = list(zip(samples[ours], samples[peer], strict=True))
        ratio = statistics.median(o["rps"] / p["rps"] for o, p in pairs)
        cpu_ratio = statistics.median(p["cpu_us"] / o["cpu_us"] for o, p in pairs)
        targets[f"{ours}_ahead_of_{peer}"] = {
            "ours_rps": figures[ours]["rps"],
            "peer_rps": figures[peer]["rps"],
            "ratio": round(ratio, 3),
            "cpu_ratio": round(cpu_ratio, 3),
            "met": ratio > 1.0,
            "met_on_cpu": cpu_ratio > 1.0,
            "issue": "#3" if peer.endswith("locmem") else "#4",
        }
    return {
        "variants": figures,
        "inproc": inproc,
        "targets": targets,
        "rounds": rounds,
        "seconds_per_run": seconds,
        "connections": CONNECTIONS,
        "load_generator": "wrk (1 thread)" if script else "python asyncio keep-alive generator",
        "pinned": bool(shutil.which("taskset")) and (os.cpu_count() or 1) > 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated; the diagnostic ones in _e2e_apps/settings.py too",
    )
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    r = run(args.quick, tuple(args.variants.split(",")), args.rounds)
    print(
        f"hello-world async view under uvicorn (1 worker{', pinned' if r['pinned'] else ''}); "
        f"{r['load_generator']}, {r['connections']} keep-alive connections; "
        f"{r['rounds']} interleaved rounds x {r['seconds_per_run']} s, medians"
    )
    print(
        f"{'variant':18} {'req/s':>6} {'x plain':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'CPU us/req':>10} {'x plain':>7} {'errors':>6}"
    )
    for variant, f in r["variants"].items():
        print(
            f"{variant:18} {f['rps']:6.0f} {f['ratio_to_plain']:7.3f} {f['p50_ms']:7.2f} "
            f"{f['p99_ms']:7.2f} {f['cpu_us_per_request']:10.1f} {f['cpu_ratio_to_plain']:7.3f} "
            f"{f['errors']:6d}"
        )
    print("x plain: plain Django's figure over the variant's (1.000 = no cost), median of rounds")
    for name, t in r["targets"].items():
        verdict = (
            f"req/s {'met' if t['met'] else 'MISSED'}, CPU {'met' if t['met_on_cpu'] else 'MISSED'}"
        )
        detail = (
            f"req/s {t['ratio']:.3f}, CPU {t['cpu_ratio']:.3f} vs >= {t['min_ratio']}"
            if "min_ratio" in t
            else f"ours/peer req/s {t['ratio']:.3f}, CPU {t['cpu_ratio']:.3f} (> 1 = ahead)"
        )
        print(f"target {t['issue']} {name}: {detail}: {verdict}")
    inproc = r["inproc"]
    if inproc is None:
        print(f"({time.perf_counter() - started:.0f} s)")
        return
    print(
        f"in process, ASGI without HTTP ({inproc['rounds']} interleaved blocks of "
        f"{inproc['requests_per_block']} requests; CPU µs per request, medians):"
    )
    for variant, f in inproc["variants"].items():
        print(
            f"  {variant:18} {f['cpu_us_median']:7.1f} µs  best {f['cpu_us_best']:7.1f}  "
            f"x plain {f['ratio_to_plain']:.3f}  added {f['added_us']:+6.1f} µs"
        )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
