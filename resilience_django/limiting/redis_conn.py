"""The one place that builds Redis clients: limiter, live reload and fleet use it.  Why its
own pools for a cache alias, its timeouts and no retries: docs/redis.md."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeAlias, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlparse, urlsplit

import redis
import redis.asyncio as aredis
import redis.asyncio.sentinel as asentinel
import redis.sentinel as sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

from ..exceptions import ConfigError
from ..units import MAX_COUNT, bounded_int, parse_duration, safe_repr, safe_str

__all__ = ["AsyncClient", "RedisSettings", "SyncClient", "make_async_client",
           "make_sync_client", "make_sync_client_from_url", "parse_redis_settings"]  # fmt: skip

SyncClient: TypeAlias = "redis.Redis | redis.RedisCluster"
AsyncClient: TypeAlias = "aredis.Redis | aredis.RedisCluster"

CHECK_ID = "resilience.E040"
# The connect budget: connecting and loading the script at first use.
CONNECT_TIMEOUT = 1.0
MAX_TIMEOUT = 60.0  # FALLBACK_LATENCY's too (SOCKET_TIMEOUT's default): longer is a typo
URL_HINT = (
    "Like 'redis://127.0.0.1:6379/0' (rediss://, unix:///path); query options are redis-py's "
    "connection arguments: db, client_name, protocol, socket_keepalive; ssl_* need rediss://."
)
# What only RedisCluster takes, which a URL may carry with CLUSTER (Redis's own are checked).
_CLUSTER_OPTIONS = {*inspect.signature(redis.RedisCluster).parameters} - {"kwargs"}
_CLUSTER_OPTIONS -= {*inspect.signature(redis.Redis).parameters}


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where the distributed limiter's Redis is and how long to wait for it: the latency
    budget (``socket_timeout``) and the connect budget (docs/redis.md#cold-start)."""

    url: str
    cluster: bool = False
    password: str | None = None
    max_connections: int = 64
    socket_timeout: float = 0.05
    connect_timeout: float = CONNECT_TIMEOUT
    key_prefix: str = "rl"
    # Sentinel addresses; when set, ``url``'s host is the service name.
    sentinels: tuple[tuple[str, int], ...] = ()
    # redis-py's ``Sentinel(sentinel_kwargs=...)`` (the sentinels' password, TLS) as pairs.
    sentinel_kwargs: tuple[tuple[str, str | bool], ...] = ()


_KEYS = frozenset(field.name.upper() for field in fields(RedisSettings))
KEYS_HINT = f"Keys: CACHE or URL, {', '.join(sorted(_KEYS - {'URL'}))} (docs/settings.md#redis)."
# What SENTINEL_KWARGS may say: redis-py's arguments for reaching and authenticating to a
# sentinel, by type; the timeouts and retries are the limiter's (docs/redis.md#sentinel).
_SENTINEL_BOOLS = frozenset(("ssl", "ssl_check_hostname"))
_SENTINEL_STRINGS = frozenset(("username", "password", "client_name", "ssl_keyfile",
                               "ssl_certfile", "ssl_password", "ssl_ca_certs", "ssl_ca_path",
                               "ssl_ca_data", "ssl_ciphers", "ssl_cert_reqs"))  # fmt: skip
SENTINEL_ARGUMENTS = _SENTINEL_BOOLS | _SENTINEL_STRINGS
_CERT_REQS = ("none", "optional", "required")
# What parse_url says about where the primary is, which a Sentinel URL does not say.
_NOT_FROM_SENTINEL_URL = frozenset(("host", "port", "path", "connection_class"))
# Query options the limiter sets itself, whatever the URL says (docs/settings.md#url): the
# timeouts may only tighten; no health-check PING, no retries, MAX_CONNECTIONS as the pool size.
_OURS = frozenset(("socket_timeout", "socket_connect_timeout", "health_check_interval", "retry",
                   "retry_on_timeout", "retry_on_error", "max_connections"))  # fmt: skip


def _error(message: str, hint: str = KEYS_HINT) -> ConfigError:
    return ConfigError(f"RESILIENCE['REDIS']{message}", check_id=CHECK_ID, hint=hint)


