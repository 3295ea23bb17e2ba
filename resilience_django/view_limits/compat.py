"""The django-ratelimit vocabulary, on this package's limiters.

>>> from resilience_django import is_ratelimited, ALL, UNSAFE
>>> UNSAFE
['DELETE', 'PATCH', 'POST', 'PUT']

What django-ratelimit users write, understood here too:

- ``method=ALL`` (every method), ``method=UNSAFE``, one method or a list;
- keys ``get:<name>`` (our ``param:<name>``), ``post:<field>``, and a
  callable ``key(group, request)`` (or ``key(request)``), sync or async;
- rates ``"5/m"``, ``"100/h"``, ``"10/5m"``, ``"5/10"`` (seconds), a
  ``(count, seconds)`` tuple, or a callable ``rate(group, request)``
  returning one of those or ``None`` (no limit for this request);
- ``is_ratelimited(request, group=..., key=..., rate=..., method=...,
  increment=...)`` and ``get_usage(...)``, with ``ais_ratelimited`` and
  ``aget_usage`` for async views.

``is_ratelimited`` shares its counters with ``@limit`` and with every other
call naming the same ``group``, key and rate: a group is a counter's name.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import threading
from collections.abc import Awaitable, Callable, Sequence
from hashlib import blake2b
from typing import Any, TypedDict

from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async

from ..exceptions import ConfigError
from ..limiting.decision import Algorithm, Policy
from ..limiting.engine import LimitResult
from ..limiting.keys import MAX_KEY_LENGTH, KeyFunc
from ..units import Rate, parse_rate, safe_repr
from .standalone import StandaloneRule

__all__ = [
    "ALL",
    "UNSAFE",
    "RateSpec",
    "Usage",
    "adapt_key",
    "aget_usage",
    "ais_ratelimited",
    "default_group",
    "get_usage",
    "is_ratelimited",
    "method_list",
    "parse_compat_rate",
    "rate_getter",
    "resolve_policy",
]

logger = logging.getLogger("resilience_django.limiting")

# django-ratelimit's constants, with the same values, so code comparing them still works.
ALL: tuple[None] = (None,)
UNSAFE: list[str] = ["DELETE", "PATCH", "POST", "PUT"]

RateValue = str | Rate | tuple[int, int] | None
RateSpec = str | Rate | tuple[int, int] | Callable[[str, Any], Any]


class Usage(TypedDict):
    """``get_usage``'s answer: django-ratelimit's four fields and our decision."""

    count: int
    limit: int
    should_limit: bool
    time_left: int
    decision: LimitResult


def method_list(method: Any) -> list[str] | None:
    """``ALL``/``None`` → ``None`` (every method); ``"POST"`` or a list → a list."""
    if method is None or method is ALL or method == ALL:
        return None
    if isinstance(method, str):
        return [method]
    if isinstance(method, Sequence):
        return [str(m) for m in method]
    raise ConfigError(
        f"method {method!r} must be ALL, a method name or a list of them",
        check_id="resilience.E027",
        hint="Examples: ALL, UNSAFE, 'POST', ['GET', 'POST'].",
    )


_PLAIN_SECONDS = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*\Z")


def parse_compat_rate(value: str | Rate | tuple[int, int]) -> Rate:
    """A rate as django-ratelimit writes it; raises ``ValueError`` if it is none.

    ``"5/10"`` is 5 per 10 seconds and ``(5, 10)`` the same, as there;
    everything else is ours (``"100/m"``, ``"10/5m"``, ``"100/30s"``).
    """
    if isinstance(value, tuple) and len(value) == 2:
        value = f"{value[0]}/{value[1]}s"
    elif isinstance(value, str):
        match = _PLAIN_SECONDS.match(value)
        if match is not None:
            value = f"{match.group(1)}/{match.group(2)}s"
    return parse_rate(value)


def rate_getter(
    rate: RateSpec, group: str
) -> tuple[Callable[[Any], RateValue], Callable[[Any], Awaitable[RateValue]]] | None:
    """``(sync, async)`` getters of a callable rate's value per request; ``None`` if fixed."""
    if not callable(rate):
        return None
    func = rate
    if iscoroutinefunction(func):
        sync_call = async_to_sync(func)

        def get(request: Any) -> RateValue:
            return sync_call(group, request)  # type: ignore[no-any-return]

        async def aget(request: Any) -> RateValue:
            return await func(group, request)  # type: ignore[no-any-return]

        return get, aget
    # A sync rate function may query the database (the user's plan): from
    # async views it runs in a thread, as Django requires.
    async_call = sync_to_async(func)

    def get_sync(request: Any) -> RateValue:
        return func(group, request)  # type: ignore[no-any-return]

    async def aget_sync(request: Any) -> RateValue:
        return await async_call(group, request)  # type: ignore[no-any-return]

    return get_sync, aget_sync


