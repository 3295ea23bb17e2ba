"""``@limit``: a rate limit on one view, sync or async (docs/limits.md, "One view")."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from ..conf import get_settings
from ..limiting.engine import LimitResult, merge_results
from ..limiting.local import LocalLimiter
from ..responses import add_headers, rate_limited_response
from ..runtime import SCOPE_LIMITS, STATE_ATTR, get_runtime
from .compat import (
    ALL,
    RateSpec,
    default_group,
    make_rule,
    method_list,
    rule_policy,
)

__all__ = ["DECISION_ATTR", "limit", "process_limiter"]

View = TypeVar("View", bound=Callable[..., Any])

# The request attribute holding the last @limit decision (a LimitResult).
DECISION_ATTR = "resilience_decision"


def process_limiter() -> LocalLimiter:
    """The process's local limiter: the one the middleware's rules and ``@limit`` share."""
    return get_runtime().stores.local


def _with_headers(request: Any, response: Any, result: LimitResult | None) -> Any:
    if result is None or not isinstance(response, HttpResponseBase):
        return response
    if get_settings().ratelimit_headers:
        add_headers(response, result.headers)
        _headers_on_response(request)
    return response


def _headers_on_response(request: Any) -> None:
    """This response carries ``RateLimit`` headers: take ``ResilienceASGIMiddleware``'s arrival
    decision back, so the middleware writes its own (replacing these), not a second line."""
    scope = getattr(request, "scope", None)
    if scope is not None and scope.get(SCOPE_LIMITS) is not None:
        scope[SCOPE_LIMITS] = None


def _refusal(request: Any, result: LimitResult | None, block: bool) -> Any:
    """Mark the request with the decision; the 429 to answer, if any."""
    limited = result is not None and not result.allowed
    # As django-ratelimit: once a decorator found the request limited, it
    # stays limited for the decorators and the view after it.
    request.limited = getattr(request, "limited", False) or limited
    if result is None:
        return None
    setattr(request, DECISION_ATTR, result)
    # Merged into ResilienceMiddleware's decision, whose headers replace ours after the view.
    state = getattr(request, STATE_ATTR, None)
    if state is not None and state.limits is not None:
        state.limits = merge_results(state.limits, result)
    if not (block and limited):
        return None
    _headers_on_response(request)
    return rate_limited_response(request, result)


def limit(
    rate: RateSpec, key: Any = "ip", *, group: str | None = None, name: str | None = None,
    algorithm: str = "sliding_window", burst: int | None = None,
    methods: Iterable[str] | tuple[None] | None = None, method: Any = ALL, mode: str = "enforce",
    scope: str | None = None, block: bool = True,
) -> Callable[[View], View]:  # fmt: skip
    """Limit a view to ``rate`` per ``key``; every argument: docs/limits.md ("One view")."""
    if group is not None and name is not None and group != name:
        raise TypeError("@limit: pass group= or name= (they are the same), not both")
    if methods is not None and method_list(method) is not None:
        raise TypeError("@limit: pass methods= or method= (they are the same), not both")
    chosen = method_list(method if methods is None else methods)  # as method=: one name, ALL too

    def decorate(view: View) -> View:
        counter = group or name or default_group(view)
        where = f"@limit on {view.__qualname__}"
        # A rate function is asked per request; the rule needs a rate to parse.
        fixed_rate = "1/s" if callable(rate) else rate
        rule = make_rule(counter, key, fixed_rate, where=where, algorithm=algorithm,
                         burst=burst, scope=scope, methods=chosen, mode=mode)  # fmt: skip
        fixed, computed = rule_policy(rule, rate, counter)

        if iscoroutinefunction(view):

            @wraps(view)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                result = None
                if rule.applies(request.method or "GET"):
                    policy = fixed if computed is None else await computed[1](request)
                    result = await rule.adecide(request, policy)
                if (refused := _refusal(request, result, block)) is not None:
                    return refused
                return _with_headers(request, await view(request, *args, **kwargs), result)

            return async_view  # type: ignore[return-value]

        @wraps(view)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            result = None
            if rule.applies(request.method or "GET"):
                policy = fixed if computed is None else computed[0](request)
                result = rule.decide(request, policy)
            if (refused := _refusal(request, result, block)) is not None:
                return refused
            return _with_headers(request, view(request, *args, **kwargs), result)

        return sync_view  # type: ignore[return-value]

    return decorate
