"""Marking dead workers' ``live*`` gauges in multiprocess mode (docs/metrics.md, "Many
worker processes")."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["child_exit", "mark_worker_dead"]


def mark_worker_dead(pid: int) -> None:
    """Forget worker ``pid``'s live gauges (no-op without prometheus-client or the directory)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def child_exit(server: Any, worker: Any) -> None:
    """A gunicorn ``child_exit`` server hook: mark the exited worker dead."""
    mark_worker_dead(worker.pid)
