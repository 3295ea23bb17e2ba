"""Django system checks over ``RESILIENCE``: the parser's own ``ConfigError`` values, turned
into ``checks.Error`` objects, so a problem and the check reporting it never drift apart."""

from __future__ import annotations

import os
from collections.abc import Iterator
from importlib.util import find_spec
from typing import Any

from django.conf import settings
from django.core import checks
from django.urls import ResolverMatch, URLResolver, get_resolver

from .conf import parse_settings
from .observability.config import deploy_warnings

MIDDLEWARE_PATH = "resilience_django.middleware.ResilienceMiddleware"


@checks.register("resilience")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    # Afresh, not from the cache: the settings as they are now (and this runs rarely).
    parsed = parse_settings(getattr(settings, "RESILIENCE", {}))
    messages: list[checks.CheckMessage] = [
        checks.Error(str(error), hint=error.hint or None, id=error.check_id)
        for error in parsed.errors
    ]
    middleware = list(getattr(settings, "MIDDLEWARE", []))
    if MIDDLEWARE_PATH in middleware and middleware.index(MIDDLEWARE_PATH) != 0:
        hint = "Put it first so deadlines count the whole request and rejections happen before "
        hint += "sessions and authentication cost anything."
        message = f"{MIDDLEWARE_PATH} is not the first middleware"
        messages.append(checks.Warning(message, hint=hint, id="resilience.W002"))
    if MIDDLEWARE_PATH in middleware:
        messages.extend(_sync_only_below(middleware[middleware.index(MIDDLEWARE_PATH) + 1 :]))
    # Heartbeats come up to 1.2 PROBE_INTERVAL apart (jitter): a shorter TTL lets each expire first,
    # so the count, which sets the share without INSTANCES or SHARE, is never trusted (fallback.md).
    ttl, gap = parsed.fallback.heartbeat_ttl, 1.2 * parsed.fallback.probe_interval
    counted = (parsed.fallback.instances, parsed.fallback.share) == (None, None)
    if parsed.backend == "redis" and counted and ttl < gap:
        message = f"RESILIENCE['FALLBACK']['HEARTBEAT_TTL'] ({ttl:g}s) is below 1.2 x "
        message += f"PROBE_INTERVAL ({gap:g}s), the longest gap between heartbeats: the count of "
        message += "instances is never trusted"
        hint = "Falling back, each process enforces a tenth of each limit. Leave HEARTBEAT_TTL out "
        hint += "(max(5s, 3 x PROBE_INTERVAL)), or set it to 3 x PROBE_INTERVAL, or fix INSTANCES."
        messages.append(checks.Warning(message, hint=hint, id="resilience.W041"))
    return messages


def _sync_only_below(below: list[str]) -> list[checks.CheckMessage]:
    """A sync-only middleware below ours: Django runs ours in sync mode (docs/deadlines.md)."""
    from django.utils.module_loading import import_string

    for path in below:
        try:
            middleware = import_string(path)
        except Exception:  # its import error is not ours to report, nor a `check` traceback
            continue
        if not getattr(middleware, "async_capable", False):  # Django's default too
            message = f"{path} below {MIDDLEWARE_PATH} is sync-only: under ASGI Django then "
            message += "runs ResilienceMiddleware in sync mode, and async views are not cancelled "
            message += "at their deadline"
            hint = "Wrap the ASGI application in ResilienceASGIMiddleware (it then answers 504 at "
            hint += "the deadline itself), or make that middleware async-capable.  Served only by "
            hint += "WSGI: add resilience.W004 to SILENCED_SYSTEM_CHECKS."
            return [checks.Warning(message, hint=hint, id="resilience.W004")]
    return []


