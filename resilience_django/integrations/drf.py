"""Django REST framework throttles backed by this package's limiters.

DRF authenticates inside the view (token, basic, session...), after every
middleware has run, so a middleware rule keyed on ``user`` never sees a
DRF-authenticated user.  These throttles run where DRF runs its own, after
authentication::

    REST_FRAMEWORK = {
        "DEFAULT_THROTTLE_CLASSES": [
            "resilience_django.integrations.drf.ResilienceThrottle",
            "resilience_django.integrations.drf.ResilienceRulesThrottle",
        ],
        "DEFAULT_THROTTLE_RATES": {"user": "1000/day", "anon": "100/hour"},
    }

- ``ResilienceThrottle`` (scope ``"user"``: the user, or the IP for anonymous
  requests), ``AnonResilienceThrottle`` (scope ``"anon"``, anonymous only)
  and ``ScopedResilienceThrottle`` (the view's ``throttle_scope``) follow
  DRF's ``UserRateThrottle``, ``AnonRateThrottle`` and ``ScopedRateThrottle``:
  rates from ``DEFAULT_THROTTLE_RATES`` in DRF's units (``"100/min"``,
  ``"10/second"``, ``"1000/day"``; the first letter of the unit counts, as in
  DRF), or ours (``"100/30s"``).  They decide on the middleware's limiters:
  exact algorithms, shared through Redis with the automatic local fallback
  when ``BACKEND`` is ``"redis"``.  Subclass to change ``key`` (any key spec),
  ``algorithm``, ``burst`` or ``limit_scope``.
- ``ResilienceRulesThrottle`` decides the ``RESILIENCE["LIMITS"]`` rules
  marked ``"after_auth": True`` (the middleware leaves them alone), so a
  ``key: "user"`` rule sees the token- or basic-authenticated user.

Every decision's ``RateLimit-Policy``/``RateLimit`` headers go on the
response (DRF adds ``view.headers`` to every response it finalizes, its 429
included, which also carries ``Retry-After`` from ``wait()``); when the
middleware decided rules for the same request, both sets are listed.  The
decision is on ``request.resilience_decision``.
"""

from __future__ import annotations

import re
import threading
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings  # type: ignore[import-untyped]
from rest_framework.throttling import BaseThrottle  # type: ignore[import-untyped]

from ..conf import get_settings
from ..limiting.decision import Decision
from ..limiting.engine import LimitEngine, LimitResult
from ..runtime import STATE_ATTR, RequestState, Runtime, get_runtime
from ..units import Rate, parse_rate
from ..view_limits.standalone import StandaloneRule

__all__ = [
    "AnonResilienceThrottle",
    "ResilienceRulesThrottle",
    "ResilienceThrottle",
    "ScopedResilienceThrottle",
    "parse_drf_rate",
]

DECISION_ATTR = "resilience_decision"

_DRF_RATE = re.compile(r"\s*(\d+)\s*/\s*([A-Za-z]+)\s*\Z")


def parse_drf_rate(value: str) -> Rate:
    """A rate in DRF's convention: ``"100/min"``, ``"10/second"``, ``"1000/day"``.

    As in DRF, a unit that is a word counts by its first letter (``s``, ``m``,
    ``h``, ``d``), so ``"5/hours"`` is 5 per hour and ``"5/ms"`` 5 per minute;
    ours work too (``"100/30s"``, ``"10/5m"``).  Raises ``ValueError``.

    >>> parse_drf_rate("100/min"), parse_drf_rate("3/days")
    (Rate(limit=100, period=60.0), Rate(limit=3, period=259200.0))
    """
    match = _DRF_RATE.match(value) if isinstance(value, str) else None
    if match is not None:
        unit = match.group(2)[0].lower()
        if unit in "smhd":
            return parse_rate(f"{match.group(1)}/{unit}")
    return parse_rate(value)


