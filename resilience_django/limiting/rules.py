"""Limit rules: which requests, keyed how, limited how fast, enforced or not.

Fields and defaults: docs/settings.md (``LIMITS``).  Every problem is a ``ConfigError`` with
its own check id (docs/checks.md); several at once are one ``ConfigErrors``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..exceptions import ConfigError, ConfigErrors, every_error
from ..routes import RouteMatcher, parse_route_matcher
from ..units import MAX_BURST, bounded_int, parse_rate, safe_repr, safe_str
from .decision import Algorithm, Policy
from .keys import check_key_spec

__all__ = [
    "MODES",
    "RULE_FIELDS",
    "RULE_NAME",
    "SCOPES",
    "LimitRule",
    "parse_limit_rule",
    "parse_limit_rules",
]

Scope = Literal["local", "distributed"]
Mode = Literal["enforce", "shadow", "off"]
SCOPES: tuple[Scope, ...] = ("local", "distributed")
MODES: tuple[Mode, ...] = ("enforce", "shadow", "off")
RULE_FIELDS = frozenset(
    {
        "name", "path", "view", "methods", "key", "rate", "burst", "algorithm", "scope", "mode",
        "after_auth",
    }
)  # fmt: skip

# Names travel in the RateLimit headers as quoted strings and in metric labels:
# keep them to characters that need no escaping anywhere (shedding rule names too).
RULE_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,100}\Z")


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One parsed rule; ``key`` stays the spec string, compiled by the engine."""

    name: str
    matcher: RouteMatcher
    key: str
    policy: Policy
    scope: Scope = "local"
    mode: Mode = "enforce"
    # Decided by the DRF throttle after authentication, never by the middleware.
    after_auth: bool = False

    @property
    def rate(self) -> str:
        return str(self.policy.rate)


def _error(where: str, message: str, check_id: str, hint: str) -> ConfigError:
    return ConfigError(f"{where}: {message}", check_id=f"resilience.{check_id}", hint=hint)