@checks.register("resilience", checks.Tags.urls)
def check_url_names(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A URL name the URLconf does not define matches no request: its rule does nothing."""
    parsed = parse_settings(getattr(settings, "RESILIENCE", {}))
    named = [
        *((f"DEADLINE['ROUTES'][{r.label!r}]", r.matcher) for r in parsed.deadline.routes),
        *(("DEADLINE['EXEMPT_STREAMS']", m) for m in parsed.deadline.exempt_streams),
        *((f"LIMITS {r.name!r}", r.matcher) for r in parsed.limits),
        *((f"SHEDDING {r.name!r}", r.matcher) for r in parsed.shedding),
        *((f"BREAKERS {n!r}", p.route) for n, p in parsed.breakers.items() if p.route),
    ]
    wanted = [(where, m.view) for where, m in named if m.view is not None]
    if not wanted:
        return []  # no URLconf import for settings that name no view
    try:
        defined = set(_view_names(get_resolver().url_patterns, []))
    except Exception:  # a broken URLconf is Django's own check to report
        return []
    missing = ", ".join(f"{view!r} ({where})" for where, view in wanted if view not in defined)
    if not missing:
        return []
    message = f"RESILIENCE names URLs the URLconf does not define: {missing}"
    hint = "Spell the name as reverse() takes it, with its namespace ('orders:quote'), or use a "
    hint += "path prefix ('/api/orders'). Until then those rules match no request."
    return [checks.Warning(message, hint=hint, id="resilience.W005")]


def _view_names(patterns: Any, namespaces: list[str | None]) -> Iterator[str]:
    # The view_name a request of each pattern resolves to, as the matchers see it.
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = [*namespaces, pattern.namespace] if pattern.namespace else namespaces
            yield from _view_names(pattern.url_patterns, inner)
        else:
            match = ResolverMatch(pattern.callback, (), {}, pattern.name, namespaces=namespaces)
            yield match.view_name


@checks.register("resilience")
def check_multiproc_dir(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A PROMETHEUS_MULTIPROC_DIR prometheus-client cannot write loses every metric."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path or not find_spec("prometheus_client"):
        return []
    if not os.path.exists(path):
        problem = "does not exist"
    elif not os.path.isdir(path):
        problem = "is not a directory"
    elif not os.access(path, os.W_OK | os.X_OK):
        problem = "is not writable"
    else:
        return []
    message = f"PROMETHEUS_MULTIPROC_DIR {path!r} {problem}: no metrics are reported"
    hint = "Create it, writable by the user the workers run as, before they start; or unset it."
    return [checks.Warning(message, hint=hint, id="resilience.W091")]


@checks.register("resilience", deploy=True)
def check_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .fleetstore.select import per_process_cache

    parsed = parse_settings(getattr(settings, "RESILIENCE", {}))
    found = [(str(w), w.hint, w.check_id) for w in deploy_warnings(parsed.metrics)]
    alias = parsed.fleet.cache
    # Only when STORE forces the cache: left to itself, a per-process cache makes
    # the choice fall to the database, which every worker shares.
    if parsed.fleet.store == "cache" and per_process_cache(alias):
        backend = str(settings.CACHES[alias]["BACKEND"]).rsplit(".", 1)[-1]
        found.append((
            f"RESILIENCE['FLEET']['STORE'] is 'cache' and the cache {alias!r} ({backend}) is not "
            "shared between processes: admin rule changes reach only the process that saved "
            "them, and the breaker dashboard and operator commands see only one process",
            "Leave STORE out (the database, or Redis when configured, carries them), or name a "
            "shared cache in FLEET['CACHE'] (django-redis, memcached, database or file based).",
            "resilience.W003",
        ))  # fmt: skip
    if parsed.backend == "local" and parsed.raw.get("LIMITS"):
        found.append((
            "RESILIENCE['BACKEND'] is 'local': every worker process enforces each limit on its "
            "own, so N workers admit up to N times the configured rate",
            "Use BACKEND 'redis' to share limits across processes, or divide the rates by the "
            "number of workers.",
            "resilience.W001",
        ))  # fmt: skip
    hops = parsed.trusted_proxies.hops if parsed.trusted_proxies is not None else 0
    if hops:
        found.append((
            f"RESILIENCE['TRUSTED_PROXIES'] is a hop count ({hops}): the X-Forwarded-For entry "
            f"{hops} place(s) left of the peer is the client's key, whoever sent the request, so "
            "a client that reaches the server without passing through your proxies chooses its "
            "own key",
            "List your proxies' networks instead, e.g. ['10.0.0.0/8']: X-Forwarded-For is then "
            "read only from them. Keep a hop count only if nothing reaches the server but "
            "through exactly that many proxies, each appending to the header.",
            "resilience.W010",
        ))  # fmt: skip
    return [checks.Warning(message, hint=hint or None, id=id_) for message, hint, id_ in found]
