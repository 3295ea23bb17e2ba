"""django-ratelimit's API on this package's limiters (docs/migrating-from-django-ratelimit.md)."""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypedDict

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async

from ..exceptions import ConfigError, ResilienceError
from ..limiting.decision import Algorithm, Policy
from ..limiting.engine import LimitResult
from ..limiting.keys import KeyFunc, as_awaitable, bounded_key, callable_key, compile_key
from ..limiting.proxies import TrustedProxies
from ..units import MAX_RATE_COUNT, MAX_RATE_PERIOD, MIN_RATE_PERIOD, Rate, parse_rate, safe_repr
from .standalone import KeyFactory, StandaloneRule, shared_rule

__all__ = ["ALL", "UNSAFE", "RateSpec", "Usage", "adapt_key", "aget_usage",
           "ais_ratelimited", "default_group", "get_usage", "is_ratelimited",
           "make_rule", "method_list", "parse_compat_rate", "resolve_policy",
           "rule_policy"]  # fmt: skip

logger = logging.getLogger("resilience_django.limiting")

# django-ratelimit's constants, with the same values, so code comparing them still works.
ALL: tuple[None] = (None,)
UNSAFE: list[str] = ["DELETE", "PATCH", "POST", "PUT"]

RateValue = str | Rate | tuple[int, int] | None
RateSpec = str | Rate | tuple[int, int] | Callable[[str, Any], Any]
PolicyGetters = tuple[Callable[[Any], Policy | None], Callable[[Any], Awaitable[Policy | None]]]


class Usage(TypedDict):
    """``get_usage``'s answer: django-ratelimit's four fields and our decision."""

    count: int
    limit: int
    should_limit: bool
    time_left: int
    decision: LimitResult


def method_list(method: Any) -> tuple[str, ...] | None:
    """``ALL``/``None`` → ``None`` (every method); ``"POST"``, a list or a set → a tuple."""
    if method is None or method == ALL:
        return None
    if isinstance(method, str):
        return (method,)
    if isinstance(method, Iterable):
        return tuple(str(m) for m in method)
    raise ConfigError(
        f"method {method!r} must be ALL, a method name or a list of them",
        check_id="resilience.E027",
        hint="Examples: ALL, UNSAFE, 'POST', ['GET', 'POST'].",
    )


_PLAIN_SECONDS = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*\Z")


def parse_compat_rate(value: str | Rate | tuple[int, int]) -> Rate:
    """A rate as django-ratelimit writes it (``"5/10"`` and ``(5, 10)``: per 10 s) or as we do."""
    if isinstance(value, tuple) and len(value) == 2:
        value = f"{value[0]}/{value[1]}s"
    elif isinstance(value, str) and (match := _PLAIN_SECONDS.match(value)) is not None:
        value = f"{match.group(1)}/{match.group(2)}s"
    if not isinstance(value, Rate):
        return parse_rate(value)
    # parse_rate takes a Rate as it is; one built by hand (a rate function's answer, say) may
    # hold a count or period no text could: Rate(5, 0) would divide by zero.
    limit, period = value.limit, value.period
    if (
        type(limit) is not int
        or not 1 <= limit <= MAX_RATE_COUNT
        or type(period) not in (int, float)
        or not MIN_RATE_PERIOD <= period <= MAX_RATE_PERIOD
    ):
        raise ValueError(
            f"{safe_repr(value)} is not a rate: the count must be an integer from 1 to "
            f"{MAX_RATE_COUNT:_} and the period from 1ms up to a year"
        )
    return value


@contextmanager
def _not_limited_if_raises(group: str) -> Iterator[None]:
    try:
        yield
    except ResilienceError:
        raise
    except Exception:
        logger.exception(
            "rate function of %r raised; this request is not limited", group, extra={"rule": group}
        )


