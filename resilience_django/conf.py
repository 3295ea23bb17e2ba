"""The ``RESILIENCE`` setting, parsed once into frozen dataclasses; parsing never raises: every
problem becomes a ``ConfigError`` in ``ResilienceSettings.errors`` (docs/architecture.md)."""

from __future__ import annotations

import logging
import re
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.core.signals import setting_changed

from . import switch
from .breakers.policy import BreakerPolicy, parse_breakers
from .deadline_policy import DeadlineSettings, RouteBudget
from .dotted import import_dotted
from .exceptions import ConfigError
from .limiting import redis_conn
from .limiting.fallback import FallbackSettings, parse_fallback_settings
from .limiting.proxies import (
    DEFAULT_IPV6_PREFIX,
    TrustedProxies,
    parse_ipv6_prefix,
    parse_trusted_proxies,
)
from .limiting.redis_conn import SENTINEL_ARGUMENTS, RedisSettings, parse_redis_settings
from .limiting.rules import LimitRule, parse_limit_rules
from .observability.config import MetricsSettings, parse_metrics
from .routes import RouteMatcher, compile_path
from .shedding.rules import SheddingRule, parse_shedding_rules
from .units import MAX_DEADLINE, MAX_LOCAL_KEYS, bounded_int, parse_duration, safe_repr

__all__ = [
    "DeadlineSettings",
    "FleetSettings",
    "ResilienceSettings",
    "RouteBudget",
    "get_settings",
    "parse_redis",
]

KNOWN_KEYS = frozenset(
    {
        "BACKEND", "REDIS", "FALLBACK_LATENCY", "FALLBACK", "DEADLINE", "TRUSTED_PROXIES",
        "IPV6_PREFIX", "LIMITS", "SHEDDING", "BREAKERS", "FLEET", "RESPONSE_HANDLERS",
        "RATELIMIT_HEADERS", "LOCAL_MAX_KEYS", "RELOAD_INTERVAL", "METRICS", "ADMIN_CHOICES",
    }
)  # fmt: skip
logger = logging.getLogger("resilience_django")
HANDLER_KINDS = ("deadline", "rate_limited", "unavailable")
DEADLINE_KEYS = ("DEFAULT", "EXEMPT_STREAMS", "HEADERS", "OUTBOUND_MARGIN", "ROUTES")
# A header name is a token (RFC 9110): "X-Timeout-Ms " or "x timeout" would never be read.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """``RESILIENCE["FLEET"]``, validated (``fleetstore/select.py`` chooses the store from it)."""

    enabled: bool = True
    url: str | None = None
    cache: str = "default"
    prefix: str = "resilience:fleet"
    ttl: float = 10.0
    # None: chosen by fleetstore/select.py (Redis > a shared cache > the database).
    store: str | None = None


FLEET_KEYS = frozenset({"ENABLED", "URL", "CACHE", "PREFIX", "TTL", "STORE"})
FLEET_STORES = ("redis", "cache", "database")
FLEET_CHECK_ID = "resilience.E042"
# A silent process stays listed this long at most; longer reads as a typo.
MAX_FLEET_TTL = MAX_DEADLINE


@dataclass(frozen=True, slots=True)
class ResilienceSettings:
    backend: str = "local"
    redis: Mapping[str, Any] = field(default_factory=dict)
    redis_settings: RedisSettings | None = None
    fallback_latency: float = 0.050
    fallback: FallbackSettings = field(default_factory=FallbackSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)
    deadline: DeadlineSettings = field(default_factory=DeadlineSettings)
    trusted_proxies: TrustedProxies | None = None
    limits: tuple[LimitRule, ...] = ()
    shedding: tuple[SheddingRule, ...] = ()
    breakers: Mapping[str, BreakerPolicy] = field(default_factory=dict)
    # Every name BREAKERS lists, its entry valid or not (a bad one runs on the defaults).
    breaker_names: tuple[str, ...] = ()
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    local_max_keys: int = 100_000
    reload_interval: float | None = 1.0
    response_handlers: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    ratelimit_headers: bool = True
    raw: Mapping[str, Any] = field(default_factory=dict)
    errors: tuple[ConfigError, ...] = ()

    def errors_of(self, key: str) -> tuple[ConfigError, ...]:
        """The errors found in ``RESILIENCE[key]`` (the admin shows them beside its rules)."""
        prefix = f"RESILIENCE[{key!r}]"
        return tuple(e for e in self.errors if str(e).startswith(prefix))


