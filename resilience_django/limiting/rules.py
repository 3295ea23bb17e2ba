"""Limit rules: which requests, keyed how, limited how fast, enforced or not.

A rule in ``RESILIENCE["LIMITS"]`` (or an admin-defined one) is a mapping::

    {"name": "orders-per-ip", "path": "/api/orders", "methods": ["POST"],
     "key": "ip", "rate": "100/m", "burst": 20, "algorithm": "sliding_window",
     "scope": "local", "mode": "enforce"}

Only ``name`` and ``rate`` are required.  Defaults: ``key="ip"``,
``algorithm="sliding_window"``, ``scope="local"``, ``mode="enforce"``, no
``burst`` (token bucket and GCRA then allow ``rate``'s count at once), and no
``path``/``view``/``methods`` (the rule matches every request).

Every problem raises ``ConfigError`` with its own check id (listed in
``CHECK_IDS`` so the docs and the system checks can name them):
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..exceptions import ConfigError
from ..routes import RouteMatcher, parse_route_matcher
from ..units import MAX_BURST, bounded_int, parse_rate, safe_repr
from .decision import Algorithm, Policy
from .keys import check_key_spec

__all__ = [
    "CHECK_IDS",
    "MODES",
    "RULE_FIELDS",
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
    {"name", "path", "view", "methods", "key", "rate", "burst", "algorithm", "scope", "mode"}
)

CHECK_IDS: dict[str, str] = {
    "resilience.E020": "a limit rule's rate is missing or not a rate such as '100/m'",
    "resilience.E021": "a limit rule names an unknown algorithm",
    "resilience.E022": "a limit rule's key is not a known key function or importable callable",
    "resilience.E023": "a limit rule's scope is not 'local' or 'distributed'",
    "resilience.E024": "a limit rule's mode is not 'enforce', 'shadow' or 'off'",
    "resilience.E025": "a limit rule's burst is not an integer from 1 to 1_000_000_000",
    "resilience.E026": "a limit rule's name is missing, malformed or used twice",
    "resilience.E027": "a limit rule's path, view or methods cannot be used",
    "resilience.E028": "a limit rule is not a dict",
    "resilience.E029": "a limit rule has an unknown field",
    "resilience.E030": "RESILIENCE['LIMITS'] is not a list of rules",
}
__doc__ = (__doc__ or "") + "\n" + "\n".join(f"- ``{k}``: {v}" for k, v in CHECK_IDS.items())

# Names travel in the RateLimit headers as quoted strings and in metric labels:
# keep them to characters that need no escaping anywhere.
_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,100}\Z")


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One parsed rule; ``key`` stays the spec string, compiled by the engine."""

    name: str
    matcher: RouteMatcher
    key: str
    policy: Policy
    scope: Scope = "local"
    mode: Mode = "enforce"

    @property
    def rate(self) -> str:
        return str(self.policy.rate)


def _error(where: str, message: str, check_id: str, hint: str) -> ConfigError:
    return ConfigError(f"{where}: {message}", check_id=f"resilience.{check_id}", hint=hint)


def parse_limit_rule(
    mapping: Mapping[str, Any], *, index: int, allow_regex: bool = True
) -> LimitRule:
    """Parse one rule of ``RESILIENCE["LIMITS"]``; ``index`` names it in errors.

    ``allow_regex=False`` (admin rows) refuses a regex ``path``.
    """
    where = f"RESILIENCE['LIMITS'][{index}]"
    if not isinstance(mapping, Mapping):
        raise _error(
            where,
            f"a rule must be a dict, not {type(mapping).__name__}",
            "E028",
            "Example: {'name': 'api-per-ip', 'path': '/api/', 'rate': '100/m'}",
        )
    name = mapping.get("name")
    if not isinstance(name, str) or _NAME.match(name) is None:
        raise _error(
            where,
            f"name {name!r} must be 1-100 letters, digits or _ . : / -",
            "E026",
            "Every rule needs a unique name; it appears in headers, metrics and errors.",
        )
    where = f"{where} ({name!r})"
    unknown = sorted(set(map(str, mapping)) - RULE_FIELDS)
    if unknown:
        raise _error(
            where,
            f"unknown field(s) {', '.join(unknown)}",
            "E029",
            f"Known fields: {', '.join(sorted(RULE_FIELDS))}.",
        )
    if "rate" not in mapping:
        raise _error(where, "rate is missing", "E020", "Add a rate such as '100/m' or '10/s'.")
    try:
        rate = parse_rate(mapping["rate"])
    except ValueError as exc:
        raise _error(
            where,
            str(exc),
            "E020",
            "Write a rate like '100/m', '10/s', '5000/h' or '100/30s': a count from 1 to "
            "1_000_000_000 per a period from 1ms to 365 days.",
        ) from exc
    algorithm_value = mapping.get("algorithm", Algorithm.SLIDING_WINDOW.value)
    try:
        algorithm = Algorithm(algorithm_value)
    except ValueError:
        raise _error(
            where,
            f"algorithm {algorithm_value!r} is unknown",
            "E021",
            f"Use one of {', '.join(a.value for a in Algorithm)}.",
        ) from None
    burst = mapping.get("burst")
    if burst is not None and bounded_int(burst, minimum=1, maximum=MAX_BURST) is None:
        raise _error(
            where,
            f"burst {safe_repr(burst)} must be an integer from 1 to {MAX_BURST:_}",
            "E025",
            "burst is how many requests token bucket and GCRA admit at once; omit it for the "
            "rate's count.",
        )
    key = mapping.get("key", "ip")
    check_key_spec(key, where=where)
    scope = mapping.get("scope", "local")
    if scope not in SCOPES:
        raise _error(
            where,
            f"scope {scope!r} is unknown",
            "E023",
            "Use 'local' (per process) or 'distributed' (shared through Redis).",
        )
    mode = mapping.get("mode", "enforce")
    if mode not in MODES:
        raise _error(
            where,
            f"mode {mode!r} is unknown",
            "E024",
            "Use 'enforce', 'shadow' (count and report, never block) or 'off'.",
        )
    matcher = parse_route_matcher(
        mapping, where=where, check_id="resilience.E027", allow_regex=allow_regex
    )
    return LimitRule(
        name=name,
        matcher=matcher,
        key=key,
        policy=Policy(name=name, rate=rate, algorithm=algorithm, burst=burst),
        scope=scope,
        mode=mode,
    )


def parse_limit_rules(value: Any) -> tuple[tuple[LimitRule, ...], tuple[ConfigError, ...]]:
    """Parse the whole ``LIMITS`` list: the rules that parsed, and every problem.

    Never raises, like the rest of the settings: a bad rule is left out and
    reported, the others stay in force.
    """
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
            rule = parse_limit_rule(raw, index=index)
        except ConfigError as exc:
            errors.append(exc)
            continue
        if rule.name in seen:
            errors.append(
                _error(
                    f"RESILIENCE['LIMITS'][{index}]",
                    f"name {rule.name!r} is used by an earlier rule",
                    "E026",
                    "Rule names must be unique: they key the counters.",
                )
            )
            continue
        seen.add(rule.name)
        rules.append(rule)
    return tuple(rules), tuple(errors)
