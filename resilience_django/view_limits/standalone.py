"""One rule decided on demand (``@limit``, ``is_ratelimited``, the DRF throttles), on the
runtime's stores, so it follows ``BACKEND`` and ``scope`` exactly like a settings rule."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from .. import metrics
from ..conf import ResilienceSettings
from ..exceptions import ConfigError
from ..limiting.decision import ALLOW_ALL, Decision, LimitCheck, Policy
from ..limiting.engine import LimitResult
from ..limiting.keys import KeyFunc, compile_key
from ..limiting.local import LocalLimiter
from ..limiting.proxies import TrustedProxies
from ..limiting.rules import LimitRule, Scope, parse_limit_rule
from ..switch import limits_enabled
from ..units import Rate, parse_rate

__all__ = ["KeyFactory", "StandaloneRule", "shared_rule"]

# Builds a rule's key for the TRUSTED_PROXIES in force (the ip key reads them).
KeyFactory = Callable[[TrustedProxies | None], KeyFunc]

# Distinct rates one rule remembers, each one Policy (the stores find a policy's compiled form by
# identity); past it the cache starts afresh, lest a rate computed per client grow without bound.
_MAX_POLICIES = 256
_MAX_RULES = 1024
_rules: dict[Hashable, StandaloneRule] = {}
_rules_lock = threading.Lock()


def shared_rule(definition: Hashable, make: Callable[[], StandaloneRule]) -> StandaloneRule:
    """The rule ``make()`` builds, made once per distinct ``definition`` and shared by every
    caller (``is_ratelimited``, the DRF throttles); past ``_MAX_RULES`` the cache starts afresh."""
    rule = _rules.get(definition)
    if rule is None:
        rule = make()
        with _rules_lock:
            if len(_rules) >= _MAX_RULES:
                _rules.clear()
            rule = _rules.setdefault(definition, rule)
    return rule


class StandaloneRule:
    """A parsed rule plus what deciding it needs; safe to share between threads.  ``spec`` is a
    ``RESILIENCE["LIMITS"]`` rule (``scope`` ``None``: follow ``BACKEND``); ``make_key`` builds
    the key its ``key`` names when ours cannot (``post:<field>``, callables).  Raises
    ``ConfigError`` for a bad spec."""

    __slots__ = ("_key", "_lock", "_make_key", "_policies", "rule", "scope")

    def __init__(
        self, spec: Mapping[str, Any], *, where: str, make_key: KeyFactory | None = None
    ) -> None:
        spec = {k: v for k, v in spec.items() if k != "scope" or v is not None}
        scope, key = spec.get("scope"), spec.get("key")
        if make_key is not None:
            spec["key"] = "ip"  # validated elsewhere; only the other fields are checked here
        try:
            rule = parse_limit_rule(spec, index=0)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}", check_id=exc.check_id, hint=exc.hint) from exc
        self.rule: LimitRule = rule if make_key is None else replace(rule, key=str(key))
        self.scope: Scope | None = scope
        self._make_key = make_key or partial(compile_key, self.rule.key)
        self._policies: dict[Rate, Policy] = {rule.policy.rate: rule.policy}
        self._key: tuple[ResilienceSettings, KeyFunc] | None = None
        self._lock = threading.Lock()

    def policy(self, rate: str | Rate) -> Policy:
        """The rule's policy with ``rate``; raises ``ValueError`` if bad."""
        parsed = parse_rate(rate)
        policy = self._policies.get(parsed)
        if policy is None:
            policy = replace(self.rule.policy, rate=parsed)
            with self._lock:
                if len(self._policies) >= _MAX_POLICIES:
                    self._policies.clear()
                policy = self._policies.setdefault(parsed, policy)
        return policy

    def applies(self, method: str) -> bool:
        """Whether the rule covers this method (not ``mode="off"``, nor ``disable_limits()``)."""
        rule = self.rule
        return limits_enabled() and rule.mode != "off" and rule.matcher.matches(method, "/", None)

    def decide(self, request: Any, policy: Policy | None, cost: int = 1) -> LimitResult | None:
        """Decide ``request`` against ``policy``; ``None`` without a key or a policy.  ``cost=0``
        peeks: nothing consumed or reported; ``remaining`` says how many would pass."""
        if policy is None:
            return None
        store, key_func = self._parts()
        key = key_func.get(request)
        if key is None:
            return None
        return self._result(store.decide((LimitCheck(policy, key, cost),)), cost)

    async def adecide(
        self, request: Any, policy: Policy | None, cost: int = 1
    ) -> LimitResult | None:
        """``decide`` on the event loop."""
        if policy is None:
            return None
        store, key_func = self._parts()
        key = key_func.get(request) if key_func.loop_safe else await key_func.aget(request)
        if key is None:
            return None
        checks = (LimitCheck(policy, key, cost),)
        if isinstance(store, LocalLimiter):  # no I/O: decided inline, no coroutine
            return self._result(store.decide(checks), cost)
        return self._result(await store.adecide(checks), cost)

    def _parts(self) -> tuple[Any, KeyFunc]:
        from ..runtime import get_runtime  # here: views import @limit early, at URLconf load

        runtime = get_runtime()
        shared = runtime.stores.distributed
        # Without a scope, the rule follows BACKEND: shared whenever there is Redis.
        store = shared if shared is not None and self.scope != "local" else runtime.stores.local
        # ip keys read TRUSTED_PROXIES: built again when the settings change.
        cached = self._key
        if cached is None or cached[0] is not runtime.settings:
            key_func = self._make_key(runtime.settings.trusted_proxies)
            self._key = cached = (runtime.settings, key_func)
        return store, cached[1]

    def _result(self, decision: Decision, cost: int) -> LimitResult:
        if cost == 0:
            return LimitResult(decision)
        shadow = self.rule.mode == "shadow"
        if not decision.allowed:
            metrics.request_rejected(self.rule.name, "shadow" if shadow else "rate_limited")
        return LimitResult(ALLOW_ALL, decision) if shadow else LimitResult(decision)