def _report(errors: list[ConfigError], message: str, check_id: str, hint: str) -> None:
    errors.append(ConfigError(message, check_id=check_id, hint=hint))


def _mapping(
    errors: list[ConfigError], raw: Any, where: str, check_id: str, hint: str
) -> Mapping[str, Any] | None:
    if isinstance(raw, Mapping):
        return raw
    _report(errors, f"{where} must be a dict, not {type(raw).__name__}", check_id, hint)
    return None


def _unknown_keys(
    errors: list[ConfigError], raw: Mapping[str, Any], known: Sequence[str], where: str, id_: str
) -> None:
    for key in raw:
        if key not in known:
            message = f"{where} has an unknown key {safe_repr(key)}"
            _report(errors, message, id_, f"Known keys: {', '.join(known)}.")


def _checked(
    errors: list[ConfigError],
    raw: Mapping[str, Any],
    where: str,
    key: str,
    default: Any,
    usable: Callable[[Any], object],
    check_id: str,
    must: str,
    hint: str,
) -> Any:
    """``raw[key]`` when ``usable``, else ``default`` and a check error."""
    value = raw.get(key, default)
    if usable(value):
        return value
    _report(errors, f"{where}[{key!r}] = {safe_repr(value)} {must}", check_id, hint)
    return default


def _duration(
    errors: list[ConfigError],
    value: Any,
    name: str,
    check_id: str,
    default: float | None,
    *,
    positive: bool = True,
    maximum: float = MAX_DEADLINE,
    why_positive: str = "a zero budget answers every request 504",
    none_ok: bool = False,
    hint: str = "",
) -> float | None:
    """``value`` in seconds (``None`` when ``none_ok`` and it is: off), or ``default`` and a
    check error naming ``RESILIENCE[name]``."""
    if value is None and none_ok:
        return None
    try:
        seconds = parse_duration(value, maximum=maximum)
        if positive and seconds <= 0:
            raise ValueError(f"it must be longer than zero ({why_positive})")
        return seconds
    except ValueError as exc:
        low = "longer than 0" if positive else "from 0"
        _report(errors, f"RESILIENCE[{name}] is not a usable duration: {exc}", check_id,
                hint or "Write durations as a number and a unit: '800ms', '30s', '5m'; "
                f"this one {low} up to {maximum:g}s.")  # fmt: skip
        return default


