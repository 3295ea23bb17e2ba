"""The Prometheus collectors this process registered, by metric name: apart from ``metrics.py``
so that a reload of it finds and reuses them (a registry refuses a second collector of one
name and offers no public way to look up the first)."""

from __future__ import annotations

from typing import Any

COLLECTORS: dict[str, Any] = {}
