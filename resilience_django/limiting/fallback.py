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

from ..exceptions import ConfigError
from ..units import MAX_COUNT, MAX_DEADLINE, bounded_int, parse_duration, safe_repr

__all__ = ["CHECK_ID", "FallbackSettings", "parse_fallback_settings"]

CHECK_ID = "resilience.E041"
_KEYS = frozenset(
    {"FAILURES", "PROBE_INTERVAL", "RECOVERY_PROBES", "INSTANCES", "SHARE", "HEARTBEAT_TTL"}
)
# A probe or a heartbeat further apart than a day would never bring decisions back.
MAX_PROBE_INTERVAL = MAX_DEADLINE


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


def parse_fallback_settings(value: object) -> FallbackSettings:
    """Parse ``RESILIENCE["FALLBACK"]``; raise ``ConfigError`` (``resilience.E041``).

    >>> parse_fallback_settings({"FAILURES": 5}).failures
    5
    """
    hint = (
        f"A dict with keys FAILURES (integer 1..{MAX_COUNT:_}), PROBE_INTERVAL (duration, "
        f"above 0 up to {MAX_PROBE_INTERVAL:g}s), RECOVERY_PROBES (integer 1..{MAX_COUNT:_}), "
        f"INSTANCES (integer 1..{MAX_COUNT:_}) or SHARE (number, 0 < x <= 1), HEARTBEAT_TTL "
        f"(duration, above 0 up to {MAX_PROBE_INTERVAL:g}s)."
    )
    if value is None:
        return FallbackSettings()
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"RESILIENCE['FALLBACK'] must be a dict, not {type(value).__name__}",
            check_id=CHECK_ID,
            hint=hint,
        )
    unknown = sorted(str(k) for k in value if k not in _KEYS)
    if unknown:
        raise ConfigError(
            f"RESILIENCE['FALLBACK'] has unknown keys {unknown}", check_id=CHECK_ID, hint=hint
        )

    def count(key: str, default: int | None) -> int | None:
        raw = value.get(key, default)
        if raw is None and default is None:
            return None
        number = bounded_int(raw, minimum=1, maximum=MAX_COUNT)
        if number is None:
            raise ConfigError(
                f"RESILIENCE['FALLBACK'][{key!r}] = {safe_repr(raw)} must be an integer "
                f"from 1 to {MAX_COUNT:_}",
                check_id=CHECK_ID,
                hint=hint,
            )
        return number

    def duration(key: str, default: float) -> float:
        raw = value.get(key, default)
        try:
            seconds = parse_duration(raw, maximum=MAX_PROBE_INTERVAL)
        except ValueError as exc:
            raise ConfigError(
                f"RESILIENCE['FALLBACK'][{key!r}]: {exc}", check_id=CHECK_ID, hint=hint
            ) from None
        if seconds <= 0:
            raise ConfigError(
                f"RESILIENCE['FALLBACK'][{key!r}] must be longer than zero",
                check_id=CHECK_ID,
                hint=hint,
            )
        return seconds

    interval = duration("PROBE_INTERVAL", 1.0)
    share = value.get("SHARE")
    if share is not None and (
        isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1
    ):
        raise ConfigError(
            f"RESILIENCE['FALLBACK']['SHARE'] = {safe_repr(share)} must be a number above 0 "
            "and at most 1",
            check_id=CHECK_ID,
            hint=hint,
        )
    return FallbackSettings(
        failures=count("FAILURES", 3) or 3,
        probe_interval=interval,
        recovery_probes=count("RECOVERY_PROBES", 2) or 2,
        instances=count("INSTANCES", None),
        share=None if share is None else float(share),
        heartbeat_ttl=duration("HEARTBEAT_TTL", min(MAX_PROBE_INTERVAL, max(5.0, 3 * interval))),
    )
