"""The Prometheus collectors this process registered, by metric name.

Kept apart from ``metrics.py`` so that a reload of that module (or a second
import of it) finds and reuses them: a prometheus-client registry refuses a
second collector of one name and offers no public way to look up the first.
"""

from __future__ import annotations

from typing import Any

COLLECTORS: dict[str, Any] = {}