def _parse_deadline(raw: Any, errors: list[ConfigError]) -> DeadlineSettings:
    where = "RESILIENCE['DEADLINE']"
    hint = "Example: {'DEFAULT': '30s', 'ROUTES': {'/api/orders': '800ms'}}"
    if raw is None or (raw := _mapping(errors, raw, where, "resilience.E005", hint)) is None:
        return DeadlineSettings()
    _unknown_keys(errors, raw, DEADLINE_KEYS, where, "resilience.E005")
    default = _duration(errors, raw.get("DEFAULT", 30.0), "'DEADLINE']['DEFAULT'",
                        "resilience.E005", 30.0, none_ok=True)  # fmt: skip
    headers = _checked(errors, raw, where, "HEADERS",
        ("grpc-timeout", "x-timeout-ms"),
        lambda v: isinstance(v, list | tuple)
        and all(isinstance(h, str) and _HEADER_NAME.match(h) for h in v),
        "resilience.E006", "must be a list of header names", "Example: ['grpc-timeout', "
        "'X-Timeout-Ms']; use [] to ignore callers' budgets.")  # fmt: skip
    margin = _duration(errors, raw.get("OUTBOUND_MARGIN", 0.010), "'DEADLINE']['OUTBOUND_MARGIN'",
                       "resilience.E007", 0.010, positive=False)  # fmt: skip
    routes: list[RouteBudget] = []
    routes_raw = _mapping(errors, raw.get("ROUTES", {}), f"{where}['ROUTES']",
                          "resilience.E008", "A dict of route -> budget. Example: "
                          "{'/api/orders': '800ms', 'orders:quote': '300ms'}")  # fmt: skip
    for route, budget_raw in (routes_raw or {}).items():
        at = f"{where}['ROUTES'][{safe_repr(route)}]"
        budget = _duration(errors, budget_raw, at[11:-1], "resilience.E008", None)
        if budget is None:
            continue
        try:
            routes.append(RouteBudget(_route_key_matcher(route, at), budget, str(route)))
        except ConfigError as exc:
            errors.append(exc)
    return DeadlineSettings(
        default=default, headers=tuple(h.lower() for h in headers), routes=tuple(routes),
        outbound_margin=margin or 0.0,
        exempt_streams=_parse_exempt_streams(raw.get("EXEMPT_STREAMS", ()), errors),
    )  # fmt: skip


def _parse_exempt_streams(raw: Any, errors: list[ConfigError]) -> tuple[RouteMatcher, ...]:
    where = "RESILIENCE['DEADLINE']['EXEMPT_STREAMS']"
    hint = "A list of routes like the ROUTES keys: ['/api/events', 'reports:download']."
    if not isinstance(raw, list | tuple):
        _report(errors, f"{where} must be a list of routes", "resilience.E015", hint)
        return ()
    matchers: list[RouteMatcher] = []
    for route in raw:
        try:
            matchers.append(_route_key_matcher(route, f"{where} entry {safe_repr(route)}"))
        except ConfigError as exc:
            _report(errors, str(exc), "resilience.E015", hint)
    return tuple(matchers)


def _route_key_matcher(route: Any, where: str, *, allow_regex: bool = True) -> RouteMatcher:
    """A route key is a path prefix ('/...'), a regex ('^...') or a URL name."""
    if not isinstance(route, str) or not route:
        message = f"{where}: the route must be a path prefix, a regex or a URL name"
        hint = "Use '/api/orders', '^/api/orders/\\d+$' or 'orders:quote'."
        raise ConfigError(message, check_id="resilience.E008", hint=hint)
    if route.startswith(("/", "^")):
        prefix, regex = compile_path(
            route, where=where, check_id="resilience.E008", allow_regex=allow_regex
        )
        return RouteMatcher(prefix=prefix, regex=regex)
    return RouteMatcher(view=route)


def _parse_handlers(raw: Any, errors: list[ConfigError]) -> dict[str, Callable[..., Any]]:
    where = "RESILIENCE['RESPONSE_HANDLERS']"
    handlers: dict[str, Callable[..., Any]] = {}
    hint = f"Keys: {', '.join(HANDLER_KINDS)}; values: dotted paths to callables."
    if raw is None or (raw := _mapping(errors, raw, where, "resilience.E009", hint)) is None:
        return handlers
    _unknown_keys(errors, raw, HANDLER_KINDS, where, "resilience.E009")
    for kind, path in raw.items():
        if kind not in HANDLER_KINDS:
            continue
        try:
            handler = import_dotted(path) if isinstance(path, str) else path
            problem = None if callable(handler) else "is not callable"
        except ImportError as exc:
            problem = f"cannot be imported: {exc}"
        if problem is None:
            handlers[kind] = handler
        else:
            hint = "Give the dotted path of a callable(request, **info) -> HttpResponse."
            message = f"{where}[{kind!r}] = {safe_repr(path)} {problem}"
            _report(errors, message, "resilience.E009", hint)
    return handlers


