"""Run every benchmark side by side with its peers and write ``docs/benchmarks.md``.

Run: ``python benchmarks/run_all.py`` (``--quick`` for shorter runs; ``make bench``).

Each benchmark's ``run(quick)`` runs in its own child process (they configure
Django differently), one after the other, so no two compete for the cores.
The report gets the machine, the command, the load average before each
benchmark, every figure and ratio, and the targets from the issues with a
plain met / missed next to each.  ``--out PATH`` writes elsewhere; ``--only
NAME[,NAME]`` runs a subset (the report then says which were left out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from _report import render  # noqa: E402

BENCHMARKS = {
    "local_limits": "bench_local_limits",
    "redis_limits": "bench_redis_limits",
    "breakers": "bench_breakers",
    "shedding": "bench_shedding",
    "middleware": "bench_middleware_overhead",
    "e2e": "bench_e2e",
}
PACKAGES = (
    "resilience-django",
    "Django",
    "asgiref",
    "redis",
    "hiredis",
    "django-redis",
    "uvicorn",
    "uvloop",
    "httptools",
    "h11",
    "limits",
    "django-ratelimit",
    "pybreaker",
    "circuitbreaker",
    "aiobreaker",
    "purgatory",
)


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _ours() -> str:
    version = _version("resilience-django")
    return "this checkout" if version == "not installed" else f"{version} (installed)"


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return ((done.stdout or done.stderr).strip().splitlines() or ["?"])[0]


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine() -> dict[str, Any]:
    """What ran the benchmarks: CPU, cores, OS, interpreter, library versions, commit."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dirty = _git("status", "--porcelain", "--", "resilience_django")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {
            name: _version(name) if name != "resilience-django" else _ours() for name in PACKAGES
        },
        "redis_server": _first_line(["redis-server", "--version"]),
        "wrk": _first_line(["wrk", "-v"]),
        "commit": _git("rev-parse", "--short", "HEAD")
        + (" (resilience_django/ has uncommitted changes)" if dirty else ""),
    }


def _run_one(name: str, quick: bool) -> dict[str, Any]:
    """One benchmark in a child process; its figures, or the error it died with."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    argv = [sys.executable, __file__, "--child", BENCHMARKS[name], "--json", str(out)]
    if quick:
        argv.append("--quick")
    started = time.perf_counter()
    load = os.getloadavg()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
    entry: dict[str, Any] = {
        "seconds": round(time.perf_counter() - started, 1),
        "loadavg_before": [round(x, 2) for x in load],
    }
    if done.returncode == 0:
        entry["result"] = json.loads(out.read_text())
    else:
        entry["error"] = (done.stderr or done.stdout).strip().splitlines()[-15:]
    out.unlink(missing_ok=True)
    return entry


def _child(module: str, out: str, quick: bool) -> None:
    result = importlib.import_module(module).run(quick)
    Path(out).write_text(json.dumps(result, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--only", default="", help="comma-separated: " + ", ".join(BENCHMARKS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.json, args.quick)
        return
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    command = "python benchmarks/run_all.py" + (" --quick" if args.quick else "")
    if args.only:
        command += f" --only {args.only}"
    started = dt.datetime.now(dt.UTC)
    info = machine()
    info["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        print(f"running {name} ...", flush=True)
        results[name] = _run_one(name, args.quick)
        status = "ok" if "result" in results[name] else "FAILED"
        print(f"  {name}: {status} in {results[name]['seconds']} s", flush=True)
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    info["started"] = started.strftime("%Y-%m-%d %H:%M UTC")
    info["minutes"] = round((dt.datetime.now(dt.UTC) - started).total_seconds() / 60, 1)
    text = render(command, args.quick, info, results, [n for n in BENCHMARKS if n not in names])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    failed = [n for n, r in results.items() if "error" in r]
    if failed:
        for n in failed:
            print(f"{n} failed:\n  " + "\n  ".join(results[n]["error"]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