def _bounded(value: Any) -> str | None:
    # The same bound as every other key (keys.py): at most 64 characters, a
    # longer value (or one starting with "#") replaced by its digest.
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else str(value)
    if len(text) <= MAX_KEY_LENGTH and not text.startswith("#"):
        return text
    return "#" + blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _takes_group(func: Callable[..., Any]) -> bool:
    """Whether ``func`` takes ``(group, request)`` (django-ratelimit's) or ``(request)``."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _callable_key(func: Callable[..., Any], group: str) -> KeyFunc:
    spec = "callable:" + getattr(func, "__qualname__", type(func).__name__)
    args: tuple[str, ...] = (group,) if _takes_group(func) else ()
    if iscoroutinefunction(func):
        sync_call = async_to_sync(func)

        def get(request: Any) -> str | None:
            return _bounded(sync_call(*args, request))

        async def aget(request: Any) -> str | None:
            return _bounded(await func(*args, request))

    else:
        async_call = sync_to_async(func)

        def get(request: Any) -> str | None:
            return _bounded(func(*args, request))

        async def aget(request: Any) -> str | None:
            return _bounded(await async_call(*args, request))

    return KeyFunc(spec, get, aget, loop_safe=False, needs_user=True)


def _post_key(spec: str, field: str) -> KeyFunc:
    def get(request: Any) -> str | None:
        # The body is already read when a view runs, under WSGI and ASGI alike:
        # parsing the form does no I/O, so the loop may call this directly.
        return _bounded(request.POST.get(field))

    async def aget(request: Any) -> str | None:
        return get(request)

    return KeyFunc(spec, get, aget, loop_safe=True)


def adapt_key(key: Any, group: str) -> tuple[str, KeyFunc | None]:
    """A django-ratelimit key as ``(our key spec, a compiled key or None)``.

    ``get:x`` is our ``param:x``; ``post:x`` and callables are compiled here;
    every other string is one of our specs and is checked with the rule.
    """
    if callable(key):
        compiled = _callable_key(key, group)
        return compiled.spec, compiled
    if isinstance(key, str):
        kind, sep, arg = key.partition(":")
        if sep and kind == "get" and arg.strip():
            return "param:" + arg.strip(), None
        if sep and kind == "post" and arg.strip():
            return key, _post_key(key, arg.strip())
    return key, None


def default_group(func: Callable[..., Any]) -> str:
    """A view's dotted path, as a counter name: django-ratelimit's default group too."""
    name = f"{func.__module__}.{func.__qualname__}"
    return re.sub(r"[^A-Za-z0-9_.:/-]", "_", name)[-100:]


# -- is_ratelimited / get_usage ---------------------------------------------------

_rules: dict[tuple[Any, ...], StandaloneRule] = {}
_rules_lock = threading.Lock()
_MAX_RULES = 1024


def _rule(
    group: str, key: Any, algorithm: str, burst: int | None, scope: str | None
) -> StandaloneRule:
    cache_key = (group, key, algorithm, burst, scope)
    rule = _rules.get(cache_key)
    if rule is None:
        spec, key_func = adapt_key(key, group)
        fields: dict[str, Any] = {"name": group, "rate": "1/s", "key": spec,
                                  "algorithm": algorithm, "scope": scope}  # fmt: skip
        if burst is not None:
            fields["burst"] = burst
        rule = StandaloneRule(fields, where="is_ratelimited", key_func=key_func)
        with _rules_lock:
            if len(_rules) >= _MAX_RULES:
                _rules.clear()
            rule = _rules.setdefault(cache_key, rule)
    return rule


class _Call:
    """One ``is_ratelimited``/``get_usage`` call's arguments, resolved."""

    __slots__ = ("cost", "group", "rule")

    def __init__(
        self,
        request: Any,
        group: str | None,
        fn: Callable[..., Any] | None,
        key: Any,
        method: Any,
        increment: bool,
        algorithm: str,
        burst: int | None,
        scope: str | None,
    ) -> None:
        if group is None:
            if fn is None:
                raise ConfigError(
                    "is_ratelimited needs a group or fn",
                    check_id="resilience.E026",
                    hint="group names the counter; fn=view uses the view's dotted path, "
                    "which is also what @limit on that view counts under.",
                )
            group = default_group(fn)
        self.group = group
        self.cost = 1 if increment else 0
        methods = method_list(method)
        rule = _rule(group, key if key is not None else "ip", algorithm, burst, scope)
        applies = rule.applies(request.method or "GET")
        if applies and methods is not None:
            applies = (request.method or "GET") in [m.upper() for m in methods]
        self.rule = rule if applies else None