def _seconds(value: Any) -> float:
    """A timeout: above 0 (0 is a non-blocking socket) and at most a minute, else 0."""
    try:
        return parse_duration(value, maximum=MAX_TIMEOUT)
    except ValueError:
        return 0.0


def _digits(value: Any) -> Any:
    """An integer written as digits (an environment variable's) as an int, else ``value``."""
    return int(value) if isinstance(value, str) and re.fullmatch("[0-9]{1,18}", value) else value


def _address(entry: Any) -> tuple[str, int]:
    """A ``(host, port)`` sentinel address (its port may be digits)."""
    host, port = entry
    port = _digits(port)
    if isinstance(host, str) and host.strip() and bounded_int(port, minimum=1, maximum=65535):
        return host, port
    raise ValueError(entry)


def parse_redis_settings(value: Mapping[str, Any] | None, *, budget: float) -> RedisSettings:
    """Turn a ``RESILIENCE["REDIS"]`` with a ``URL`` into ``RedisSettings``, or ``ConfigError``
    (``resilience_django.conf`` turns a ``CACHE`` alias into ``URL``, ``PASSWORD`` and so on)."""
    value = dict(value or {})
    if unknown := set(value) - _KEYS:
        raise _error(f" has unknown keys {sorted(map(safe_str, unknown))}")
    url: Any = value.get("URL")  # a str when url_problem finds none
    host = "the Sentinel service as its host" if value.get("SENTINELS") else ""
    if problem := url_problem(url, host, cluster=value.get("CLUSTER") is True):
        raise _error(f" URL {shown_url(url)} {problem}", URL_HINT)
    options = _url_options(url)
    value["MAX_CONNECTIONS"] = _digits(value.get("MAX_CONNECTIONS", 64))
    timeout = (_seconds, f"must be a duration above 0 and at most {MAX_TIMEOUT:g}s, like '50ms'")
    # Each plain key: whether a value is usable, what it must be.
    rules: dict[str, tuple[Callable[[Any], object], str]] = {
        "SOCKET_TIMEOUT": timeout,
        "CONNECT_TIMEOUT": timeout,
        "MAX_CONNECTIONS": (
            lambda v: bounded_int(v, minimum=1, maximum=MAX_COUNT),
            f"must be an integer from 1 to {MAX_COUNT:_} (or its digits)",
        ),
        "CLUSTER": (lambda v: isinstance(v, bool), "must be True or False"),
        "PASSWORD": (lambda v: v is None or isinstance(v, str), "must be a string or None"),
        "KEY_PREFIX": (
            lambda v: isinstance(v, str) and len(v) <= 200,
            "must be a string of at most 200 characters",
        ),
    }
    read: dict[str, Any] = {f.name: f.default for f in fields(RedisSettings)}
    read |= {"url": url, "socket_timeout": budget}
    for key, (usable, must) in rules.items():
        read[key.lower()] = item = value.get(key, read[key.lower()])
        if not usable(item):
            shown = f"a {type(item).__name__}" if key == "PASSWORD" else safe_repr(item)
            raise _error(f"[{key!r}] = {shown} {must}")
    sentinels = value.get("SENTINELS") or ()
    try:
        read["sentinels"] = tuple(_address(entry) for entry in sentinels)
    except (TypeError, ValueError):
        raise _error(
            f"['SENTINELS'] = {safe_repr(sentinels)} is not a list of (host, port)",
            "Write it like [('10.0.0.5', 26379), ('10.0.0.6', 26379)]; ports 1 to 65535.",
        ) from None
    read["sentinel_kwargs"] = _sentinel_kwargs(value.get("SENTINEL_KWARGS"))
    # RedisCluster refuses these only when built, at first use: said here, a check error.
    if read["cluster"] and (url.startswith("unix://") or options.get("db") or sentinels):
        message = f" URL {shown_url(url)} with CLUSTER: no unix socket, no db but 0, no SENTINELS"
        raise _error(message, "Write it like 'redis://10.0.0.1:7000/0' (any node of the cluster).")
    # The URL's timeouts may tighten the limiter's, never loosen them (_client_url).
    for key, option in [("socket_timeout",) * 2, ("connect_timeout", "socket_connect_timeout")]:
        read[key] = min(_seconds(read[key]), options.get(option) or math.inf)
    return RedisSettings(**read)


