"""``RESILIENCE["FALLBACK"]``: when the Redis limiter trips, how it probes, how it shares
(docs/settings.md); problems raise ``ConfigError`` with check id ``resilience.E041``."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields

from ..breakers.policy import BreakerPolicy
from ..breakers.state import Breaker
from ..exceptions import ConfigError
from ..units import MAX_COUNT, MAX_DEADLINE, bounded_int, parse_duration, safe_repr, safe_str

__all__ = ["CHECK_ID", "UNKNOWN_INSTANCES", "FallbackSettings", "parse_fallback_settings"]

CHECK_ID = "resilience.E041"
# A probe or a heartbeat further apart than a day would never bring decisions back.
MAX_PROBE_INTERVAL = MAX_DEADLINE
# Assumed before any count: never "alone" (docs/fallback.md, a fleet that starts during an outage).
UNKNOWN_INSTANCES = 10


@dataclass(frozen=True, slots=True)
class FallbackSettings:
    failures: int = 3
    probe_interval: float = 1.0
    recovery_probes: int = 2
    instances: int | None = None
    share: float | None = None
    heartbeat_ttl: float = 5.0

    def share_for(self, live: int | None) -> float:
        """The fraction of each global limit a process enforces, given the live count seen."""
        if self.share is not None:
            return self.share
        return 1.0 / (self.instances or live or UNKNOWN_INSTANCES)

    def breaker(self, name: str) -> Breaker:
        """The core breaker guarding Redis (or one cluster master): ``failures`` in a row
        trip it, one stall counts once, and only the probes close it (no half-open trial)."""
        policy = BreakerPolicy(
            failure_threshold=self.failures,
            open_for=math.inf,
            error_rate=None,
            caller_fault=(),
            stall_counts_once=True,
        )
        return Breaker(name, policy, clock=time.perf_counter)


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

    def error(message: str) -> ConfigError:
        return ConfigError(f"RESILIENCE['FALLBACK']{message}", check_id=CHECK_ID, hint=hint)

    if not isinstance(value, Mapping):
        raise error(f" must be a dict, not {type(value).__name__}")
    known = {field.name.upper() for field in fields(FallbackSettings)}
    unknown = sorted(safe_str(k) for k in value if k not in known)
    if unknown:
        raise error(f" has unknown keys {unknown}")

    def count(key: str, default: int | None) -> int | None:
        raw = value.get(key, default)
        if raw is None and default is None:
            return None
        number = bounded_int(raw, minimum=1, maximum=MAX_COUNT)
        if number is None:
            raise error(
                f"[{safe_repr(key)}] = {safe_repr(raw)} must be an integer from 1 to {MAX_COUNT:_}"
            )
        return number

    def duration(key: str, default: float) -> float:
        try:
            seconds = parse_duration(value.get(key, default), maximum=MAX_PROBE_INTERVAL)
        except ValueError as exc:
            raise error(f"[{safe_repr(key)}]: {exc}") from None
        if seconds <= 0:
            raise error(f"[{safe_repr(key)}] must be longer than zero")
        return seconds

    interval = duration("PROBE_INTERVAL", 1.0)
    share = value.get("SHARE")
    if share is not None and (
        isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1
    ):
        raise error(f"['SHARE'] = {safe_repr(share)} must be a number above 0 and at most 1")
    return FallbackSettings(
        failures=count("FAILURES", 3) or 3,
        probe_interval=interval,
        recovery_probes=count("RECOVERY_PROBES", 2) or 2,
        instances=count("INSTANCES", None),
        share=None if share is None else float(share),
        heartbeat_ttl=duration("HEARTBEAT_TTL", min(MAX_PROBE_INTERVAL, max(5.0, 3 * interval))),
    )
