"""``RESILIENCE["FALLBACK"]``: when the Redis limiter trips, how it probes, how it shares.

Keys (all optional): ``FAILURES`` (consecutive failed or slow calls that trip
the backend, default 3), ``PROBE_INTERVAL`` (default ``"1s"``),
``RECOVERY_PROBES`` (consecutive good probes before decisions return to
Redis, default 2), ``INSTANCES`` (fix the instance count instead of counting
heartbeats) or ``SHARE`` (fix each process's share of a global limit),
``HEARTBEAT_TTL`` (how long a heartbeat keeps an instance counted, default
``max(5s, 3 * PROBE_INTERVAL)``).  Problems raise ``ConfigError`` with check
id ``resilience.E041``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigError
from ..units import parse_duration

__all__ = ["CHECK_ID", "FallbackSettings", "parse_fallback_settings"]

CHECK_ID = "resilience.E041"


@dataclass(frozen=True, slots=True)
class FallbackSettings:
    """``RESILIENCE["FALLBACK"]``: when to trip, how to probe, how to share."""

    failures: int = 3
    probe_interval: float = 1.0
    recovery_probes: int = 2
    instances: int | None = None
    share: float | None = None
    # A heartbeat older than this no longer counts its instance as live.
    heartbeat_ttl: float = 5.0


def parse_fallback_settings(value: Mapping[str, Any] | None) -> FallbackSettings:
    """Parse ``RESILIENCE["FALLBACK"]``; raise ``ConfigError`` (``resilience.E041``)."""
    raw = dict(value or {})
    known = {"FAILURES", "PROBE_INTERVAL", "RECOVERY_PROBES", "INSTANCES", "SHARE", "HEARTBEAT_TTL"}
    unknown = set(raw) - known
    hint = (
        "Keys: FAILURES (int >= 1), PROBE_INTERVAL (duration), RECOVERY_PROBES (int >= 1), "
        "INSTANCES (int >= 1) or SHARE (0 < x <= 1), HEARTBEAT_TTL (duration)."
    )
    if unknown:
        raise ConfigError(
            f"RESILIENCE['FALLBACK'] has unknown keys {sorted(unknown)}",
            check_id=CHECK_ID,
            hint=hint,
        )
    try:
        interval = parse_duration(raw.get("PROBE_INTERVAL", 1.0))
        parsed = FallbackSettings(
            failures=int(raw.get("FAILURES", 3)),
            probe_interval=interval,
            recovery_probes=int(raw.get("RECOVERY_PROBES", 2)),
            instances=None if raw.get("INSTANCES") is None else int(raw["INSTANCES"]),
            share=None if raw.get("SHARE") is None else float(raw["SHARE"]),
            heartbeat_ttl=parse_duration(raw.get("HEARTBEAT_TTL", max(5.0, 3 * interval))),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"RESILIENCE['FALLBACK']: {exc}", check_id=CHECK_ID, hint=hint) from exc
    if (
        parsed.failures < 1
        or parsed.recovery_probes < 1
        or parsed.probe_interval <= 0
        or (parsed.instances is not None and parsed.instances < 1)
        or (parsed.share is not None and not 0 < parsed.share <= 1)
    ):
        raise ConfigError(
            f"RESILIENCE['FALLBACK'] = {value!r} is out of range", check_id=CHECK_ID, hint=hint
        )
    return parsed
