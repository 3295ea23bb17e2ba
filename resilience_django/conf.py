"""The ``RESILIENCE`` setting, parsed once into frozen dataclasses.

The one parser of ``RESILIENCE``: every key (``FLEET`` and ``METRICS``
included) is read here, into one ``ResilienceSettings``, with one cache and
one ``setting_changed`` receiver; the system checks (``checks.py``) report
the errors of this same parse, and the admin's rows go through the same rule
parsers (``live/rules.py``).  Each key's parser lives beside what it
configures (``limiting/rules.py``, ``breakers/policy.py``, ...), framework-free;
reading Django's other settings (``CACHES``) is done here.

Parsing never raises: every problem becomes a ``ConfigError`` kept in
``ResilienceSettings.errors`` and reported by the system checks, while the
parts that did parse stay usable.  The parsed value is cached and dropped on
Django's ``setting_changed`` signal so that ``override_settings`` works in
tests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.core.signals import setting_changed

from . import switch
from .admin_choices import check_admin_choices
from .breakers.policy import BreakerPolicy, parse_breakers
from .deadline_policy import DeadlineSettings, RouteBudget
from .dotted import import_dotted
from .exceptions import ConfigError
from .limiting.fallback import FallbackSettings, parse_fallback_settings
from .limiting.proxies import (
    DEFAULT_IPV6_PREFIX,
    TrustedProxies,
    parse_ipv6_prefix,
    parse_trusted_proxies,
)
from .limiting.redis_conn import RedisSettings, parse_redis_settings
from .limiting.rules import LimitRule, parse_limit_rules
from .observability.config import MetricsSettings, parse_metrics
from .routes import RouteMatcher, compile_path
from .shedding.rules import SheddingRule, parse_shedding_rules
from .units import (
    MAX_DEADLINE,
    MAX_DURATION,
    MAX_LOCAL_KEYS,
    bounded_int,
    parse_duration,
    safe_repr,
)

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
        "BACKEND",
        "REDIS",
        "FALLBACK_LATENCY",
        "FALLBACK",
        "DEADLINE",
        "TRUSTED_PROXIES",
        "IPV6_PREFIX",
        "LIMITS",
        "SHEDDING",
        "BREAKERS",
        "FLEET",
        "RESPONSE_HANDLERS",
        "RATELIMIT_HEADERS",
        "LOCAL_MAX_KEYS",
        "RELOAD_INTERVAL",
        "METRICS",
        "ADMIN_CHOICES",
    }
)
logger = logging.getLogger("resilience_django")
HANDLER_KINDS = ("deadline", "rate_limited", "unavailable")


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
FALLBACK_LATENCY_MAX = 60.0


def route_breakers(settings: ResilienceSettings) -> tuple[tuple[str, RouteMatcher], ...]:
    """``(breaker name, matcher)`` for the breakers that guard routes, in settings order."""
    return tuple(
        (name, policy.route)
        for name, policy in settings.breakers.items()
        if policy.route is not None
    )


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


def _parse_duration_setting(
    value: Any,
    *,
    name: str,
    check_id: str,
    errors: list[ConfigError],
    default: float | None,
    positive: bool = False,
    maximum: float = MAX_DURATION,
    why_positive: str = "a zero budget answers every request 504",
) -> float | None:
    try:
        seconds = parse_duration(value, maximum=maximum)
        if positive and seconds <= 0:
            raise ValueError(f"it must be longer than zero ({why_positive})")
        return seconds
    except ValueError as exc:
        low = "longer than 0" if positive else "from 0"
        errors.append(
            ConfigError(
                f"RESILIENCE[{name}] is not a usable duration: {exc}",
                check_id=check_id,
                hint="Write durations as a number and a unit: '800ms', '30s', '5m'; "
                f"this one {low} up to {maximum:g}s.",
            )
        )
        return default


def _parse_deadline(raw: Any, errors: list[ConfigError]) -> DeadlineSettings:
    if raw is None:
        return DeadlineSettings()
    if not isinstance(raw, Mapping):
        errors.append(
            ConfigError(
                f"RESILIENCE['DEADLINE'] must be a dict, not {type(raw).__name__}",
                check_id="resilience.E005",
                hint="Example: {'DEFAULT': '30s', 'ROUTES': {'/api/orders': '800ms'}}",
            )
        )
        return DeadlineSettings()
    default: float | None = 30.0
    if "DEFAULT" in raw:
        default = (
            None
            if raw["DEFAULT"] is None
            else _parse_duration_setting(
                raw["DEFAULT"],
                name="'DEADLINE']['DEFAULT'",
                check_id="resilience.E005",
                errors=errors,
                default=30.0,
                positive=True,
                maximum=MAX_DEADLINE,
            )
        )
    headers: tuple[str, ...] = ("grpc-timeout", "x-timeout-ms")
    if "HEADERS" in raw:
        value = raw["HEADERS"]
        if isinstance(value, list | tuple) and all(isinstance(h, str) and h.strip() for h in value):
            headers = tuple(h.lower() for h in value)
        else:
            errors.append(
                ConfigError(
                    f"RESILIENCE['DEADLINE']['HEADERS'] = {value!r} must be a list of header names",
                    check_id="resilience.E006",
                    hint="Example: ['grpc-timeout', 'X-Timeout-Ms']; "
                    "use [] to ignore callers' budgets.",
                )
            )
    margin = 0.010
    if "OUTBOUND_MARGIN" in raw:
        margin = (
            _parse_duration_setting(
                raw["OUTBOUND_MARGIN"],
                name="'DEADLINE']['OUTBOUND_MARGIN'",
                check_id="resilience.E007",
                errors=errors,
                default=0.010,
                maximum=MAX_DEADLINE,
            )
            or 0.0
        )
    routes: list[RouteBudget] = []
    routes_raw = raw.get("ROUTES", {})
    if not isinstance(routes_raw, Mapping):
        errors.append(
            ConfigError(
                "RESILIENCE['DEADLINE']['ROUTES'] must be a dict of route -> budget",
                check_id="resilience.E008",
                hint="Example: {'/api/orders': '800ms', 'orders:quote': '300ms'}",
            )
        )
        routes_raw = {}
    for route, budget_raw in routes_raw.items():
        where = f"RESILIENCE['DEADLINE']['ROUTES'][{route!r}]"
        budget = _parse_duration_setting(
            budget_raw,
            name=where[11:-1],
            check_id="resilience.E008",
            errors=errors,
            default=None,
            positive=True,
            maximum=MAX_DEADLINE,
        )
        if budget is None:
            continue
        try:
            matcher = _route_key_matcher(route, where)
        except ConfigError as exc:
            errors.append(exc)
            continue
        routes.append(RouteBudget(matcher=matcher, budget=budget, label=str(route)))
    return DeadlineSettings(
        default=default, headers=headers, routes=tuple(routes), outbound_margin=margin,
        exempt_streams=_parse_exempt_streams(raw.get("EXEMPT_STREAMS", ()), errors),
    )  # fmt: skip


def _parse_exempt_streams(raw: Any, errors: list[ConfigError]) -> tuple[RouteMatcher, ...]:
    where = "RESILIENCE['DEADLINE']['EXEMPT_STREAMS']"
    hint = "A list of routes like the ROUTES keys: ['/api/events', 'reports:download']."
    if isinstance(raw, str) or not isinstance(raw, list | tuple):
        errors.append(
            ConfigError(f"{where} must be a list of routes", check_id="resilience.E015", hint=hint)
        )
        return ()
    matchers: list[RouteMatcher] = []
    for route in raw:
        try:
            matchers.append(_route_key_matcher(route, f"{where} entry {route!r}"))
        except ConfigError as exc:
            errors.append(ConfigError(str(exc), check_id="resilience.E015", hint=hint))
    return tuple(matchers)


def _route_key_matcher(route: Any, where: str) -> RouteMatcher:
    """A route key is a path prefix ('/...'), a regex ('^...') or a URL name."""
    if not isinstance(route, str) or not route:
        raise ConfigError(
            f"{where}: the route must be a path prefix, a regex or a URL name",
            check_id="resilience.E008",
            hint="Use '/api/orders', '^/api/orders/\\d+$' or 'orders:quote'.",
        )
    if route.startswith(("/", "^")):
        prefix, regex = compile_path(route, where=where, check_id="resilience.E008")
        return RouteMatcher(prefix=prefix, regex=regex)
    return RouteMatcher(view=route)


def _parse_handlers(raw: Any, errors: list[ConfigError]) -> dict[str, Callable[..., Any]]:
    handlers: dict[str, Callable[..., Any]] = {}
    if raw is None:
        return handlers
    if not isinstance(raw, Mapping):
        errors.append(
            ConfigError(
                "RESILIENCE['RESPONSE_HANDLERS'] must be a dict",
                check_id="resilience.E009",
                hint=f"Keys: {', '.join(HANDLER_KINDS)}; values: dotted paths to callables.",
            )
        )
        return handlers
    for kind, path in raw.items():
        if kind not in HANDLER_KINDS:
            errors.append(
                ConfigError(
                    f"RESILIENCE['RESPONSE_HANDLERS'] has an unknown key {kind!r}",
                    check_id="resilience.E009",
                    hint=f"Known keys: {', '.join(HANDLER_KINDS)}.",
                )
            )
            continue
        try:
            handler = import_dotted(path) if isinstance(path, str) else path
        except ImportError as exc:
            errors.append(
                ConfigError(
                    f"RESILIENCE['RESPONSE_HANDLERS'][{kind!r}] = {path!r} "
                    f"cannot be imported: {exc}",
                    check_id="resilience.E009",
                    hint="Give the dotted path of a callable(request, **info) -> HttpResponse.",
                )
            )
            continue
        if not callable(handler):
            errors.append(
                ConfigError(
                    f"RESILIENCE['RESPONSE_HANDLERS'][{kind!r}] = {path!r} is not callable",
                    check_id="resilience.E009",
                    hint="Give the dotted path of a callable(request, **info) -> HttpResponse.",
                )
            )
            continue
        handlers[kind] = handler
    return handlers


def parse_settings(raw: Any) -> ResilienceSettings:
    """Parse a ``RESILIENCE`` value; never raises."""
    errors: list[ConfigError] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        errors.append(
            ConfigError(
                f"RESILIENCE must be a dict, not {type(raw).__name__}",
                check_id="resilience.E001",
                hint="Set RESILIENCE = {} to use every default.",
            )
        )
        return ResilienceSettings(errors=tuple(errors))
    for key in raw:
        if key not in KNOWN_KEYS:
            errors.append(
                ConfigError(
                    f"RESILIENCE has an unknown key {safe_repr(key)}",
                    check_id="resilience.E002",
                    hint=f"Known keys: {', '.join(sorted(KNOWN_KEYS))}.",
                )
            )
    backend = raw.get("BACKEND", "local")
    if backend not in ("local", "redis"):
        errors.append(
            ConfigError(
                f"RESILIENCE['BACKEND'] = {safe_repr(backend)} is not a backend",
                check_id="resilience.E003",
                hint="Use 'local' (per process) or 'redis' (shared, with local fallback).",
            )
        )
        backend = "local"
    redis = raw.get("REDIS", {})
    if not isinstance(redis, Mapping):
        errors.append(
            ConfigError(
                "RESILIENCE['REDIS'] must be a dict",
                check_id="resilience.E004",
                hint="Use {'CACHE': 'default'} or {'URL': 'redis://127.0.0.1:6379/0'}.",
            )
        )
        redis = {}
    fallback_latency = _parse_duration_setting(
        raw.get("FALLBACK_LATENCY", 0.050),
        name="'FALLBACK_LATENCY'",
        check_id="resilience.E011",
        errors=errors,
        default=0.050,
        positive=True,
        maximum=FALLBACK_LATENCY_MAX,
        why_positive="every Redis call would count as slow",
    )
    ratelimit_headers = raw.get("RATELIMIT_HEADERS", True)
    if not isinstance(ratelimit_headers, bool):
        errors.append(
            ConfigError(
                "RESILIENCE['RATELIMIT_HEADERS'] must be True or False",
                check_id="resilience.E012",
                hint="False stops RateLimit headers on admitted responses.",
            )
        )
        ratelimit_headers = True
    fallback_latency = fallback_latency or 0.050
    redis_settings: RedisSettings | None = None
    # Only the redis backend uses REDIS: a test settings file that switches to
    # "local" and keeps REDIS pointing at a cache that is now LocMem must run.
    if backend == "redis":
        budget = fallback_latency
        redis_settings = _guarded(
            errors, "REDIS", "resilience.E040", lambda: parse_redis(redis, budget=budget)
        )
        if redis_settings is None:
            backend = "local"
    fallback = (
        _guarded(
            errors,
            "FALLBACK",
            "resilience.E041",
            lambda: parse_fallback_settings(raw.get("FALLBACK")),
        )
        or FallbackSettings()
    )
    # The IPv6 grouping rides on TrustedProxies: every `ip` key is built from it.
    ipv6_prefix = (
        _guarded(
            errors,
            "IPV6_PREFIX",
            "resilience.E016",
            lambda: parse_ipv6_prefix(raw.get("IPV6_PREFIX", DEFAULT_IPV6_PREFIX)),
        )
        or DEFAULT_IPV6_PREFIX
    )
    trusted_proxies: TrustedProxies | None = _guarded(
        errors,
        "TRUSTED_PROXIES",
        "resilience.E010",
        lambda: parse_trusted_proxies(raw.get("TRUSTED_PROXIES"), ipv6_prefix),
    )
    limits, limit_errors = _guarded(
        errors,
        "LIMITS",
        "resilience.E030",
        # A rule without a scope follows BACKEND: shared when Redis is configured.
        lambda: parse_limit_rules(
            raw.get("LIMITS"), default_scope="distributed" if backend == "redis" else "local"
        ),
    ) or ((), ())
    errors.extend(limit_errors)
    shedding_raw = raw.get("SHEDDING") or ()
    if isinstance(shedding_raw, list | tuple):
        shedding, shedding_errors = _guarded(
            errors, "SHEDDING", "resilience.E070", lambda: parse_shedding_rules(shedding_raw)
        ) or ((), ())
        errors.extend(shedding_errors)
    else:
        shedding = ()
        errors.append(
            ConfigError(
                "RESILIENCE['SHEDDING'] must be a list of rules",
                check_id="resilience.E070",
                hint="Example: [{'name': 'orders', 'path': '/api/orders', 'max_concurrent': 50}]",
            )
        )
    breakers, breaker_errors = _guarded(
        errors, "BREAKERS", "resilience.E050", lambda: parse_breakers(raw.get("BREAKERS"))
    ) or ({}, [])
    errors.extend(breaker_errors)
    breakers_raw = raw.get("BREAKERS")
    breaker_names = (
        tuple(n for n in breakers_raw if isinstance(n, str) and n.strip())
        if isinstance(breakers_raw, Mapping)
        else ()
    )
    errors.extend(
        _guarded(
            errors,
            "ADMIN_CHOICES",
            "resilience.E085",
            lambda: check_admin_choices(raw.get("ADMIN_CHOICES")),
        )
        or ()
    )
    local_max_keys = bounded_int(
        raw.get("LOCAL_MAX_KEYS", 100_000), minimum=1, maximum=MAX_LOCAL_KEYS
    )
    if local_max_keys is None:
        errors.append(
            ConfigError(
                f"RESILIENCE['LOCAL_MAX_KEYS'] = {safe_repr(raw.get('LOCAL_MAX_KEYS'))} must be "
                f"an integer from 1 to {MAX_LOCAL_KEYS:_}",
                check_id="resilience.E013",
                hint="The most client keys the local limiter remembers (LRU); default 100000.",
            )
        )
        local_max_keys = 100_000
    reload_interval: float | None = 1.0
    if "RELOAD_INTERVAL" in raw:
        reload_interval = (
            None
            if raw["RELOAD_INTERVAL"] is None
            else _parse_duration_setting(
                raw["RELOAD_INTERVAL"],
                name="'RELOAD_INTERVAL'",
                check_id="resilience.E014",
                errors=errors,
                default=1.0,
                maximum=MAX_DEADLINE,
            )
        )
        if reload_interval == 0:
            errors.append(
                ConfigError(
                    "RESILIENCE['RELOAD_INTERVAL'] must be longer than zero",
                    check_id="resilience.E014",
                    hint="How often each process looks for admin changes, e.g. '1s'; "
                    "None turns admin-defined rules off.",
                )
            )
            reload_interval = 1.0
    return ResilienceSettings(
        backend=backend,
        redis=dict(redis),
        redis_settings=redis_settings,
        fallback_latency=fallback_latency,
        fallback=fallback,
        fleet=_guarded(
            errors, "FLEET", FLEET_CHECK_ID, lambda: _parse_fleet(raw.get("FLEET"), errors, raw)
        )
        or FleetSettings(),
        trusted_proxies=trusted_proxies,
        limits=limits,
        shedding=shedding,
        breakers=breakers,
        breaker_names=breaker_names,
        local_max_keys=local_max_keys,
        reload_interval=reload_interval,
        deadline=_guarded(
            errors,
            "DEADLINE",
            "resilience.E005",
            lambda: _parse_deadline(raw.get("DEADLINE"), errors),
        )
        or DeadlineSettings(),
        response_handlers=_guarded(
            errors,
            "RESPONSE_HANDLERS",
            "resilience.E009",
            lambda: _parse_handlers(raw.get("RESPONSE_HANDLERS"), errors),
        )
        or {},
        ratelimit_headers=ratelimit_headers,
        # Anything unparseable falls back to the closed default: never an open endpoint.
        metrics=_guarded(
            errors, "METRICS", "resilience.E090", lambda: parse_metrics(raw.get("METRICS"), errors)
        )
        or MetricsSettings(),
        raw=raw,
        errors=tuple(errors),
    )


_T = TypeVar("_T")
# Marks an error that a parser failed to phrase (a bug): tests look for it.
UNEXPECTED = "could not be read"


def _guarded(
    errors: list[ConfigError], section: str, check_id: str, parse: Callable[[], _T]
) -> _T | None:
    """``parse()``, with its ``ConfigError`` collected; ``None`` when it raised.

    Anything else it raises is a bug in a parser, and still a check error
    rather than a traceback out of ``manage.py check``: the checks never raise,
    whatever the settings hold.
    """
    try:
        return parse()
    except ConfigError as exc:
        errors.append(exc)
    except Exception as exc:
        logger.warning("RESILIENCE[%r] could not be parsed", section, exc_info=True)
        errors.append(
            ConfigError(
                f"RESILIENCE[{section!r}] {UNEXPECTED}: {type(exc).__name__}: "
                f"{safe_repr(str(exc), 200)}",
                check_id=check_id,
                hint=f"Check RESILIENCE[{section!r}] against docs/settings.md; "
                "this error should have been clearer, please report it.",
            )
        )
    return None


def _fleet_error(message: str, hint: str) -> ConfigError:
    return ConfigError(f"RESILIENCE['FLEET']{message}", check_id=FLEET_CHECK_ID, hint=hint)


def _fleet_url(url: object) -> str:
    """A Redis URL the fleet store can connect to, or ``ConfigError``."""
    hint = "Write it like 'redis://127.0.0.1:6379/0' (or rediss://, unix://)."
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise _fleet_error(f"['URL'] = {safe_repr(url)} is not a Redis URL", hint)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise _fleet_error(f"['URL'] = {safe_repr(url)} is not a Redis URL: {exc}", hint) from None
    if parts.scheme != "unix" and not parts.hostname:
        raise _fleet_error(f"['URL'] = {safe_repr(url)} has no host", hint)
    if parts.scheme == "unix" and not parts.path:
        raise _fleet_error(f"['URL'] = {safe_repr(url)} has no socket path", hint)
    return url


def _parse_fleet(raw: Any, errors: list[ConfigError], root: Any = None) -> FleetSettings:
    """Validate ``RESILIENCE["FLEET"]``; each bad key is reported and left at its default."""
    if raw is None:
        return FleetSettings()
    keys = ", ".join(sorted(FLEET_KEYS))
    if not isinstance(raw, Mapping):
        errors.append(
            _fleet_error(
                f" must be a dict, not {type(raw).__name__}",
                "Example: {'CACHE': 'default', 'TTL': 10}; keys: " + keys + ".",
            )
        )
        return FleetSettings()
    unknown = sorted(str(k) for k in raw if k not in FLEET_KEYS)
    if unknown:
        errors.append(_fleet_error(f" has unknown key(s) {', '.join(unknown)}", f"Keys: {keys}."))
    fleet = FleetSettings()
    enabled = raw.get("ENABLED", True)
    if not isinstance(enabled, bool):
        errors.append(
            _fleet_error("['ENABLED'] must be True or False", "False turns the fleet view off.")
        )
        enabled = True
    url: str | None = None
    if raw.get("URL") is not None:
        try:
            url = _fleet_url(raw["URL"])
        except ConfigError as exc:
            errors.append(exc)
    cache = raw.get("CACHE", "default")
    if not isinstance(cache, str) or not _cache_exists(cache):
        errors.append(
            _fleet_error(
                f"['CACHE'] = {safe_repr(cache)} is not an alias in CACHES",
                "Name a cache alias from CACHES (used when FLEET has no URL), e.g. 'default'.",
            )
        )
        cache = fleet.cache
    prefix = raw.get("PREFIX", fleet.prefix)
    if not isinstance(prefix, str) or not prefix.strip() or len(prefix) > 200:
        errors.append(
            _fleet_error(
                f"['PREFIX'] = {safe_repr(prefix)} must be a non-empty string (at most 200)",
                "The key prefix of the fleet's entries, e.g. 'resilience:fleet'.",
            )
        )
        prefix = fleet.prefix
    ttl = raw.get("TTL", fleet.ttl)
    # A plain number of seconds: fleet.py reads it with float().
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or not 0 < ttl <= MAX_FLEET_TTL  # False for nan too
    ):
        errors.append(
            _fleet_error(
                f"['TTL'] = {safe_repr(ttl)} must be a number of seconds, "
                f"above 0 and at most {MAX_FLEET_TTL:g}",
                "How long a process that stopped reporting stays listed, e.g. 10.",
            )
        )
        ttl = fleet.ttl
    store = raw.get("STORE")
    if store is not None and store not in FLEET_STORES:
        errors.append(
            _fleet_error(
                f"['STORE'] = {safe_repr(store)} is not one of {', '.join(FLEET_STORES)}",
                "Leave it out to choose by itself (Redis, else a shared cache, else the "
                "database), or force one: 'redis', 'cache' or 'database'.",
            )
        )
        store = None
    if store == "redis" and url is None and not _names_redis(root):
        errors.append(
            _fleet_error(
                "['STORE'] is 'redis' but no Redis is configured",
                "Give FLEET a 'URL', or set REDIS 'URL' (or BACKEND 'redis' with REDIS 'CACHE').",
            )
        )
        store = None
    return FleetSettings(
        enabled=enabled, url=url, cache=cache, prefix=prefix, ttl=float(ttl), store=store
    )


def _names_redis(root: Any) -> bool:
    """Whether RESILIENCE outside FLEET gives the fleet store a Redis (its REDIS URL, or
    the redis backend's settings)."""
    redis = root.get("REDIS") if isinstance(root, Mapping) else None
    if not isinstance(redis, Mapping):
        return False
    return bool(redis.get("URL")) or (root.get("BACKEND") == "redis" and bool(redis))


def _cache_exists(alias: str) -> bool:
    from django.conf import settings

    caches = getattr(settings, "CACHES", None)
    return isinstance(caches, Mapping) and alias in caches


def parse_redis(value: Mapping[str, Any] | None, *, budget: float) -> RedisSettings:
    """``RESILIENCE["REDIS"]`` as ``RedisSettings`` (a ``CACHE`` alias read from ``CACHES``).

    Raises ``ConfigError`` (``resilience.E040``) when unusable.  Reading a
    ``CACHE`` alias looks at Django's ``CACHES`` setting (not at the cache
    object), so it is cheap and can run inside a system check.
    """
    value = dict(value or {"CACHE": "default"})
    alias = value.pop("CACHE", "default")
    if value.get("URL") is None:
        url, password, sentinels = _url_from_cache(str(alias))
        value["URL"] = url
        value["PASSWORD"] = value.get("PASSWORD") or password
        value["SENTINELS"] = value.get("SENTINELS") or sentinels
    return parse_redis_settings(value, budget=budget)


def _url_from_cache(alias: str) -> tuple[str, str | None, Sequence[Any]]:
    """A django-redis cache's URL, password and Sentinel addresses."""
    from django.conf import settings

    caches: Mapping[str, Any] = getattr(settings, "CACHES", {})
    cache = caches.get(alias)
    if cache is None:
        raise ConfigError(
            f"RESILIENCE['REDIS'] names cache {alias!r}, which is not in CACHES",
            check_id="resilience.E040",
            hint="Name a django-redis cache alias, or give a URL instead.",
        )
    location = cache.get("LOCATION")
    # django-redis takes a list for primary/replicas; writes go to the first.
    if isinstance(location, list | tuple):
        location = location[0] if location else None
    if not isinstance(location, str) or "://" not in location:
        raise ConfigError(
            f"cache {alias!r} has no Redis URL in LOCATION ({location!r})",
            check_id="resilience.E040",
            hint="Point RESILIENCE['REDIS'] at a django-redis cache or give a URL.",
        )
    options = cache.get("OPTIONS") or {}
    password = options.get("PASSWORD")
    sentinels = options.get("SENTINELS") or ()
    return location, password if isinstance(password, str) else None, sentinels


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
        # Outside the lock: wiring reads the settings.  Usually done already by
        # AppConfig.ready(); this covers Django set up without the app.
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
        # Counts and breaker states of other settings would leak into a test's
        # override_settings(RESILIENCE=...): it starts from nothing, and the fleet
        # thread starts again on the new FLEET and REDIS at the next breaker.
        from .fleet import stop as stop_fleet
        from .testing.reset import reset_state

        reset_state()
        stop_fleet()


setting_changed.connect(_setting_changed, dispatch_uid="resilience_django.conf")
# disable_limits() (testing) rebuilds the engines without limits: they read the switch once.
switch.on_change(reset_settings)