def _publish(request: Any, view: Any, result: LimitResult) -> None:
    """Put ``result`` where the response will pick it up, and on the request."""
    # Our middleware writes its own decision's headers after the view: merge
    # ours into that decision so that neither set hides the other.  (DRF's
    # Request hands attribute reads to Django's request, where the state is.)
    state: RequestState | None = getattr(request, STATE_ATTR, None)
    earlier = state.limits if state is not None else None
    if state is not None and earlier is not None:
        state.limits = result = _merge(earlier, result)
    else:
        # Without a middleware decision, an earlier throttle's for this request.
        previous = getattr(request, DECISION_ATTR, None)
        if isinstance(previous, LimitResult):
            result = _merge(previous, result)
    setattr(request, DECISION_ATTR, result)
    headers = getattr(view, "headers", None)
    if isinstance(headers, dict) and (not result.allowed or get_settings().ratelimit_headers):
        for name, value in result.headers:
            headers[name] = value


def _merge(first: LimitResult, second: LimitResult) -> LimitResult:
    a, b = first.decision, second.decision
    decision = Decision(a.allowed and b.allowed, a.outcomes + b.outcomes, b.backend)
    shadows = [s for s in (first.shadow, second.shadow) if s is not None]
    shadow = None
    if shadows:
        outcomes = tuple(o for s in shadows for o in s.outcomes)
        shadow = Decision(all(s.allowed for s in shadows), outcomes, shadows[-1].backend)
    return LimitResult(decision, shadow)


class _Rules:
    """``StandaloneRule``s by their fields, shared by every throttle instance."""

    _MAX = 1024

    def __init__(self) -> None:
        self._rules: dict[tuple[Any, ...], StandaloneRule] = {}
        self._lock = threading.Lock()

    def get(self, fields: dict[str, Any], where: str) -> StandaloneRule:
        cache_key = tuple(sorted(fields.items()))
        rule = self._rules.get(cache_key)
        if rule is None:
            rule = StandaloneRule(fields, where=where)
            with self._lock:
                if len(self._rules) >= self._MAX:
                    self._rules.clear()
                rule = self._rules.setdefault(cache_key, rule)
        return rule


_rules = _Rules()


class ResilienceThrottle(BaseThrottle):  # type: ignore[misc]
    """DRF's ``UserRateThrottle`` on our limiters: the user's pk, or the IP when anonymous.

    Class attributes: ``scope`` (the ``DEFAULT_THROTTLE_RATES`` entry, and
    the counter's name ``drf.<scope>``), ``rate`` (overrides the setting),
    ``key`` (a key spec: ``user_or_ip``, ``ip``, ``user``,
    ``header:X-Api-Key``, a dotted path...), ``algorithm``, ``burst`` and
    ``limit_scope`` (``"local"``, ``"distributed"``, or ``None`` to follow
    ``BACKEND``).
    """

    scope: ClassVar[str | None] = "user"
    rate: ClassVar[str | None] = None
    key: ClassVar[str] = "user_or_ip"
    algorithm: ClassVar[str] = "sliding_window"
    burst: ClassVar[int | None] = None
    limit_scope: ClassVar[str | None] = None

    def __init__(self) -> None:
        self.result: LimitResult | None = None

    # -- DRF's interface ----------------------------------------------------

    def allow_request(self, request: Any, view: Any) -> bool:
        self.result = None
        if not self.applies(request, view):
            return True
        scope = self.get_scope(view)
        if not scope:
            return True
        rate = self.get_rate(scope)
        if rate is None:
            return True
        rule = self.get_rule(scope, rate)
        if not rule.applies(request.method or "GET"):  # e.g. testing.disable_limits()
            return True
        result = rule.decide(request, rule.policy(rate))
        if result is None:  # no key for this request (say, an absent header)
            return True
        self.result = result
        _publish(request, view, result)
        return result.allowed

    def wait(self) -> float | None:
        """Seconds until the refused request could pass: DRF's ``Retry-After``."""
        result = self.result
        if result is None or result.allowed:
            return None
        return max(result.retry_after, 1.0)

    # -- hooks for subclasses -------------------------------------------------

    def applies(self, request: Any, view: Any) -> bool:
        """Whether this throttle limits the request at all (``AnonResilienceThrottle``)."""
        return True

    def get_scope(self, view: Any) -> str | None:
        return self.scope

    def get_rate(self, scope: str) -> Rate | None:
        """``rate``, else ``DEFAULT_THROTTLE_RATES[scope]``; ``None``: no limit, as in DRF."""
        raw = self.rate
        if raw is None:
            # Read per request, not at import: override_settings and DRF's
            # setting_changed reload must be seen.
            rates = api_settings.DEFAULT_THROTTLE_RATES
            if scope not in rates:
                raise ImproperlyConfigured(
                    f"No default throttle rate set for {scope!r} scope "
                    f"(REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'], {type(self).__name__})"
                )
            raw = rates[scope]
            if raw is None:
                return None
        try:
            return parse_drf_rate(raw)
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{type(self).__name__}: throttle rate for {scope!r}: {exc}"
            ) from exc

    def get_rule(self, scope: str, rate: Rate) -> StandaloneRule:
        # Rule names travel in headers and metric labels: keep them plain.
        name = "drf." + re.sub(r"[^A-Za-z0-9_.:/-]", "_", scope)[:96]
        fields: dict[str, Any] = {
            "name": name,
            "rate": rate,
            "key": self.key,
            "algorithm": self.algorithm,
            "scope": self.limit_scope,
        }
        if self.burst is not None:
            fields["burst"] = self.burst
        return _rules.get(fields, where=type(self).__name__)