_T = TypeVar("_T")
_D = TypeVar("_D")
# Marks an error that a parser failed to phrase (a bug): tests look for it.
UNEXPECTED = "could not be read"


def _guarded(
    errors: list[ConfigError], section: str, check_id: str, parse: Callable[[], _T], default: _D
) -> _T | _D:
    """``parse()``, or ``default`` with its ``ConfigError`` collected when it raised; anything
    else is a parser's bug, still a check error: the checks never raise (docs/checks.md)."""
    try:
        return parse() or default
    except ConfigError as exc:
        errors.append(exc)
    except Exception as exc:
        logger.warning("RESILIENCE[%r] could not be parsed", section, exc_info=True)
        message = f"{UNEXPECTED}: {type(exc).__name__}: {safe_repr(str(exc), 200)}"
        _report(errors, f"RESILIENCE[{section!r}] {message}", check_id,
                f"Check RESILIENCE[{section!r}] against docs/settings.md; "
                "this error should have been clearer, please report it.")  # fmt: skip
    return default


def parse_settings(raw: Any) -> ResilienceSettings:
    """Parse a ``RESILIENCE`` value; never raises."""
    from .admin_choices import check_admin_choices  # it imports this module

    raw = {} if raw is None else raw
    errors: list[ConfigError] = []
    hint = "Set RESILIENCE = {} to use every default."
    if _mapping(errors, raw, "RESILIENCE", "resilience.E001", hint) is None:
        return ResilienceSettings(errors=tuple(errors))
    _unknown_keys(errors, raw, sorted(KNOWN_KEYS), "RESILIENCE", "resilience.E002")
    backend = _checked(errors, raw, "RESILIENCE", "BACKEND", "local",
        lambda v: v in ("local", "redis"), "resilience.E003", "is not a backend",
        "Use 'local' (per process) or 'redis' (shared, with local fallback).")  # fmt: skip
    hint = "Use {'CACHE': 'default'} or {'URL': 'redis://127.0.0.1:6379/0'}."
    redis = _mapping(errors, raw.get("REDIS", {}), "RESILIENCE['REDIS']", "resilience.E004", hint)
    redis = redis or {}
    # A Redis for the fleet store too: REDIS's URL, or the redis backend's settings.
    redis_named = bool(redis.get("URL")) or (raw.get("BACKEND") == "redis" and bool(redis))
    fallback_latency = _duration(
        errors, raw.get("FALLBACK_LATENCY", 0.050), "'FALLBACK_LATENCY'", "resilience.E011", 0.050,
        maximum=redis_conn.MAX_TIMEOUT, why_positive="every Redis call would count as slow",
    ) or 0.050  # fmt: skip
    ratelimit_headers = _checked(errors, raw, "RESILIENCE", "RATELIMIT_HEADERS", True,
        lambda v: isinstance(v, bool), "resilience.E012", "must be True or False",
        "False stops RateLimit headers on admitted responses.")  # fmt: skip
    redis_settings: RedisSettings | None = None
    parse = lambda: parse_redis(redis, budget=fallback_latency)  # noqa: E731
    if backend == "redis":
        redis_settings = _guarded(errors, "REDIS", "resilience.E040", parse, None)
        backend = "local" if redis_settings is None else backend
    fallback = _guarded(errors, "FALLBACK", "resilience.E041",
        lambda: parse_fallback_settings(raw.get("FALLBACK")), FallbackSettings())  # fmt: skip
    # The IPv6 grouping rides on TrustedProxies: every `ip` key is built from it.
    ipv6_prefix = _guarded(errors, "IPV6_PREFIX", "resilience.E016",
        lambda: parse_ipv6_prefix(raw.get("IPV6_PREFIX", DEFAULT_IPV6_PREFIX)),
        DEFAULT_IPV6_PREFIX)  # fmt: skip
    trusted_proxies: TrustedProxies | None = _guarded(errors, "TRUSTED_PROXIES", "resilience.E010",
        lambda: parse_trusted_proxies(raw.get("TRUSTED_PROXIES"), ipv6_prefix), None)  # fmt: skip
    # A rule without a scope follows BACKEND: shared when Redis is configured.
    limits, limit_errors = _guarded(errors, "LIMITS", "resilience.E030", lambda: parse_limit_rules(
        raw.get("LIMITS"), default_scope="distributed" if backend == "redis" else "local"
    ), ((), ()))  # fmt: skip
    errors.extend(limit_errors)
    # Only None means "no rules": {} or 0 is a mistake, as it is for LIMITS.
    shedding_raw = raw.get("SHEDDING")
    shedding_raw = () if shedding_raw is None else shedding_raw
    if not isinstance(shedding_raw, list | tuple):
        hint = "Example: [{'name': 'orders', 'path': '/api/orders', 'max_concurrent': 50}]"
        _report(errors, "RESILIENCE['SHEDDING'] must be a list of rules", "resilience.E070", hint)
        shedding_raw = ()
    shedding, shedding_errors = _guarded(errors, "SHEDDING", "resilience.E070",
        lambda: parse_shedding_rules(shedding_raw), ((), ()))  # fmt: skip
    errors.extend(shedding_errors)
    breakers, breaker_errors = _guarded(errors, "BREAKERS", "resilience.E050",
        lambda: parse_breakers(raw.get("BREAKERS")), ({}, []))  # fmt: skip
    errors.extend(breaker_errors)
    breakers_raw = raw.get("BREAKERS")
    breakers_raw = breakers_raw if isinstance(breakers_raw, Mapping) else {}
    breaker_names = tuple(n for n in breakers_raw if isinstance(n, str) and n.strip())
    errors.extend(_guarded(errors, "ADMIN_CHOICES", "resilience.E085",
        lambda: check_admin_choices(raw.get("ADMIN_CHOICES")), []))  # fmt: skip
    local_max_keys = _checked(errors, raw, "RESILIENCE", "LOCAL_MAX_KEYS", 100_000,
        lambda v: bounded_int(v, minimum=1, maximum=MAX_LOCAL_KEYS) is not None,
        "resilience.E013", f"must be an integer from 1 to {MAX_LOCAL_KEYS:_}",
        "The most client keys the local limiter remembers (LRU); default 100000.")  # fmt: skip
    reload_interval = _duration(
        errors, raw.get("RELOAD_INTERVAL", 1.0), "'RELOAD_INTERVAL'", "resilience.E014", 1.0,
        none_ok=True, why_positive="None turns admin-defined rules off", hint="How often each "
        "process looks for admin changes, e.g. '1s'; None turns admin-defined rules off.",
    )  # fmt: skip
    parse_fleet = lambda: _parse_fleet(raw.get("FLEET"), errors, redis_named)  # noqa: E731
    fleet = _guarded(errors, "FLEET", FLEET_CHECK_ID, parse_fleet, FleetSettings())
    # Else only the fleet store reads REDIS, when FLEET names no other Redis or store (select.py
    # choose): checked by its parser; a stale REDIS that nothing reads passes.
    fleet_reads_redis = redis.get("URL") and not fleet.url and fleet.store in (None, "redis")
    if raw.get("BACKEND") != "redis" and fleet_reads_redis:
        found: list[ConfigError] = []
        _guarded(found, "REDIS", "resilience.E040", parse, None)
        for e in found:
            _report(errors, f"{e} (the fleet store uses it)", e.check_id, e.hint)
    return ResilienceSettings(
        backend=backend,
        redis=dict(redis),
        redis_settings=redis_settings,
        fallback_latency=fallback_latency,
        fallback=fallback,
        fleet=fleet,
        trusted_proxies=trusted_proxies,
        limits=limits,
        shedding=shedding,
        breakers=breakers,
        breaker_names=breaker_names,
        local_max_keys=local_max_keys,
        reload_interval=reload_interval,
        deadline=_guarded(errors, "DEADLINE", "resilience.E005",
            lambda: _parse_deadline(raw.get("DEADLINE"), errors), DeadlineSettings()),
        response_handlers=_guarded(errors, "RESPONSE_HANDLERS", "resilience.E009",
            lambda: _parse_handlers(raw.get("RESPONSE_HANDLERS"), errors), {}),
        ratelimit_headers=ratelimit_headers,
        # Anything unparseable falls back to the closed default: never an open endpoint.
        metrics=_guarded(errors, "METRICS", "resilience.E090",
            lambda: parse_metrics(raw.get("METRICS"), errors), MetricsSettings()),
        raw=raw,
        errors=tuple(errors),
    )  # fmt: skip