def shown_url(url: object) -> str:
    """``url`` for a message, its passwords (which check output and CI logs keep) hidden."""
    if isinstance(url, str):
        # Up to the last "@": a password may hold an unencoded / ? # (the URL is then malformed).
        url = re.sub(r"(?s)^(\w+://[^/?#:@]*:).*@", r"\1***@", url)
        url = re.sub(r"(password=)[^&#]*", r"\1***", url)
    return safe_repr(url)


def url_problem(url: object, host: str = "", *, cluster: bool = False) -> str | None:
    """Why redis-py could not connect to ``url`` (naming ``host``), or ``None``; found without
    connecting: its parser reads the URL, and a connection is built (not opened) per option."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        return "is not a Redis URL"
    try:
        options = _url_options(url)  # a port or a value it cannot parse
    except ValueError as exc:  # urlsplit's port errors quote it: a password's start (/ ? # in it)
        port = "has a port that is not a number up to 65535 (percent-encode / ? # @ in a password)"
        return port if str(exc).startswith("Port") else f"is not a Redis URL: {exc}"
    parts = urlsplit(url)
    unix = parts.scheme == "unix"
    if not (parts.path if unix else parts.hostname) or (unix and host):  # a socket: no service
        return "has no socket path" if unix and not host else f"must name {host or 'a host'}"
    if options.get("db", 0) < 0 or (not unix and parts.path.strip("/") and "db" not in options):
        return "has a db that is not a number from 0 (redis-py reads '/orders' as db 0)"
    for key in ("socket_timeout", "socket_connect_timeout", "max_connections"):
        if key in options and not 0 < options[key] < math.inf:
            return f"has {key}={options[key]}, which must be above 0"
    base, _, query = _client_url(url).partition("?")
    for name, item in parse_qsl(query):
        if cluster and name in _CLUSTER_OPTIONS:
            continue
        try:  # a TypeError: an argument redis-py's connection does not take
            redis.ConnectionPool.from_url(f"{base}?{urlencode({name: item})}").make_connection()
        except Exception as exc:
            return f"has a query option redis-py refuses, {safe_repr(name)}: {safe_str(exc)}"
    return None


def _url_options(url: str) -> dict[str, Any]:
    """What redis-py's ``from_url`` takes from ``url`` (``ValueError`` for a bad option)."""
    return cast("dict[str, Any]", parse_url(url))  # type: ignore[no-untyped-call]


def _client_url(url: str) -> str:
    """``url`` without the options the limiter sets, which ``from_url`` would let override."""
    query = urlencode([(k, v) for k, v in parse_qsl(urlsplit(url).query) if k not in _OURS])
    # The rest as written: urlunsplit makes "unix:///path" "unix:/path", which redis-py refuses.
    base = url.split("#", 1)[0].split("?", 1)[0]
    return f"{base}?{query}" if query else base


def _sentinel_kwargs(value: object) -> tuple[tuple[str, str | bool], ...]:
    """``SENTINEL_KWARGS`` checked name by name (each value's type, the verify mode's word)."""
    if value is None:
        return ()
    hint = (
        "A dict of redis-py connection arguments for the sentinels: "
        f"{', '.join(sorted(_SENTINEL_STRINGS))} (strings), {', '.join(sorted(_SENTINEL_BOOLS))} "
        f"(True or False); ssl_cert_reqs is one of {', '.join(_CERT_REQS)}.  Like "
        "{'password': 'sentinel-secret', 'ssl': True, 'ssl_ca_certs': '/etc/ssl/ca.pem'}."
    )
    if not isinstance(value, Mapping):
        raise _error(f"['SENTINEL_KWARGS'] must be a dict, not {type(value).__name__}", hint)
    if unknown := sorted(safe_str(k) for k in value if k not in SENTINEL_ARGUMENTS):
        raise _error(f"['SENTINEL_KWARGS'] has unknown keys {unknown}", hint)
    for name, item in value.items():
        kind = bool if name in _SENTINEL_BOOLS else str
        if not isinstance(item, kind) or (name == "ssl_cert_reqs" and item not in _CERT_REQS):
            want = "True or False" if kind is bool else "a string"
            want = f"one of {', '.join(_CERT_REQS)}" if name == "ssl_cert_reqs" else want
            raise _error(
                f"['SENTINEL_KWARGS'][{safe_repr(name)}] = {safe_repr(item)} must be {want}", hint
            )
    return tuple(sorted((str(k), v) for k, v in value.items()))


