"""One limiting engine for every adapter: middleware, ASGI fast path, view decorator.

Every matching rule with a key is decided in one all-or-nothing call, shadow rules as a
group of their own; local-scope rules first, refunded on a distributed refusal
(docs/limits.md, "One decision per request")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import metrics
from ..routes import RouteIndex, normalize_method, scope_path
from ..switch import limits_enabled
from .decision import ALLOW_ALL, Decision, LimitCheck, Limiter, Policy, RuleOutcome
from .headers import build_headers, raw_headers
from .keys import KeyFunc, compile_key
from .local import LocalLimiter
from .proxies import TrustedProxies
from .rules import LimitRule

__all__ = ["NO_LIMITS", "LimitEngine", "LimitResult", "merge_decisions", "merge_results"]


class LimitResult:
    """What the engine decided for one request: ``allowed`` is False only when an enforced
    rule rejected; ``headers`` (built on first use) are the ``RateLimit-Policy`` and
    ``RateLimit`` pairs for the response."""

    __slots__ = ("_headers", "allowed", "decision", "shadow")

    def __init__(self, decision: Decision, shadow: Decision | None = None) -> None:
        self.decision = decision
        self.allowed = decision.allowed
        self.shadow = shadow
        self._headers: list[tuple[str, str]] | None = None

    @property
    def rejected(self) -> tuple[str, ...]:
        """Names of the enforced rules that rejected."""
        return _refusing(self.decision)

    @property
    def shadow_rejected(self) -> tuple[str, ...]:
        """Names of the shadow rules that would have rejected."""
        return _refusing(self.shadow)

    @property
    def retry_after(self) -> float:
        """Seconds until a rejected request could pass (0 when allowed)."""
        return self.decision.retry_after

    @property
    def headers(self) -> list[tuple[str, str]]:
        if self._headers is None:
            self._headers = build_headers(self._outcomes())
        return self._headers

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """``headers`` as ASGI header bytes, for a response still to start."""
        return raw_headers(self._outcomes())

    def _outcomes(self) -> tuple[RuleOutcome, ...]:
        outcomes = self.decision.outcomes
        return outcomes if self.shadow is None else outcomes + self.shadow.outcomes

    def __repr__(self) -> str:
        return f"<LimitResult allowed={self.allowed} rejected={self.rejected}>"


NO_LIMITS = LimitResult(ALLOW_ALL)


def _refusing(decision: Decision | None) -> tuple[str, ...]:
    if decision is None or decision.allowed:
        return ()
    return tuple(o.check.policy.name for o in decision.outcomes if not o.allowed)


class _CompiledRule:
    __slots__ = ("key", "matcher", "policy", "shadow")

    def __init__(self, rule: LimitRule, key: KeyFunc) -> None:
        self.matcher = rule.matcher
        self.policy: Policy = rule.policy
        self.key = key
        self.shadow = rule.mode == "shadow"


class LimitEngine:
    """Decide the rate limits of requests.  Flags for the adapters, fixed when built:
    ``needs_view_name`` (some rule has ``view=``), ``needs_request`` (some key needs a Django
    request: ``user`` keys and callables read ``request.user``), ``scope_capable`` (some rule
    can be decided from a scope)."""

    __slots__ = ("_distributed", "_index", "_limiter", "_local", "_on_loop", "_rules", "loop_safe",
                 "needs_request", "needs_view_name", "rules", "scope_capable")  # fmt: skip

    def __init__(
        self, rules: Sequence[LimitRule], limiter: Limiter, *, local: LocalLimiter | None = None,
        trusted_proxies: TrustedProxies | None = None,
    ) -> None:  # fmt: skip
        # limits_enabled(): read once here, so disable_limits() costs requests nothing.
        self.rules = tuple(r for r in rules if r.mode != "off") if limits_enabled() else ()
        self._limiter = limiter
        self._local = local
        # A local store needs no I/O: on the loop it is called, not awaited (a coroutine per
        # request costs a third of a decision).
        self._on_loop = limiter.decide if isinstance(limiter, LocalLimiter) else None
        specs = dict.fromkeys(r.key for r in self.rules)
        keys = {spec: compile_key(spec, trusted_proxies) for spec in specs}
        self._rules = tuple(_CompiledRule(r, keys[r.key]) for r in self.rules)
        # Only rules whose prefix the path starts with are tried (docs/limits.md).
        self._index: RouteIndex[_CompiledRule] = RouteIndex((r.matcher, r) for r in self._rules)
        self._distributed = frozenset(id(r.policy) for r in self.rules if r.scope == "distributed")
        self.needs_view_name = any(r.matcher.needs_view_name for r in self.rules)
        self.needs_request = any(r.key.needs_request for r in self._rules)
        self.scope_capable = any(r.key.from_scope and r.matcher.view is None for r in self._rules)
        # No I/O anywhere (one local store, keys that read nothing blocking): the sync
        # ``decide`` may run on the event loop, saving ``adecide``'s coroutines.
        self.loop_safe = self._on_loop is not None and local is None
        self.loop_safe &= all(r.key.loop_safe for r in self._rules)

    def __bool__(self) -> bool:
        return bool(self._rules)

    # -- deciding: the sync and async twins differ only in reading keys and asking stores

    def decide(
        self, method: str, path: str, request: Any, view_name: str | None = None
    ) -> LimitResult:
        """Decide a Django request (sync code: a WSGI worker or a thread)."""
        checks: list[Checks] = [(), ()]  # enforced, shadow: indexed by rule.shadow
        for rule in self._index.candidates(path):
            if rule.matcher.matches(method, path, view_name):
                key = rule.key.get(request)
                if key is not None:  # a rule whose key is missing does not apply
                    checks[rule.shadow] += (LimitCheck(rule.policy, key, 1),)
        return self._decide_checks(*checks)

    async def adecide(
        self, method: str, path: str, request: Any, view_name: str | None = None
    ) -> LimitResult:
        """Decide a Django request on the event loop."""
        checks: list[Checks] = [(), ()]  # enforced, shadow
        for rule in self._index.candidates(path):
            if rule.matcher.matches(method, path, view_name):
                key_func = rule.key
                key = key_func.get(request) if key_func.loop_safe else await key_func.aget(request)
                if key is not None:
                    checks[rule.shadow] += (LimitCheck(rule.policy, key, 1),)
        return self._without_io(*checks) or await self._adecide_checks(*checks)

    def _without_io(self, enforce: Checks, shadow: Checks) -> LimitResult | None:
        """The answer when it needs no I/O (no checks, or one local store), else ``None``."""
        if not enforce and not shadow:
            return NO_LIMITS
        if shadow or self._local is not None or self._on_loop is None:
            return None
        return self._result(self._on_loop(enforce), None)

    def _decide_checks(self, enforce: Checks, shadow: Checks) -> LimitResult:
        """Enforced checks all-or-nothing, shadow checks as their own group, each store
        asked once for both (with Redis, one script call)."""
        if not enforce and not shadow:
            return NO_LIMITS
        if self._local is None:
            if not shadow:
                decision = self._limiter.decide(enforce)
                return LimitResult(decision) if decision.allowed else self._result(decision, None)
            return self._result(*self._limiter.decide_with_shadow(enforce, shadow))
        split = _Split(self._local, self._distributed, enforce, shadow)
        if split.ask or split.shared_s:
            split.second(*self._limiter.decide_with_shadow(split.ask, split.shared_s))
        return self._result(split.first, split.first_s)

    async def _adecide_checks(self, enforce: Checks, shadow: Checks) -> LimitResult:
        if self._local is None:
            if not shadow:
                return self._result(await self._limiter.adecide(enforce), None)
            return self._result(*await self._limiter.adecide_with_shadow(enforce, shadow))
        split = _Split(self._local, self._distributed, enforce, shadow)
        if split.ask or split.shared_s:
            split.second(*await self._limiter.adecide_with_shadow(split.ask, split.shared_s))
        return self._result(split.first, split.first_s)

    # -- ASGI fast path -----------------------------------------------------

    async def decide_scope(self, scope: Mapping[str, Any]) -> LimitResult | None:
        """Decide from a raw ASGI scope, or ``None`` (nothing consumed) if some rule that could
        match needs the Django request (its key, or a ``view=`` condition)."""
        # The method as sent ("get" too): Django upper-cases it, so must we.
        method = normalize_method(scope.get("method", "GET"))
        checks = self._scope_checks(scope, method, scope_path(scope))
        if checks is None:
            return None
        return self._without_io(*checks) or await self._adecide_checks(*checks)

    def decide_scope_now(
        self, scope: Mapping[str, Any], method: str, path: str
    ) -> LimitResult | None:
        """``decide_scope`` without a coroutine, only for a ``loop_safe`` engine;
        ``method`` upper case, ``path`` as ``scope_path`` gives it."""
        checks = self._scope_checks(scope, method, path)
        return None if checks is None else self._decide_checks(*checks)

    def _scope_checks(
        self, scope: Mapping[str, Any], method: str, path: str
    ) -> list[Checks] | None:
        """A scope's [enforced, shadow] checks, or ``None`` if only the middleware can tell;
        ``path`` is the one Django matches on (``path_info``, no mount point)."""
        checks: list[Checks] = [(), ()]  # enforced, shadow
        for rule in self._index.candidates(path):
            matcher = rule.matcher
            # Passing the rule's view asks whether it would match if the URL resolved to that view.
            if not matcher.matches(method, path, matcher.view):
                continue
            from_scope = rule.key.from_scope
            if from_scope is None or matcher.view is not None:
                return None
            key = from_scope(scope)
            if key is not None:
                checks[rule.shadow] += (LimitCheck(rule.policy, key, 1),)
        return checks

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


# A request's checks, grown a tuple at a time: most requests match one rule (one 1-tuple).
Checks = tuple[LimitCheck, ...]


class _Split:
    """A decision across two stores: the local checks decided here, the distributed ones
    (``ask``, ``shared_s``) asked by the caller, sync or async, and handed to ``second``."""

    __slots__ = ("ask", "first", "first_s", "local", "local_e", "shared_s")

    def __init__(
        self, local: LocalLimiter, distributed: frozenset[int], enforce: Checks, shadow: Checks
    ) -> None:
        self.local = local
        self.local_e = tuple(c for c in enforce if id(c.policy) not in distributed)
        local_s = tuple(c for c in shadow if id(c.policy) not in distributed)
        self.shared_s = tuple(c for c in shadow if id(c.policy) in distributed)
        self.first, self.first_s = local.decide_with_shadow(self.local_e, local_s)
        shared_e = tuple(c for c in enforce if id(c.policy) in distributed)
        self.ask = shared_e if self.first.allowed else ()

    def second(self, decision: Decision, shadow: Decision | None) -> None:
        if self.ask:
            if not decision.allowed and self.local_e:
                # All-or-nothing across the two stores: the local rules give back what they took.
                self.local.refund(self.first)
            self.first = merge_decisions(self.first, decision)
        if shadow is not None:
            self.first_s = merge_decisions(self.first_s, shadow)


def merge_decisions(first: Decision | None, second: Decision) -> Decision:
    """Two decisions as one, allowed only if both are (``first`` may be absent or empty)."""
    if first is None or not first.outcomes:
        return second
    allowed = first.allowed and second.allowed
    return Decision(allowed, first.outcomes + second.outcomes, second.backend)


def merge_results(first: LimitResult, second: LimitResult) -> LimitResult:
    """The middleware's decision and a view's own (``@limit``, a DRF throttle) as one."""
    first_s, second_s = first.shadow, second.shadow
    shadow = first_s if second_s is None else merge_decisions(first_s, second_s)
    return LimitResult(merge_decisions(first.decision, second.decision), shadow)