def _parse_fleet(raw: Any, errors: list[ConfigError], redis_named: bool) -> FleetSettings:
    """Validate ``RESILIENCE["FLEET"]``; each bad key is reported and left at its default.
    ``redis_named``: whether the rest of RESILIENCE gives the fleet store a Redis."""
    where, keys = "RESILIENCE['FLEET']", sorted(FLEET_KEYS)
    hint = f"Example: {{'CACHE': 'default', 'TTL': 10}}; keys: {', '.join(keys)}."
    if raw is None or (raw := _mapping(errors, raw, where, FLEET_CHECK_ID, hint)) is None:
        return FleetSettings()
    _unknown_keys(errors, raw, keys, where, FLEET_CHECK_ID)
    # Each key: whether a value is usable, what it must be, and what it is for.
    rules: tuple[tuple[str, Callable[[Any], object], str, str], ...] = (
        ("ENABLED", lambda v: isinstance(v, bool), "must be True or False",
         "False turns the fleet view off."),
        ("CACHE", lambda v: isinstance(v, str) and v in _caches(), "is not an alias in CACHES",
         "Name a cache alias from CACHES (used when FLEET has no URL), e.g. 'default'."),
        ("PREFIX", lambda v: isinstance(v, str) and v.strip() and len(v) <= 200,
         "must be a non-empty string (at most 200)",
         "The key prefix of the fleet's entries, e.g. 'resilience:fleet'."),
        # A plain number of seconds: fleet.py reads it with float().  (False for nan too.)
        ("TTL", lambda v: not isinstance(v, bool) and isinstance(v, int | float)
         and 0 < v <= MAX_FLEET_TTL,
         f"must be a number of seconds, above 0 and at most {MAX_FLEET_TTL:g}",
         "How long a process that stopped reporting stays listed, e.g. 10."),
        ("STORE", lambda v: v is None or v in FLEET_STORES,
         f"is not one of {', '.join(FLEET_STORES)}",
         "Leave it out to choose by itself (Redis, else a shared cache, else the database), "
         "or force one: 'redis', 'cache' or 'database'."),
    )  # fmt: skip
    defaults = FleetSettings()
    values = {
        key.lower(): _checked(errors, raw, where, key, getattr(defaults, key.lower()), usable,
                              FLEET_CHECK_ID, must, hint)
        for key, usable, must, hint in rules
    }  # fmt: skip
    url = raw.get("URL")
    problem = None if url is None else redis_conn.url_problem(url)
    values["url"] = None if problem else url
    if problem:
        message = f"{where}['URL'] = {redis_conn.shown_url(url)} {problem}"
        _report(errors, message, FLEET_CHECK_ID, redis_conn.URL_HINT)
    if values["store"] == "redis" and values["url"] is None and not redis_named:
        hint = "Give FLEET a 'URL', or set REDIS 'URL' (or BACKEND 'redis' with REDIS 'CACHE')."
        message = f"{where}['STORE'] is 'redis' but no Redis is configured"
        _report(errors, message, FLEET_CHECK_ID, hint)
        values["store"] = None
    return FleetSettings(**{**values, "ttl": float(values["ttl"])})