class AnonResilienceThrottle(ResilienceThrottle):
    """DRF's ``AnonRateThrottle``: anonymous requests only, by IP (scope ``"anon"``)."""

    scope = "anon"
    key = "ip"

    def applies(self, request: Any, view: Any) -> bool:
        user = getattr(request, "user", None)
        return not (user is not None and user.is_authenticated)


class ScopedResilienceThrottle(ResilienceThrottle):
    """DRF's ``ScopedRateThrottle``: the view's ``throttle_scope``; views without one are free."""

    scope = None
    scope_attr: ClassVar[str] = "throttle_scope"

    def get_scope(self, view: Any) -> str | None:
        scope = getattr(view, self.scope_attr, None)
        return scope if isinstance(scope, str) and scope else None


class ResilienceRulesThrottle(BaseThrottle):  # type: ignore[misc]
    """Decides the ``RESILIENCE["LIMITS"]`` rules marked ``"after_auth": True``.

    All of a request's after-auth rules together, all-or-nothing, exactly as
    the middleware decides the others, but once DRF has authenticated the
    request, so ``user`` and ``user_or_ip`` keys see its user.
    """

    _lock = threading.Lock()
    _engine: ClassVar[tuple[Runtime, LimitEngine | None] | None] = None

    def __init__(self) -> None:
        self.result: LimitResult | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        self.result = None
        engine = self._engine_for(get_runtime())
        if engine is None:
            return True
        match = request.resolver_match
        result = engine.decide(
            request.method or "GET",
            request.path_info,
            request,
            match.view_name if match is not None else None,
        )
        if not result.decision.outcomes and (result.shadow is None or not result.shadow.outcomes):
            return True  # no after-auth rule matched
        self.result = result
        _publish(request, view, result)
        return result.allowed

    def wait(self) -> float | None:
        result = self.result
        if result is None or result.allowed:
            return None
        return max(result.retry_after, 1.0)

    @classmethod
    def _engine_for(cls, runtime: Runtime) -> LimitEngine | None:
        # Rebuilt with the runtime (settings change, admin edit), which keeps
        # its stores: counters survive the rebuild.
        cached = cls._engine
        if cached is not None and cached[0] is runtime:
            return cached[1]
        with cls._lock:
            rules = tuple(r for r in runtime.settings.limits if r.after_auth)
            stores = runtime.stores
            trusted = runtime.settings.trusted_proxies
            engine: LimitEngine | None = None
            if rules and stores.distributed is not None:
                engine = LimitEngine(
                    rules, stores.distributed, local=stores.local, trusted_proxies=trusted
                )
            elif rules:
                engine = LimitEngine(rules, stores.local, trusted_proxies=trusted)
            cls._engine = (runtime, engine)
        return engine