def parse_limit_rule(
    mapping: Mapping[str, Any],
    *,
    index: int,
    allow_regex: bool = True,
    default_scope: Scope = "local",
) -> LimitRule:
    """Parse one rule of ``RESILIENCE["LIMITS"]``; ``index`` names it in errors,
    ``allow_regex=False`` (admin rows) refuses a regex ``path``, and ``default_scope`` is the
    scope of a rule that names none (``BACKEND``'s)."""
    where = f"RESILIENCE['LIMITS'][{index}]"
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"{where}: a rule must be a dict, not {type(mapping).__name__}",
            check_id="resilience.E028",
            hint="Example: {'name': 'api-per-ip', 'path': '/api/', 'rate': '100/m'}",
        )
    # Every problem is raised together, so `check` lists them all in one run.
    problems: list[ConfigError] = []

    def bad(message: str, check_id: str, hint: str) -> None:
        problems.append(_error(where, message, check_id, hint))

    name = mapping.get("name")
    if not isinstance(name, str) or RULE_NAME.match(name) is None:
        bad(f"name {safe_repr(name)} must be 1-100 letters, digits or _ . : / -", "E026",
            "Every rule needs a unique name: it is in headers, metrics and errors.")  # fmt: skip
        name = ""
    else:
        where = f"{where} ({safe_repr(name)})"
    unknown = sorted(set(map(safe_str, mapping)) - RULE_FIELDS)
    if unknown:
        bad(f"unknown field(s) {', '.join(unknown)}", "E029",
            f"Known fields: {', '.join(sorted(RULE_FIELDS))}.")  # fmt: skip
    rate = None
    if "rate" not in mapping:
        bad("rate is missing", "E020", "Add a rate such as '100/m' or '10/s'.")
    else:
        try:
            rate = parse_rate(mapping["rate"])
        except ValueError as exc:
            bad(str(exc), "E020",
                "Write a rate like '100/m', '10/s', '5000/h' or '100/30s': a count from 1 to "
                "1_000_000_000 per a period from 1ms to 365 days.")  # fmt: skip
    algorithm_value = mapping.get("algorithm", Algorithm.SLIDING_WINDOW.value)
    algorithm: Algorithm | None = Algorithm.SLIDING_WINDOW
    try:
        algorithm = Algorithm(algorithm_value)
    except ValueError:
        algorithm = None
        bad(f"algorithm {safe_repr(algorithm_value)} is unknown", "E021",
            f"Use one of {', '.join(a.value for a in Algorithm)}.")  # fmt: skip
    burst = mapping.get("burst")
    if burst is not None and bounded_int(burst, minimum=1, maximum=MAX_BURST) is None:
        bad(f"burst {safe_repr(burst)} must be an integer from 1 to {MAX_BURST:_}", "E025",
            "burst is how many requests token bucket and GCRA admit at once; omit it for the "
            "rate's count.")  # fmt: skip
    elif burst is not None and algorithm is Algorithm.SLIDING_WINDOW:
        # The window has no burst to set: taking it silently would promise what it never does.
        hint = (
            "Omit burst, or pick 'algorithm': 'token_bucket' or 'gcra', which admit up to "
            "burst requests at once."
        )
        bad(f"burst {burst} has no meaning for the sliding_window algorithm", "E025", hint)
    key = mapping.get("key", "ip")
    try:
        check_key_spec(key, where=where)
    except ConfigError as exc:
        problems.append(exc)
    scope = mapping.get("scope", default_scope)
    if scope not in SCOPES:
        bad(f"scope {safe_repr(scope)} is unknown", "E023",
            "Use 'local' (per process) or 'distributed' (shared through Redis).")  # fmt: skip
    mode = mapping.get("mode", "enforce")
    if mode not in MODES:
        bad(f"mode {safe_repr(mode)} is unknown", "E024",
            "Use 'enforce', 'shadow' (count and report, never block) or 'off'.")  # fmt: skip
    after_auth = mapping.get("after_auth", False)
    if not isinstance(after_auth, bool):
        bad(f"after_auth {safe_repr(after_auth)} must be True or False", "E031",
            "after_auth: True leaves the rule to the DRF throttle ResilienceRulesThrottle, "
            "decided once DRF has authenticated the request.")  # fmt: skip
    try:
        matcher = parse_route_matcher(
            mapping, where=where, check_id="resilience.E027", allow_regex=allow_regex
        )
    except ConfigError as exc:
        problems.append(exc)
    if problems:
        raise problems[0] if len(problems) == 1 else ConfigErrors(problems)
    assert rate is not None and algorithm is not None  # no problem reported: both parsed
    policy = Policy(name=name, rate=rate, algorithm=algorithm, burst=burst)
    return LimitRule(name, matcher, key, policy, scope, mode, after_auth)


def parse_limit_rules(
    value: Any, *, default_scope: Scope = "local"
) -> tuple[tuple[LimitRule, ...], tuple[ConfigError, ...]]:
    """Parse the whole ``LIMITS`` list: the rules that parsed, and every problem.  Never
    raises: a bad rule is left out and reported, the others stay in force."""
    if value is None:
        return (), ()
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        return (), (
            ConfigError(
                f"RESILIENCE['LIMITS'] must be a list of rules, not {type(value).__name__}",
                check_id="resilience.E030",
                hint="Example: 'LIMITS': [{'name': 'api', 'path': '/api/', 'rate': '100/m'}]",
            ),
        )
    rules: list[LimitRule] = []
    errors: list[ConfigError] = []
    seen: set[str] = set()
    for index, raw in enumerate(value):
        try:
            rule = parse_limit_rule(raw, index=index, default_scope=default_scope)
        except ConfigError as exc:
            errors.extend(every_error(exc))
            continue
        if rule.name in seen:
            message = f"name {safe_repr(rule.name)} is used by an earlier rule"
            hint = "Rule names must be unique: they key the counters."
            errors.append(_error(f"RESILIENCE['LIMITS'][{index}]", message, "E026", hint))
            continue
        seen.add(rule.name)
        rules.append(rule)
    return tuple(rules), tuple(errors)