def _takes_group(func: Callable[..., Any]) -> bool:
    """Whether ``func`` takes ``(group, request)`` (django-ratelimit's) or ``(request)``."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = sum(p.kind in kinds and p.default is p.empty for p in parameters)
    return required >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _function_key(func: Callable[..., Any], group: str) -> tuple[str, KeyFactory]:
    spec = "callable:" + getattr(func, "__qualname__", type(func).__name__)
    call = func
    if _takes_group(func):
        call = partial(func, group)
        if iscoroutinefunction(func):  # asgiref's mark (Python 3.11) is lost by partial
            markcoroutinefunction(call)

    def make(trusted: TrustedProxies | None) -> KeyFunc:
        # As the middleware's rules: one that raises is decided on the client's ip key.
        return callable_key(spec, call, compile_key("ip", trusted))

    return spec, make


def _post_key(spec: str, field: str) -> KeyFactory:
    def get(request: Any) -> str | None:
        # The body is already read when a view runs, under WSGI and ASGI alike:
        # parsing the form does no I/O, so the loop may call this directly.
        value = request.POST.get(field)
        return bounded_key(value) if value else None

    key = KeyFunc(spec, get, as_awaitable(get), loop_safe=True)
    return lambda trusted: key


def adapt_key(key: Any, group: str) -> tuple[str, KeyFactory | None]:
    """A django-ratelimit key as ``(our key spec, a key factory or None)``: ``get:x`` is our
    ``param:x``; ``post:x`` and callables are built here; other strings are our specs."""
    if callable(key):
        return _function_key(key, group)
    kind, _, arg = key.partition(":") if isinstance(key, str) else ("", "", "")
    if kind == "get" and arg.strip():
        return "param:" + arg.strip(), None
    if kind == "post" and arg.strip():
        return key, _post_key(key, arg.strip())
    return key, None


def default_group(func: Callable[..., Any]) -> str:
    """A view's dotted path, as a counter name: django-ratelimit's default group too.  A path
    past 100 characters keeps its end and a digest of the whole, so two views never share one."""
    name = re.sub(r"[^A-Za-z0-9_.:/-]", "_", f"{func.__module__}.{func.__qualname__}")
    if len(name) <= 100:
        return name
    return f"{name[-91:]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def make_rule(
    group: str, key: Any, rate: Any, *, where: str, algorithm: str, burst: int | None,
    scope: str | None, methods: tuple[str, ...] | None, **fields: Any,
) -> StandaloneRule:  # fmt: skip
    """The ``StandaloneRule`` of a django-ratelimit style group, key and rate; extra ``fields``."""
    try:
        rate = parse_compat_rate(rate)
    except (ValueError, TypeError):  # a bad rate: the rule's parser reports it
        if isinstance(rate, Rate):
            rate = str(rate)  # as text, which the parser checks (a Rate it takes as it is)
    spec, make_key = adapt_key(key, group)
    fields.update(name=group, rate=rate, key=spec, algorithm=algorithm, scope=scope)
    if burst is not None:
        fields["burst"] = burst
    if methods is not None:
        fields["methods"] = methods
    return StandaloneRule(fields, where=where, make_key=make_key)


def resolve_policy(rule: StandaloneRule, rate: RateValue, *, computed: bool) -> Policy | None:
    """The policy for a rate value (``None``: no limit).  A bad fixed rate is a programming error
    (``resilience.E020``); a bad computed one may come from data: logged, request not limited."""
    if rate is None:
        return None
    try:
        return rule.policy(parse_compat_rate(rate))
    except (ValueError, TypeError) as exc:
        if computed:
            logger.error(
                "rate function of %r returned %s: %s; this request is not limited",
                rule.rule.name, safe_repr(rate), exc,
                extra={"rule": rule.rule.name},
            )  # fmt: skip
            return None
        raise ConfigError(
            f"{rule.rule.name}: {exc}",
            check_id="resilience.E020",
            hint="Write a rate like '100/m', '10/s', '5000/h' or '100/30s'.",
        ) from exc


def rule_policy(
    rule: StandaloneRule, rate: RateSpec | None, group: str
) -> tuple[Policy | None, PolicyGetters | None]:
    """``(policy, None)`` for a fixed ``rate`` (``None``: no limit); for a rate function,
    ``(None, (sync, async))`` getters of each request's policy.  A rate function that raises is
    logged, the request not limited (our own exceptions go through)."""
    if not callable(rate):
        return resolve_policy(rule, rate, computed=False), None
    # Callable from both sides: a sync function may query the database (the user's plan),
    # so async code runs it in a thread, as Django requires.
    if iscoroutinefunction(rate):
        call, acall = async_to_sync(rate), rate
    else:
        call, acall = rate, sync_to_async(rate)

    def get(request: Any) -> Policy | None:
        with _not_limited_if_raises(group):
            return resolve_policy(rule, call(group, request), computed=True)
        return None

    async def aget(request: Any) -> Policy | None:
        with _not_limited_if_raises(group):
            return resolve_policy(rule, await acall(group, request), computed=True)
        return None

    return None, (get, aget)


class _UsageCall:
    """One ``get_usage`` call resolved, but for the I/O: the rate getter and the store."""

    __slots__ = ("cost", "getters", "policy", "rule")

    def __init__(
        self, request: Any, group: str | None, fn: Callable[..., Any] | None, key: Any,
        rate: RateSpec | None, method: Any, increment: bool, algorithm: str,
        burst: int | None, scope: str | None,
    ) -> None:  # fmt: skip
        if group is None:
            if fn is None:
                raise ConfigError(
                    "is_ratelimited needs a group or fn",
                    check_id="resilience.E026",
                    hint="group names the counter; fn=view uses the view's dotted path, "
                    "which is also what @limit on that view counts under.",
                )
            group = default_group(fn)
        self.cost = 1 if increment else 0
        methods = method_list(method)
        key, where = (key if key is not None else "ip"), "is_ratelimited"
        options: dict[str, Any] = {
            "algorithm": algorithm,
            "burst": burst,
            "scope": scope,
            "methods": methods,
        }
        self.rule = shared_rule(
            (where, group, key, *options.values()),
            lambda: make_rule(group, key, "1/s", where=where, **options),
        )
        self.policy, self.getters = None, None
        if self.rule.applies(request.method or "GET"):
            self.policy, self.getters = rule_policy(self.rule, rate, group)

    def usage(self, result: LimitResult | None) -> Usage | None:
        if result is None:
            return None
        decision = result.decision if result.shadow is None else result.shadow
        outcome = decision.outcomes[0]
        policy = outcome.check.policy
        # The most a window admits: the sliding window ignores burst.
        sliding = policy.algorithm is Algorithm.SLIDING_WINDOW
        limit = policy.rate.limit if sliding else policy.capacity
        return Usage(
            count=max(0, limit - outcome.remaining),
            limit=limit,
            # A peek admits whatever is left: "limited" means the next request would not fit.
            should_limit=not decision.allowed if self.cost else outcome.remaining < 1,
            time_left=math.ceil(max(outcome.reset_after, outcome.retry_after)),
            decision=result,
        )


def get_usage(
    request: Any, group: str | None = None, fn: Callable[..., Any] | None = None,
    key: Any = None, rate: RateSpec | None = None, method: Any = ALL, increment: bool = False,
    *, algorithm: str = "sliding_window", burst: int | None = None, scope: str | None = None,
) -> Usage | None:  # fmt: skip
    """django-ratelimit's ``get_usage``: ``None`` when no limit applies to ``request``;
    ``increment=False`` only peeks (docs/limits.md, "Deciding in code")."""
    call = _UsageCall(request, group, fn, key, rate, method, increment, algorithm, burst, scope)
    policy = call.policy if call.getters is None else call.getters[0](request)
    return call.usage(call.rule.decide(request, policy, call.cost))


async def aget_usage(
    request: Any, group: str | None = None, fn: Callable[..., Any] | None = None,
    key: Any = None, rate: RateSpec | None = None, method: Any = ALL, increment: bool = False,
    *, algorithm: str = "sliding_window", burst: int | None = None, scope: str | None = None,
) -> Usage | None:  # fmt: skip
    """``get_usage`` for async views."""
    call = _UsageCall(request, group, fn, key, rate, method, increment, algorithm, burst, scope)
    policy = call.policy if call.getters is None else await call.getters[1](request)
    return call.usage(await call.rule.adecide(request, policy, call.cost))


def is_ratelimited(
    request: Any, group: str | None = None, fn: Callable[..., Any] | None = None,
    key: Any = None, rate: RateSpec | None = None, method: Any = ALL, increment: bool = False,
    *, algorithm: str = "sliding_window", burst: int | None = None, scope: str | None = None,
) -> bool:  # fmt: skip
    """Whether ``request`` is over the limit; see ``get_usage``."""
    usage = get_usage(request, group, fn, key, rate, method, increment,
                      algorithm=algorithm, burst=burst, scope=scope)  # fmt: skip
    return usage is not None and usage["should_limit"]


async def ais_ratelimited(
    request: Any, group: str | None = None, fn: Callable[..., Any] | None = None,
    key: Any = None, rate: RateSpec | None = None, method: Any = ALL, increment: bool = False,
    *, algorithm: str = "sliding_window", burst: int | None = None, scope: str | None = None,
) -> bool:  # fmt: skip
    """``is_ratelimited`` for async views."""
    usage = await aget_usage(request, group, fn, key, rate, method, increment,
                             algorithm=algorithm, burst=burst, scope=scope)  # fmt: skip
    return usage is not None and usage["should_limit"]
