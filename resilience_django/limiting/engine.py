"""One limiting engine for every adapter: middleware, ASGI fast path, view decorator.

Given a request's method, path, optional URL name and a key source (a Django
request, or an ASGI scope for the fast path), the engine finds the rules that
match, computes each rule's key, asks the limiter once for all ``enforce``
rules and returns a ``LimitResult``.  ``shadow`` rules are decided in a
separate call, so they are counted and reported (metrics, headers) but never
block, and a shadow rule's rejection never rolls back an enforced rule;
``off`` rules are dropped when the engine is built.  A rule whose key is
missing for this request (an anonymous user under ``key="user"``, an absent
header) does not apply to it.

With a ``local`` limiter, rules with ``scope="local"`` are decided there and
``scope="distributed"`` ones by ``limiter``: local first, and only if local
admits, the distributed store (one round trip).  A request the distributed
store rejects gets its local consumption refunded at once, so the decision
stays all-or-nothing across the two stores (between the two steps another
request may briefly see the local quota as spent).

The ASGI fast path calls ``decide_scope``: it decides the request when every
rule that could match it has a key available from the scope (``ip``,
``header:``) and no ``view=`` condition, and returns ``None`` otherwise, so
the middleware decides the whole request: each request is decided once and
all-or-nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import metrics
from ..routes import RouteIndex, normalize_method, scope_path
from ..switch import limits_enabled
from .decision import ALLOW_ALL, Decision, LimitCheck, Limiter, Policy
from .headers import build_headers
from .keys import KeyFunc, TrustedProxies, compile_key
from .local import LocalLimiter
from .rules import LimitRule

__all__ = ["NO_LIMITS", "LimitEngine", "LimitResult"]


class LimitResult:
    """What the engine decided for one request.

    ``allowed`` is False only when an enforced rule rejected.  ``rejected``
    and ``shadow_rejected`` name the rules; ``headers`` (built on first use)
    are the ``RateLimit-Policy`` and ``RateLimit`` pairs for the response.
    """

    __slots__ = ("_headers", "allowed", "decision", "shadow")

    def __init__(self, decision: Decision, shadow: Decision | None = None) -> None:
        self.decision = decision
        self.allowed = decision.allowed
        self.shadow = shadow
        self._headers: list[tuple[str, str]] | None = None

    @property
    def rejected(self) -> tuple[str, ...]:
        """Names of the enforced rules that rejected."""
        decision = self.decision
        if decision.allowed:
            return ()
        return tuple(o.check.policy.name for o in decision.outcomes if not o.allowed)

    @property
    def shadow_rejected(self) -> tuple[str, ...]:
        """Names of the shadow rules that would have rejected."""
        shadow = self.shadow
        if shadow is None or shadow.allowed:
            return ()
        return tuple(o.check.policy.name for o in shadow.outcomes if not o.allowed)

    @property
    def retry_after(self) -> float:
        """Seconds until a rejected request could pass (0 when allowed)."""
        return self.decision.retry_after

    @property
    def headers(self) -> list[tuple[str, str]]:
        if self._headers is None:
            outcomes = self.decision.outcomes
            if self.shadow is not None:
                outcomes = outcomes + self.shadow.outcomes
            self._headers = build_headers(outcomes)
        return self._headers

    def __repr__(self) -> str:
        return f"<LimitResult allowed={self.allowed} rejected={self.rejected}>"


NO_LIMITS = LimitResult(ALLOW_ALL)


class _Rule:
    __slots__ = ("distributed", "key", "matcher", "policy", "shadow", "view_free")

    def __init__(self, rule: LimitRule, key: KeyFunc, *, split_scope: bool) -> None:
        self.matcher = rule.matcher
        self.policy: Policy = rule.policy
        self.key = key
        self.shadow = rule.mode == "shadow"
        self.distributed = split_scope and rule.scope == "distributed"
        self.view_free = rule.matcher.view is None


class LimitEngine:
    """Decide the rate limits of requests; see the module docstring.

    Flags for the adapters, fixed when the engine is built: ``needs_view_name``
    (some rule has ``view=``: decide after URL resolution), ``needs_user``
    (some key reads ``request.user``: decide after ``AuthenticationMiddleware``,
    i.e. in ``process_view``), ``needs_request`` (some key needs a Django
    request), ``scope_capable`` (some rule can be decided from an ASGI scope).
    """

    __slots__ = (
        "_distributed",
        "_index",
        "_limiter",
        "_local",
        "_on_loop",
        "_rules",
        "loop_safe",
        "needs_request",
        "needs_user",
        "needs_view_name",
        "rules",
        "scope_capable",
    )

    def __init__(
        self,
        rules: Sequence[LimitRule],
        limiter: Limiter,
        *,
        local: LocalLimiter | None = None,
        trusted_proxies: TrustedProxies | None = None,
        key_funcs: Mapping[str, KeyFunc] | None = None,
    ) -> None:
        """``key_funcs`` may supply compiled keys by spec (tests, custom adapters)."""
        # limits_enabled(): read once here, so disable_limits() costs requests nothing.
        self.rules = tuple(r for r in rules if r.mode != "off") if limits_enabled() else ()
        self._limiter = limiter
        self._local = local
        # A local store decides without I/O: on the event loop it is called
        # directly, not awaited (a coroutine per request costs a third of a decision).
        self._on_loop = limiter.decide if isinstance(limiter, LocalLimiter) else None
        compiled: dict[str, KeyFunc] = dict(key_funcs or {})
        for rule in self.rules:
            if rule.key not in compiled:
                compiled[rule.key] = compile_key(rule.key, trusted_proxies)
        self._rules = tuple(
            _Rule(r, compiled[r.key], split_scope=local is not None) for r in self.rules
        )
        # Matching walks only the rules whose prefix the path starts with (plus
        # those without one), in rule order: thousands of admin rules on other
        # paths cost a request nothing.
        self._index: RouteIndex[_Rule] = RouteIndex((r.matcher, r) for r in self._rules)
        self._distributed = frozenset(id(r.policy) for r in self._rules if r.distributed)
        self.needs_view_name = any(r.matcher.needs_view_name for r in self.rules)
        self.needs_request = any(r.key.needs_request for r in self._rules)
        # request.user exists only after AuthenticationMiddleware: an adapter
        # running before it must decide such engines in process_view.
        self.needs_user = any(r.key.needs_user for r in self._rules)
        self.scope_capable = any(r.key.from_scope is not None and r.view_free for r in self._rules)
        # No I/O anywhere (one local store, keys that read nothing blocking):
        # the sync ``decide`` may then run on the event loop, saving the
        # coroutines of ``adecide`` (the adapters' hot path).
        self.loop_safe = (
            self._on_loop is not None
            and local is None
            and all(r.key.loop_safe for r in self._rules)
        )

    def __bool__(self) -> bool:
        return bool(self._rules)

    # -- sync -------------------------------------------------------------

    def decide(
        self, method: str, path: str, request: Any, view_name: str | None = None
    ) -> LimitResult:
        """Decide a Django request (sync code: a WSGI worker or a thread)."""
        enforce: list[LimitCheck] = []
        shadow: list[LimitCheck] | None = None
        for rule in self._index.candidates(path):
            if not rule.matcher.matches(method, path, view_name):
                continue
            key = rule.key.get(request)
            if key is None:
                continue
            if rule.shadow:
                if shadow is None:
                    shadow = []
                shadow.append(LimitCheck(rule.policy, key, 1))
            else:
                enforce.append(LimitCheck(rule.policy, key, 1))
        if shadow is None:
            if not enforce:
                return NO_LIMITS
            if self._local is None:
                decision = self._limiter.decide(tuple(enforce))
                if decision.allowed:  # reported only when refused: no call on the way
                    return LimitResult(decision)
                return self._result(decision, None)
        return self._result(*self._decide_both(enforce, shadow or []))

    def _decide_both(
        self, enforce: list[LimitCheck], shadow: list[LimitCheck]
    ) -> tuple[Decision, Decision | None]:
        """Enforced checks all-or-nothing, shadow checks as their own group.

        Each store is asked once for both groups: with Redis, shadow rules
        ride in the same script call as enforced ones (one round trip).
        """
        if self._local is None:
            return self._limiter.decide_with_shadow(tuple(enforce), tuple(shadow))
        local_e, shared_e = self._split(enforce)
        local_s, shared_s = self._split(shadow)
        first, first_s = self._local.decide_with_shadow(local_e, local_s)
        # Enforced distributed checks only when the local ones admitted.
        ask = shared_e if first.allowed else ()
        if not ask and not shared_s:
            return first, first_s
        second, second_s = self._limiter.decide_with_shadow(ask, shared_s)
        if ask and not second.allowed and local_e:
            # All-or-nothing across the two stores: the shared store said no,
            # so the local rules give back what they just took.
            self._local.refund(first)
        return (_merge(first, second) if ask else first), _merge_optional(first_s, second_s)

    def _split(
        self, checks: list[LimitCheck]
    ) -> tuple[tuple[LimitCheck, ...], tuple[LimitCheck, ...]]:
        distributed = self._distributed
        return (
            tuple(c for c in checks if id(c.policy) not in distributed),
            tuple(c for c in checks if id(c.policy) in distributed),
        )

    # -- async ------------------------------------------------------------

    async def adecide(
        self, method: str, path: str, request: Any, view_name: str | None = None
    ) -> LimitResult:
        """Decide a Django request on the event loop."""
        enforce: list[LimitCheck] = []
        shadow: list[LimitCheck] | None = None
        for rule in self._index.candidates(path):
            if not rule.matcher.matches(method, path, view_name):
                continue
            keyf = rule.key
            key = keyf.get(request) if keyf.loop_safe else await keyf.aget(request)
            if key is None:
                continue
            if rule.shadow:
                if shadow is None:
                    shadow = []
                shadow.append(LimitCheck(rule.policy, key, 1))
            else:
                enforce.append(LimitCheck(rule.policy, key, 1))
        if shadow is None:
            # The common case, one coroutine deep: enforced rules, one store.
            if not enforce:
                return NO_LIMITS
            if self._local is None:
                on_loop = self._on_loop
                decision = (
                    on_loop(tuple(enforce))
                    if on_loop is not None
                    else await self._limiter.adecide(tuple(enforce))
                )
                if decision.allowed:
                    return LimitResult(decision)
                return self._result(decision, None)
        return await self._adecide_checks(enforce, shadow)

    async def _adecide_checks(
        self, enforce: list[LimitCheck], shadow: list[LimitCheck] | None
    ) -> LimitResult:
        if not enforce and not shadow:
            return NO_LIMITS
        return self._result(*await self._adecide_both(enforce, shadow or []))

    async def _adecide_both(
        self, enforce: list[LimitCheck], shadow: list[LimitCheck]
    ) -> tuple[Decision, Decision | None]:
        if self._local is None:
            return await self._limiter.adecide_with_shadow(tuple(enforce), tuple(shadow))
        local_e, shared_e = self._split(enforce)
        local_s, shared_s = self._split(shadow)
        first, first_s = await self._local.adecide_with_shadow(local_e, local_s)
        ask = shared_e if first.allowed else ()
        if not ask and not shared_s:
            return first, first_s
        second, second_s = await self._limiter.adecide_with_shadow(ask, shared_s)
        if ask and not second.allowed and local_e:
            self._local.refund(first)
        return (_merge(first, second) if ask else first), _merge_optional(first_s, second_s)

    # -- ASGI fast path -----------------------------------------------------

    async def decide_scope(self, scope: Mapping[str, Any]) -> LimitResult | None:
        """Decide from a raw ASGI scope, or ``None`` if the middleware must decide.

        ``None`` when some rule that could match needs the Django request (its
        key, or a ``view=`` condition); then nothing was consumed here.
        """
        # The method as sent ("get" too): Django upper-cases it, so must we.
        method = normalize_method(scope.get("method", "GET"))
        checks = self._scope_checks(scope, method, scope_path(scope))
        if checks is None:
            return None
        enforce, shadow = checks
        if not shadow and self._local is None:
            if not enforce:
                return NO_LIMITS
            on_loop = self._on_loop
            if on_loop is not None:  # the common case, without a coroutine
                return self._result(on_loop(tuple(enforce)), None)
        return await self._adecide_checks(enforce, shadow or None)

    def decide_scope_now(
        self, scope: Mapping[str, Any], method: str, path: str
    ) -> LimitResult | None:
        """``decide_scope`` without a coroutine, only for a ``loop_safe`` engine;
        ``method`` upper case, ``path`` as ``scope_path`` gives it."""
        checks = self._scope_checks(scope, method, path)
        if checks is None:
            return None
        enforce, shadow = checks
        if shadow:
            return self._result(*self._limiter.decide_with_shadow(tuple(enforce), tuple(shadow)))
        if not enforce:
            return NO_LIMITS
        decision = self._limiter.decide(tuple(enforce))
        return LimitResult(decision) if decision.allowed else self._result(decision, None)

    def _scope_checks(
        self, scope: Mapping[str, Any], method: str, path: str
    ) -> tuple[list[LimitCheck], list[LimitCheck]] | None:
        """The checks of a scope's request, or ``None`` if only the middleware can tell.

        ``path`` is the one Django matches on (``path_info``, no mount point).
        """
        enforce: list[LimitCheck] = []
        shadow: list[LimitCheck] = []
        for rule in self._index.candidates(path):
            matcher = rule.matcher
            # Passing the rule's own view name asks "would it match if the URL
            # resolved to that view": if so, only the middleware can tell.
            if not matcher.matches(method, path, matcher.view):
                continue
            from_scope = rule.key.from_scope
            if from_scope is None or not rule.view_free:
                return None
            key = from_scope(scope)
            if key is None:
                continue
            (shadow if rule.shadow else enforce).append(LimitCheck(rule.policy, key, 1))
        return enforce, shadow

    # -- shared -------------------------------------------------------------

    @staticmethod
    def _result(decision: Decision, shadow: Decision | None) -> LimitResult:
        result = LimitResult(decision, shadow)
        # Reporting happens here, once per request, whichever adapter decided.
        if not decision.allowed:
            for name in result.rejected:
                metrics.request_rejected(name, "rate_limited")
        if shadow is not None and not shadow.allowed:
            for name in result.shadow_rejected:
                metrics.request_rejected(name, "shadow")
        return result


def _merge_optional(first: Decision | None, second: Decision | None) -> Decision | None:
    if first is None:
        return second
    if second is None:
        return first
    return _merge(first, second)


def _merge(first: Decision, second: Decision) -> Decision:
    if not first.outcomes:
        return second
    return Decision(
        first.allowed and second.allowed, first.outcomes + second.outcomes, second.backend
    )
