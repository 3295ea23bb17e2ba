"""Breaker policies: the ``RESILIENCE["BREAKERS"]`` entries, parsed into frozen dataclasses.

Each key and its default: docs/settings.md (``BREAKERS``); each check id: docs/checks.md.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..dotted import import_dotted
from ..exceptions import ConfigError
from ..routes import RouteMatcher, parse_route_matcher
from ..units import MAX_COUNT, bounded_int, parse_duration, safe_repr
from .phase import CircuitOpen

__all__ = ["IGNORED", "SUCCESS", "BreakerPolicy", "parse_breaker_policy", "parse_breakers"]

# shared_poll, in milliseconds: at most an hour between reads of the shared marker.
MAX_POLL_MS = 3_600_000

# Verdicts of BreakerPolicy.classify()
FAILURE = "failure"
SUCCESS = "success"
IGNORED = "ignored"

Mode = Literal["normal", "disabled", "metrics_only"]
MODES: tuple[str, ...] = ("normal", "disabled", "metrics_only")
ExcTypes = tuple[type[BaseException], ...]


def default_caller_fault() -> ExcTypes:
    """Exceptions that say the *caller* gave up, not that the dependency failed."""
    # Imported here so that loading the breaker core never loads the deadline module.
    from ..deadline import DeadlineExceeded

    return (asyncio.CancelledError, DeadlineExceeded)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """How one breaker decides; durations are in seconds."""

    failure_threshold: int | None = 5
    open_for: float = 30.0
    open_for_max: float | None = None
    half_open_calls: int = 10
    close_ratio: float = 0.9
    window: float = 60.0
    error_rate: float | None = 0.5
    min_calls: int = 20
    slow_call: float | None = None
    slow_call_rate: float | None = None
    ewma_alpha: float = 0.3
    ewma_threshold: float | None = None
    half_open_max_wait: float = 60.0
    record: ExcTypes = (Exception,)
    ignore: ExcTypes = ()
    caller_fault: ExcTypes = field(default_factory=default_caller_fault)
    failure_result: Callable[[Any], bool] | None = None
    mode: Mode = "normal"
    shared: bool = False
    shared_poll: float = 0.5
    route: RouteMatcher | None = None
    # Set in code, not a setting: a failure of a call that was already under way
    # when the previous failure counted is the same stall and does not count
    # again (needs the call's duration).  The limiter's fallback uses it: one
    # Redis hiccup seen by 64 concurrent calls is one failure, not a trip.
    stall_counts_once: bool = False

    @property
    def trials_to_close(self) -> int:
        """Successful trials needed to close: ``ceil(close_ratio * half_open_calls)``."""
        # The tiny epsilon keeps 0.9 * 10 from becoming 10 through float error.
        return max(1, math.ceil(self.close_ratio * self.half_open_calls - 1e-9))

    def classify(self, exc: BaseException, duration: float | None = None) -> str:
        """``FAILURE``, ``SUCCESS`` or ``IGNORED`` (no verdict) for a call that raised ``exc``."""
        if isinstance(exc, (CircuitOpen, *self.caller_fault)):
            # The caller gave up (cancelled, its own deadline, a breaker inside the call
            # refused): not the dependency's fault, unless the dependency was slow too.
            slow = self.slow_call
            slow_too = slow is not None and duration is not None and duration >= slow
            return FAILURE if slow_too else IGNORED
        if self.ignore and isinstance(exc, self.ignore):
            return SUCCESS  # the dependency answered; the answer was an exception
        if isinstance(exc, BaseExceptionGroup):
            # A TaskGroup's: judged by its members, so calls that all ran out of the
            # caller's budget are no verdict, as they would be one by one.
            verdicts = {self.classify(member, duration) for member in exc.exceptions}
            return next((v for v in (FAILURE, SUCCESS) if v in verdicts), IGNORED)
        if isinstance(exc, self.record):
            return FAILURE
        return SUCCESS if isinstance(exc, Exception) else IGNORED

    def open_duration(self, retrips: int) -> float:
        """How long to stay open after ``retrips`` consecutive re-trips (0 for a first trip)."""
        if self.open_for_max is None or retrips <= 0:
            return self.open_for
        # Cap the exponent too, so a breaker that failed for days cannot overflow.
        return min(self.open_for * (2.0 ** min(retrips, 62)), self.open_for_max)


_ROUTE_KEYS = frozenset({"path", "view", "methods"})
_KEYS = (
    frozenset(BreakerPolicy.__dataclass_fields__) - {"route", "stall_counts_once"}
) | _ROUTE_KEYS


def _err(name: str, check_id: str, message: str, hint: str) -> ConfigError:
    message = f"RESILIENCE['BREAKERS'][{safe_repr(name)}]: {message}"
    return ConfigError(message, check_id=check_id, hint=hint)


def _int(name: str, key: str, value: Any, check_id: str) -> int:
    number = bounded_int(value, minimum=1, maximum=MAX_COUNT)
    if number is None:
        message = f"{key} must be an integer from 1 to {MAX_COUNT:_}, not {safe_repr(value)}"
        raise _err(name, check_id, message, "e.g. 5")
    return number


def _ratio(name: str, key: str, value: Any, check_id: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        message = f"{key} must be a number in (0, 1], not {safe_repr(value)}"
        raise _err(name, check_id, message, "e.g. 0.5")
    return float(value)


def _duration(name: str, key: str, value: Any, check_id: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise _err(name, check_id, f"{key}: {exc}", "write it like '30s'") from None
    if seconds <= 0:
        raise _err(name, check_id, f"{key} must be longer than zero", "e.g. '30s'")
    return seconds


# The numeric keys, checked in this order: parser, check id, whether None (off) is allowed.
_NUMBERS: dict[str, tuple[Callable[[str, str, Any, str], float], str, bool]] = {
    "open_for": (_duration, "resilience.E054", False),
    "open_for_max": (_duration, "resilience.E054", True),
    "window": (_duration, "resilience.E054", False),
    "slow_call": (_duration, "resilience.E054", True),
    "slow_call_rate": (_ratio, "resilience.E058", True),
    "failure_threshold": (_int, "resilience.E053", True),
    "half_open_calls": (_int, "resilience.E056", False),
    "close_ratio": (_ratio, "resilience.E057", False),
    "error_rate": (_ratio, "resilience.E058", True),
    "min_calls": (_int, "resilience.E059", False),
    "ewma_threshold": (_ratio, "resilience.E058", True),
    "half_open_max_wait": (_duration, "resilience.E054", False),
    "ewma_alpha": (_ratio, "resilience.E062", False),
}
# In "normal" mode at least one of these must be set, or nothing can trip the breaker.
_CRITERIA = ("failure_threshold", "error_rate", "slow_call", "slow_call_rate", "ewma_threshold")


def _import(item: Any) -> tuple[Any, str]:
    """``item``, imported when a dotted path; ``None`` and the reason when that fails."""
    # Any failure of the module's code is an ImportError (see dotted.py), so a bad path
    # is a check error or a form error, never a traceback.  Admin rows reach this only
    # with paths RESILIENCE["ADMIN_CHOICES"] allows.
    try:
        return (import_dotted(item) if isinstance(item, str) else item), ""
    except ImportError as exc:
        return None, f" ({exc})"


def _exc_types(name: str, key: str, value: Any) -> ExcTypes:
    items = [value] if isinstance(value, str | type) else value
    if not isinstance(items, list | tuple):
        hint = "for example ['requests.exceptions.ConnectionError', 'myapp.errors.Unavailable']"
        raise _err(name, "resilience.E063", f"{key} must be a list of exception classes", hint)
    out: list[type[BaseException]] = []
    for item in items:
        cls, reason = _import(item)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            message = f"{key}: {safe_repr(item)} is not an importable exception class{reason}"
            hint = "use a dotted path like 'requests.exceptions.ConnectionError'"
            raise _err(name, "resilience.E063", message, hint)
        out.append(cls)
    return tuple(out)


def parse_breaker_policy(name: Any, mapping: Any) -> BreakerPolicy:
    """Parse one ``BREAKERS`` entry; raise ``ConfigError`` naming the breaker and the key.

    >>> parse_breaker_policy("pricing", {"open_for": "10s", "error_rate": None}).open_for
    10.0
    """
    if not isinstance(name, str) or not name.strip():
        message = (
            f"RESILIENCE['BREAKERS']: breaker name {safe_repr(name)} must be a non-empty string"
        )
        hint = "name breakers after the dependency, like 'pricing'"
        raise ConfigError(message, check_id="resilience.E051", hint=hint)
    if isinstance(mapping, BreakerPolicy):
        return mapping
    if not isinstance(mapping, Mapping):
        raise _err(name, "resilience.E050", "must be a mapping of settings", "use a dict")
    unknown = sorted(str(k) for k in mapping if k not in _KEYS)
    if unknown:
        hint = f"known keys: {', '.join(sorted(_KEYS))}"
        raise _err(name, "resilience.E052", f"unknown key(s) {', '.join(unknown)}", hint)
    d = BreakerPolicy()
    g = mapping.get
    kw: dict[str, Any] = {}
    for key, (parse, check_id, optional) in _NUMBERS.items():
        value = g(key, getattr(d, key))
        kw[key] = None if value is None and optional else parse(name, key, value, check_id)
    if kw["open_for_max"] is not None and kw["open_for_max"] < kw["open_for"]:
        hint = "make open_for_max at least open_for, or None"
        raise _err(name, "resilience.E055", "open_for_max is shorter than open_for", hint)
    if not 1.0 <= kw["window"] <= 3600.0:
        raise _err(name, "resilience.E060", "window must be between 1s and 1h", "e.g. '60s'")
    if kw["slow_call_rate"] is not None and kw["slow_call"] is None:
        raise _err(name, "resilience.E061", "slow_call_rate needs slow_call", "add slow_call")
    predicate, reason = _import(g("failure_result"))
    if reason or (predicate is not None and not callable(predicate)):
        message = f"failure_result is not an importable callable{reason}"
        hint = "use a dotted path like 'myapp.breakers.is_5xx'"
        raise _err(name, "resilience.E064", message, hint)
    mode = g("mode", d.mode)
    if mode not in MODES:
        message = f"mode {safe_repr(mode)} is not one of {MODES}"
        raise _err(name, "resilience.E065", message, "leave it out for the default")
    shared = g("shared", False)
    if not isinstance(shared, bool):
        hint = "use True to share the breaker across processes"
        raise _err(name, "resilience.E066", "shared must be True or False", hint)
    poll = g("shared_poll", 500)
    # "not 10 <= poll <= MAX" is also true for nan.
    if isinstance(poll, bool) or not isinstance(poll, int | float) or not 10 <= poll <= MAX_POLL_MS:
        message = f"shared_poll must be from 10 to {MAX_POLL_MS:_} (ms)"
        raise _err(name, "resilience.E067", message, "e.g. 500")
    route = None
    if _ROUTE_KEYS & set(mapping):
        if g("path") is None and g("view") is None:
            hint = "add 'path': '/api/orders' or 'view': 'orders:create'"
            raise _err(name, "resilience.E069", "a route breaker needs a path or a view", hint)
        where = f"RESILIENCE['BREAKERS'][{safe_repr(name)}]"
        route = parse_route_matcher(mapping, where=where, check_id="resilience.E069")
    policy = BreakerPolicy(
        **kw,
        caller_fault=d.caller_fault + _exc_types(name, "caller_fault", g("caller_fault", [])),
        record=_exc_types(name, "record", g("record", d.record)),
        ignore=_exc_types(name, "ignore", g("ignore", d.ignore)),
        failure_result=predicate,
        mode=mode,
        shared=shared,
        shared_poll=float(poll) / 1000.0,
        route=route,
    )
    if mode == "normal" and not any(getattr(policy, key) for key in _CRITERIA):
        message = "nothing can trip this breaker: every criterion is None"
        hint = "set failure_threshold or error_rate, or use mode='metrics_only'"
        raise _err(name, "resilience.E068", message, hint)
    return policy


def parse_breakers(raw: Any) -> tuple[dict[str, BreakerPolicy], list[ConfigError]]:
    """Parse all of ``RESILIENCE["BREAKERS"]``, collecting every error (for system checks).

    Entries with an error are left out of the result.

    >>> policies, errors = parse_breakers({"a": {}, "b": {"min_calls": 0}})
    >>> sorted(policies), [e.check_id for e in errors]
    (['a'], ['resilience.E059'])
    """
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        message = "RESILIENCE['BREAKERS'] must be a mapping of breaker name to settings"
        hint = "e.g. {'pricing': {'failure_threshold': 5}}"
        return {}, [ConfigError(message, check_id="resilience.E050", hint=hint)]
    policies: dict[str, BreakerPolicy] = {}
    errors: list[ConfigError] = []
    for name, mapping in raw.items():
        try:
            policies[name] = parse_breaker_policy(name, mapping)
        except ConfigError as exc:
            errors.append(exc)
    return policies, errors