def _caches() -> Mapping[str, Any]:
    from django.conf import settings

    caches = getattr(settings, "CACHES", None)
    return caches if isinstance(caches, Mapping) else {}


def parse_redis(value: Mapping[str, Any] | None, *, budget: float) -> RedisSettings:
    """``RESILIENCE["REDIS"]`` as ``RedisSettings``, or ``ConfigError`` (E040); a ``CACHE`` alias
    is read from the ``CACHES`` setting, not the cache object, so a system check may call it."""
    value = dict(value or {"CACHE": "default"})
    alias = value.pop("CACHE", "default")
    if value.get("URL") is None:
        value["URL"], options = _url_from_cache(str(alias))
        for key in ("PASSWORD", "SENTINELS", "SENTINEL_KWARGS"):
            value[key] = value.get(key) or options.get(key)
    return parse_redis_settings(value, budget=budget)


def _url_from_cache(alias: str) -> tuple[str, Mapping[str, Any]]:
    """A django-redis cache's URL and ``OPTIONS``."""
    cache = _caches().get(alias)
    location = None if cache is None else cache.get("LOCATION")
    # Primary and replicas, a list or a string split on , ; (Django's RedisCache): the first.
    servers = re.split("[;,]", location) if isinstance(location, str) else location
    location = servers[0] if isinstance(servers, list | tuple) and servers else location
    if cache is None or not isinstance(location, str) or "://" not in location:
        problem = "which is not in CACHES"
        if cache is not None:
            problem = f"whose LOCATION {location!r} is not a Redis URL"
        hint = "Name a django-redis cache alias in CACHES, or give a URL instead."
        message = f"RESILIENCE['REDIS'] names cache {alias!r}, {problem}"
        raise ConfigError(message, check_id="resilience.E040", hint=hint)
    options = dict(cache.get("OPTIONS") or {})
    kwargs = options.get("SENTINEL_KWARGS")
    if isinstance(kwargs, Mapping):  # the sentinels get the limiter's timeouts and retries
        kwargs = {k: v for k, v in kwargs.items() if k in SENTINEL_ARGUMENTS}
        reqs = kwargs.get("ssl_cert_reqs", "")
        if reqs is None or isinstance(reqs, ssl.VerifyMode):  # redis-py's other spellings
            kwargs["ssl_cert_reqs"] = "none" if reqs is None else reqs.name[5:].lower()
        options["SENTINEL_KWARGS"] = kwargs
    return location, options