def _common_kwargs(settings: RedisSettings, *, asyncio: bool = False) -> dict[str, Any]:
    """Timeouts (docs/redis.md#cold-start), no retries, the pool size and the password."""
    read, connect = settings.socket_timeout, settings.connect_timeout
    kwargs: dict[str, Any] = {
        "socket_timeout": max(read, connect) if asyncio else read,
        "socket_connect_timeout": connect if asyncio else min(read, connect),
        # redis-py 8 warns when a redis.asyncio client is given the sync Retry.
        "retry": AsyncRetry(NoBackoff(), 0) if asyncio else Retry(NoBackoff(), 0),
        "health_check_interval": 0,
        "max_connections": settings.max_connections,
    }
    if settings.password is not None:
        kwargs["password"] = settings.password
    return kwargs


def _make_client(settings: RedisSettings, *, asyncio: bool) -> Any:
    # redis and redis.asyncio build their clients with the same names and arguments.
    lib, sentinels = (aredis, asentinel) if asyncio else (redis, sentinel)
    kwargs = _common_kwargs(settings, asyncio=asyncio)
    if settings.sentinels:
        # The sentinels get the same timeouts and no retries, whatever SENTINEL_KWARGS says.
        watched = {key: kwargs[key] for key in ("socket_timeout", "socket_connect_timeout")}
        sentinel_kwargs = {**dict(settings.sentinel_kwargs), **watched, "retry": kwargs["retry"]}
        watcher = sentinels.Sentinel(list(settings.sentinels), sentinel_kwargs=sentinel_kwargs)
        # master_for takes no URL: what it says about the primary (db, TLS, ACL user,
        # password, query options) is passed as arguments, winning as with from_url.
        url = _url_options(settings.url)
        options = {key: url[key] for key in url.keys() - _NOT_FROM_SENTINEL_URL - _OURS}
        if urlparse(settings.url).scheme == "rediss":
            options["ssl"] = True
        kwargs |= options
        # The host as written: urlparse lowercases it, service names are case-sensitive.
        service = unquote(urlparse(settings.url).netloc.rpartition("@")[2].partition(":")[0])
        return watcher.master_for(service, **kwargs)
    # MOVED/ASK are followed whatever the retry policy.  from_url lets the client own its
    # pool, so close() releases the sockets.
    client_class = lib.RedisCluster if settings.cluster else lib.Redis
    return client_class.from_url(_client_url(settings.url), **kwargs)


def make_sync_client(settings: RedisSettings) -> SyncClient:
    """A redis-py client with the budget as socket timeouts and no retries."""
    return cast("SyncClient", _make_client(settings, asyncio=False))


def make_async_client(settings: RedisSettings) -> AsyncClient:
    """A ``redis.asyncio`` client like ``make_sync_client``'s; bound to the loop that uses it."""
    return cast("AsyncClient", _make_client(settings, asyncio=True))


def make_sync_client_from_url(url: str, timeout: float = 1.0) -> redis.Redis:
    """A plain redis-py client for background work, ``timeout`` bounding each wait (the URL's
    timeouts may only tighten it), no retries; the URL's ``max_connections`` sizes its pool."""
    settings = parse_redis_settings({"URL": url, "CONNECT_TIMEOUT": timeout}, budget=timeout)
    kwargs = _common_kwargs(settings)
    kwargs["max_connections"] = _url_options(url).get("max_connections")
    return redis.Redis.from_url(_client_url(url), **kwargs)
