"""``@limit``: a rate limit on one view, sync or async, on the middleware's engine.

>>> from resilience_django import limit
>>> @limit("10/s", key="user_or_ip")  # doctest: +SKIP
... def quote(request): ...

The rule is parsed when the view is decorated (a bad rate raises
``ConfigError`` at import, like any other programming error), and decided by
a ``LimitEngine`` over the process-wide ``LocalLimiter`` (``process_limiter``),
rebuilt when the settings change (``TRUSTED_PROXIES``, ``LOCAL_MAX_KEYS``).
A rejected request gets ``rate_limited_response`` (429); an admitted one
runs the view and, unless ``RESILIENCE["RATELIMIT_HEADERS"]`` is False, gets
the ``RateLimit-Policy``/``RateLimit`` headers.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from ..conf import get_settings, on_reload
from ..exceptions import ConfigError
from .engine import LimitEngine, LimitResult
from .headers import add_headers
from .local import LocalLimiter
from .proxies import TrustedProxies, parse_trusted_proxies
from .responses import rate_limited_response
from .rules import LimitRule, parse_limit_rule

__all__ = ["limit", "process_limiter", "trusted_proxies"]

View = TypeVar("View", bound=Callable[..., Any])

_lock = threading.Lock()
_limiter: LocalLimiter | None = None
_generation = 0


def _on_reload() -> None:
    global _limiter, _generation
    with _lock:
        _generation += 1
        _limiter = None


on_reload(_on_reload)


def process_limiter() -> LocalLimiter:
    """The process-wide local limiter (``RESILIENCE["LOCAL_MAX_KEYS"]`` keys, default 100,000)."""
    global _limiter
    limiter = _limiter
    if limiter is None:
        with _lock:
            if _limiter is None:
                settings = get_settings()
                max_keys = getattr(settings, "local_max_keys", None)
                if max_keys is None:
                    max_keys = settings.raw.get("LOCAL_MAX_KEYS", 100_000)
                ok = isinstance(max_keys, int) and not isinstance(max_keys, bool) and max_keys > 0
                _limiter = LocalLimiter(max_keys=max_keys if ok else 100_000)
            limiter = _limiter
    return limiter


def trusted_proxies() -> TrustedProxies | None:
    """``RESILIENCE["TRUSTED_PROXIES"]``; a bad value trusts no proxy (the check reports it)."""
    settings = get_settings()
    if hasattr(settings, "trusted_proxies"):  # parsed once with the settings
        trusted: TrustedProxies | None = settings.trusted_proxies
        return trusted
    try:
        return parse_trusted_proxies(settings.raw.get("TRUSTED_PROXIES"))
    except ConfigError:
        return None


class _Holder:
    """Builds the view's engine on first use and again after a settings reload."""

    __slots__ = ("_engine", "_generation", "rule")

    def __init__(self, rule: LimitRule) -> None:
        self.rule = rule
        self._engine: LimitEngine | None = None
        self._generation = -1

    def engine(self) -> LimitEngine:
        engine = self._engine
        if engine is None or self._generation != _generation:
            generation = _generation
            engine = LimitEngine((self.rule,), process_limiter(), trusted_proxies=trusted_proxies())
            self._engine, self._generation = engine, generation
        return engine


def _default_name(view: Callable[..., Any]) -> str:
    name = f"{view.__module__}.{view.__qualname__}"
    return re.sub(r"[^A-Za-z0-9_.:/-]", "_", name)[-100:]


def _with_headers(response: HttpResponseBase, result: LimitResult) -> HttpResponseBase:
    if get_settings().ratelimit_headers:
        add_headers(response, result.headers)
    return response


def limit(
    rate: str,
    key: str = "ip",
    *,
    algorithm: str = "sliding_window",
    burst: int | None = None,
    name: str | None = None,
    methods: Iterable[str] | None = None,
    mode: str = "enforce",
) -> Callable[[View], View]:
    """Limit a view to ``rate`` per ``key``; see the module docstring.

    ``methods`` restricts the limit to those HTTP methods; ``mode="shadow"``
    counts and reports without rejecting; ``name`` (default: the view's dotted
    path) names the rule in headers and metrics.
    """

    def decorate(view: View) -> View:
        spec: dict[str, Any] = {
            "name": name or _default_name(view),
            "rate": rate,
            "key": key,
            "algorithm": algorithm,
            "mode": mode,
        }
        if burst is not None:
            spec["burst"] = burst
        if methods is not None:
            spec["methods"] = list(methods)
        try:
            rule = parse_limit_rule(spec, index=0)
        except ConfigError as exc:
            raise ConfigError(
                f"@limit on {view.__qualname__}: {exc}", check_id=exc.check_id, hint=exc.hint
            ) from exc
        holder = _Holder(rule)

        if iscoroutinefunction(view):

            @wraps(view)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                result = await holder.engine().adecide(
                    request.method or "GET", request.path_info, request
                )
                if not result.allowed:
                    return rate_limited_response(request, result)
                return _with_headers(await view(request, *args, **kwargs), result)

            return async_view  # type: ignore[return-value]

        @wraps(view)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            result = holder.engine().decide(request.method or "GET", request.path_info, request)
            if not result.allowed:
                return rate_limited_response(request, result)
            return _with_headers(view(request, *args, **kwargs), result)

        return sync_view  # type: ignore[return-value]

    return decorate