_lock = threading.Lock()
_cached: ResilienceSettings | None = None
_listeners: list[Callable[[], None]] = []


def get_settings() -> ResilienceSettings:
    """The parsed ``RESILIENCE`` setting, parsed on first use and cached."""
    global _cached
    settings_value = _cached
    if settings_value is None:
        from django.conf import settings

        with _lock:
            if _cached is None:
                _cached = parse_settings(getattr(settings, "RESILIENCE", {}))
            settings_value = _cached
        # Outside the lock: wiring reads the settings (docs/architecture.md).
        from .wiring import connect

        connect()
    return settings_value


def on_reload(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the settings are re-read (engines rebuild their state)."""
    _listeners.append(callback)


def reset_settings() -> None:
    global _cached
    with _lock:
        _cached = None
    for callback in list(_listeners):
        callback()


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("RESILIENCE", "CACHES", "ROOT_URLCONF"):
        reset_settings()
    if setting == "RESILIENCE":
        # A test's override_settings(RESILIENCE=...) starts from no counts and breaker
        # states; the fleet thread starts again on the new settings at the next breaker.
        from .fleet import stop as stop_fleet
        from .testing.reset import reset_state

        reset_state()
        stop_fleet()


setting_changed.connect(_setting_changed, dispatch_uid="resilience_django.conf")
# disable_limits() (testing) rebuilds the engines without limits: they read the switch once.
switch.on_change(reset_settings)
