"""A stand-in worker process: reports a few values into PROMETHEUS_MULTIPROC_DIR and exits.

Usage: python -m tests.observability.mp_worker '<json list of [function, args...]>'
Prints a JSON line with its pid and whether exemplars are on.
"""

from __future__ import annotations

import json
import os
import sys

from opentelemetry.sdk.trace import TracerProvider

from resilience_django import metrics


def main() -> None:
    calls = json.loads(sys.argv[1])
    tracer = TracerProvider().get_tracer("worker")
    # Inside a sampled span: multiprocess mode must skip exemplars, not fail.
    with tracer.start_as_current_span("request"):
        for name, *args in calls:
            getattr(metrics, name)(*args)
    print(json.dumps({"pid": os.getpid(), "exemplars": metrics._exemplars}))


if __name__ == "__main__":
    main()