def _usage(result: LimitResult | None, cost: int) -> Usage | None:
    if result is None:
        return None
    decision = result.decision if result.shadow is None else result.shadow
    outcome = decision.outcomes[0]
    policy = outcome.check.policy
    # The most a window admits: the sliding window ignores burst.
    limit = policy.rate.limit if policy.algorithm is Algorithm.SLIDING_WINDOW else policy.capacity
    # A peek admits whatever is left; "limited" means the next request would not fit.
    should_limit = not decision.allowed if cost else outcome.remaining < 1
    return Usage(
        count=max(0, limit - outcome.remaining),
        limit=limit,
        should_limit=should_limit,
        time_left=math.ceil(max(outcome.reset_after, outcome.retry_after)),
        decision=result,
    )


def resolve_policy(rule: StandaloneRule, rate: RateValue, *, computed: bool) -> Policy | None:
    """The policy for a rate value; ``None`` for no limit.

    A fixed rate that is not a rate is a programming error (``ConfigError``,
    ``resilience.E020``).  A rate a callable computed may come from data (a
    plan's rate stored in the database): a bad one is logged and that request
    is not limited, rather than answered 500.
    """
    if rate is None:
        return None
    try:
        return rule.policy(parse_compat_rate(rate))
    except (ValueError, TypeError) as exc:
        if computed:
            logger.error(
                "rate function of %r returned %s: %s; this request is not limited",
                rule.name, safe_repr(rate), exc,
                extra={"rule": rule.name},
            )  # fmt: skip
            return None
        raise ConfigError(
            f"{rule.name}: {exc}",
            check_id="resilience.E020",
            hint="Write a rate like '100/m', '10/s', '5000/h' or '100/30s'.",
        ) from exc


def get_usage(
    request: Any,
    group: str | None = None,
    fn: Callable[..., Any] | None = None,
    key: Any = None,
    rate: RateSpec | None = None,
    method: Any = ALL,
    increment: bool = False,
    *,
    algorithm: str = "sliding_window",
    burst: int | None = None,
    scope: str | None = None,
) -> Usage | None:
    """django-ratelimit's ``get_usage``: ``None`` when no limit applies to ``request``.

    ``increment=False`` peeks: nothing is consumed and ``should_limit`` says
    whether the next request would be refused.  ``increment=True`` counts
    this request (if it fits: a refused request consumes nothing).
    """
    call = _Call(request, group, fn, key, method, increment, algorithm, burst, scope)
    if call.rule is None:
        return None
    getters = rate_getter(rate, call.group) if rate is not None else None
    value = getters[0](request) if getters is not None else rate
    policy = resolve_policy(call.rule, value, computed=getters is not None)  # type: ignore[arg-type]
    if policy is None:
        return None
    return _usage(call.rule.decide(request, policy, call.cost), call.cost)


async def aget_usage(
    request: Any,
    group: str | None = None,
    fn: Callable[..., Any] | None = None,
    key: Any = None,
    rate: RateSpec | None = None,
    method: Any = ALL,
    increment: bool = False,
    *,
    algorithm: str = "sliding_window",
    burst: int | None = None,
    scope: str | None = None,
) -> Usage | None:
    """``get_usage`` for async views."""
    call = _Call(request, group, fn, key, method, increment, algorithm, burst, scope)
    if call.rule is None:
        return None
    getters = rate_getter(rate, call.group) if rate is not None else None
    value = await getters[1](request) if getters is not None else rate
    policy = resolve_policy(call.rule, value, computed=getters is not None)  # type: ignore[arg-type]
    if policy is None:
        return None
    return _usage(await call.rule.adecide(request, policy, call.cost), call.cost)


def is_ratelimited(
    request: Any,
    group: str | None = None,
    fn: Callable[..., Any] | None = None,
    key: Any = None,
    rate: RateSpec | None = None,
    method: Any = ALL,
    increment: bool = False,
    *,
    algorithm: str = "sliding_window",
    burst: int | None = None,
    scope: str | None = None,
) -> bool:
    """Whether ``request`` is over the limit; see ``get_usage``.

    >>> is_ratelimited(request, group="login", key="post:username", rate="5/m",
    ...                method=UNSAFE, increment=True)  # doctest: +SKIP
    """
    usage = get_usage(
        request, group, fn, key, rate, method, increment,
        algorithm=algorithm, burst=burst, scope=scope,
    )  # fmt: skip
    return usage is not None and usage["should_limit"]


async def ais_ratelimited(
    request: Any,
    group: str | None = None,
    fn: Callable[..., Any] | None = None,
    key: Any = None,
    rate: RateSpec | None = None,
    method: Any = ALL,
    increment: bool = False,
    *,
    algorithm: str = "sliding_window",
    burst: int | None = None,
    scope: str | None = None,
) -> bool:
    """``is_ratelimited`` for async views."""
    usage = await aget_usage(
        request, group, fn, key, rate, method, increment,
        algorithm=algorithm, burst=burst, scope=scope,
    )  # fmt: skip
    return usage is not None and usage["should_limit"]
