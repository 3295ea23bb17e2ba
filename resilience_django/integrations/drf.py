"""Django REST framework throttles on this package's limiters, decided where DRF decides its
own: after authentication, so ``user`` keys see DRF's user (docs/drf.md)."""

from __future__ import annotations

import functools
import re
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings  # type: ignore[import-untyped]
from rest_framework.throttling import BaseThrottle  # type: ignore[import-untyped]

from ..conf import get_settings
from ..limiting.engine import LimitEngine, LimitResult, merge_results
from ..runtime import STATE_ATTR, Runtime, get_runtime
from ..units import Rate, parse_rate
from ..view_limits.decorator import DECISION_ATTR
from ..view_limits.standalone import StandaloneRule, shared_rule

__all__ = [
    "AnonResilienceThrottle",
    "ResilienceRulesThrottle",
    "ResilienceThrottle",
    "ScopedResilienceThrottle",
    "parse_drf_rate",
]

_DRF_RATE = re.compile(r"\s*(\d+)\s*/\s*([A-Za-z]+)\s*\Z")


def parse_drf_rate(value: str) -> Rate:
    """``"100/min"``, ``"10/second"``: as in DRF, a word unit counts by its first letter
    (``"5/ms"`` is 5 per minute); ours work too (``"100/30s"``).  Raises ``ValueError``."""
    match = _DRF_RATE.match(value) if isinstance(value, str) else None
    if match is not None:
        unit = match.group(2)[0].lower()
        if unit in "smhd":
            return parse_rate(f"{match.group(1)}/{unit}")
    return parse_rate(value)


class _Throttle(BaseThrottle):  # type: ignore[misc]
    def __init__(self) -> None:
        self.result: LimitResult | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        self.result = result = self._decide(request, view)
        if result is None:
            return True
        allowed = result.allowed
        # Merged into the middleware's decision (its headers are written after the view) or an
        # earlier throttle's, so neither hides the other; DRF adds view.headers to its response.
        state = getattr(request, STATE_ATTR, None)
        if state is not None and state.limits is not None:
            state.limits = result = merge_results(state.limits, result)
        elif isinstance(previous := getattr(request, DECISION_ATTR, None), LimitResult):
            result = merge_results(previous, result)
        setattr(request, DECISION_ATTR, result)
        headers = getattr(view, "headers", None)
        if isinstance(headers, dict) and (not result.allowed or get_settings().ratelimit_headers):
            headers.update(result.headers)
        return allowed

    def wait(self) -> float | None:
        """Seconds until the refused request could pass: DRF's ``Retry-After``."""
        result = self.result
        return None if result is None or result.allowed else max(result.retry_after, 1.0)

    def _decide(self, request: Any, view: Any) -> LimitResult | None:
        raise NotImplementedError  # None: nothing limits this request


class ResilienceThrottle(_Throttle):
    """DRF's ``UserRateThrottle`` on our limiters: the user's pk, or the IP when anonymous;
    subclasses set the class attributes below (docs/drf.md, "Choosing the key")."""

    scope: ClassVar[str | None] = "user"
    rate: ClassVar[str | None] = None
    key: ClassVar[str] = "user_or_ip"
    algorithm: ClassVar[str] = "sliding_window"
    burst: ClassVar[int | None] = None
    limit_scope: ClassVar[str | None] = None

    def _decide(self, request: Any, view: Any) -> LimitResult | None:
        scope = self.get_scope(view) if self.applies(request, view) else None
        rate = self.get_rate(scope) if scope else None
        if scope is None or rate is None:
            return None
        rule = self.get_rule(scope, rate)
        if not rule.applies(request.method or "GET"):  # e.g. testing.disable_limits()
            return None
        return rule.decide(request, rule.policy(rate))  # None: no key (say, an absent header)

    def applies(self, request: Any, view: Any) -> bool:
        """Whether this throttle limits the request at all (``AnonResilienceThrottle``)."""
        return True

    def get_scope(self, view: Any) -> str | None:
        return self.scope

    def get_rate(self, scope: str) -> Rate | None:
        """``rate``, else ``DEFAULT_THROTTLE_RATES[scope]``; ``None``: no limit, as in DRF."""
        raw = self.rate
        if raw is None:
            rates = api_settings.DEFAULT_THROTTLE_RATES  # per request: override_settings
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
        fields: dict[str, Any] = {"name": name, "rate": rate, "key": self.key}
        fields.update(algorithm=self.algorithm, scope=self.limit_scope)
        if self.burst is not None:
            fields["burst"] = self.burst
        where = type(self).__name__
        return shared_rule(
            ("drf", *sorted(fields.items())), lambda: StandaloneRule(fields, where=where)
        )


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


class ResilienceRulesThrottle(_Throttle):
    """Decides the ``RESILIENCE["LIMITS"]`` rules marked ``"after_auth": True``, all or nothing,
    as the middleware decides the others, once DRF has authenticated the request."""

    def _decide(self, request: Any, view: Any) -> LimitResult | None:
        engine = _after_auth_engine(get_runtime())
        if engine is None:
            return None
        match = request.resolver_match
        view_name = match.view_name if match is not None else None
        result = engine.decide(request.method or "GET", request.path_info, request, view_name)
        if not result.decision.outcomes and (result.shadow is None or not result.shadow.outcomes):
            return None  # no after-auth rule matched
        return result


@functools.lru_cache(maxsize=1)
def _after_auth_engine(runtime: Runtime) -> LimitEngine | None:
    # Rebuilt with the runtime, which keeps its stores: counters survive the rebuild.
    rules = tuple(r for r in runtime.settings.limits if r.after_auth)
    return runtime.stores.engine(rules, runtime.settings) if rules else None
