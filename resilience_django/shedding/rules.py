"""``RESILIENCE["SHEDDING"]`` rules: which requests share a bulkhead, and how big it is
(docs/shedding.md; check ids E070-E080: docs/checks.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..clock import Clock, monotonic
from ..exceptions import ConfigError, ConfigErrors, every_error
from ..limiting.keys import HEADER_NAME
from ..limiting.rules import RULE_NAME
from ..routes import RouteMatcher, compile_path, method_set, parse_route_matcher
from ..units import (
    MAX_CONCURRENT,
    MAX_DEADLINE,
    MAX_QUEUE,
    bounded_int,
    parse_duration,
    safe_repr,
    safe_str,
)
from .adaptive import AdaptiveLimit
from .bulkhead import Bulkhead

__all__ = ["SheddingRule", "parse_shedding_rule", "parse_shedding_rules"]

_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})
# Every request of the rule scans them (is_critical): a bound keeps that cheap.
MAX_CRITICAL_PATHS = 100

KNOWN_KEYS = frozenset(
    {
        "name", "path", "view", "methods", "max_concurrent", "queue", "max_wait", "adaptive",
        "min_concurrent", "critical_share", "critical", "critical_paths", "critical_methods",
        "critical_header", "exempt_streams",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SheddingRule:
    """One parsed shedding rule; ``make_bulkhead()`` builds its (stateful) bulkhead."""

    name: str
    matcher: RouteMatcher
    max_concurrent: int
    queue: int = 0
    max_wait: float = 0.1
    adaptive: bool = False
    min_concurrent: int = 1
    critical_share: float = 0.0
    critical: bool = False
    critical_prefixes: tuple[str, ...] = ()
    critical_regexes: tuple[re.Pattern[str], ...] = ()
    critical_methods: frozenset[str] = frozenset()
    critical_header: str | None = None
    # True: a streamed body gives its slot back when the view returns (SSE).
    exempt_streams: bool = False

    def is_critical(self, method: str, path: str, header: str | None = None) -> bool:
        """Whether a request may use the reserved share; ``header``: its ``critical_header``."""
        if self.critical or method in self.critical_methods:
            return True
        if header is not None and header.strip().lower() not in _FALSE_WORDS:
            return True
        if any(path.startswith(p) for p in self.critical_prefixes):
            return True
        return any(r.match(path) for r in self.critical_regexes)

    def wait_timeout(self, remaining: float | None) -> float:
        """How long a request may queue: ``max_wait``, never past its own deadline."""
        return self.max_wait if remaining is None else max(0.0, min(self.max_wait, remaining))

    def make_bulkhead(self, *, clock: Clock = monotonic) -> Bulkhead:
        limit: int | AdaptiveLimit = self.max_concurrent
        if self.adaptive:
            limit = AdaptiveLimit(
                initial_limit=self.min_concurrent,
                min_limit=self.min_concurrent,
                max_limit=self.max_concurrent,
                clock=clock,
            )
        bulkhead = Bulkhead(
            self.name, limit, queue=self.queue, critical_share=self.critical_share, clock=clock
        )
        bulkhead.exempt_streams = self.exempt_streams
        return bulkhead


def parse_shedding_rule(mapping: object, *, index: int, allow_regex: bool = True) -> SheddingRule:
    """Parse one entry of ``RESILIENCE["SHEDDING"]``; raise ``ConfigError`` (E070-E078), or
    ``ConfigErrors`` with every problem.  ``allow_regex=False`` (admin rows) refuses regexes."""
    where = f"RESILIENCE['SHEDDING'][{index}]"
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"{where} must be a dict, not {type(mapping).__name__}",
            check_id="resilience.E070",
            hint="Write each shedding rule as a dict with at least 'name' and 'max_concurrent'.",
        )
    # Every problem is raised together, so `check` lists them all in one run.
    problems: list[ConfigError] = []

    def bad(check_id: str, message: str, hint: str) -> None:
        problems.append(ConfigError(f"{where}{message}", check_id=check_id, hint=hint))

    def flag(key: str, check_id: str, hint: str) -> bool:
        value = mapping.get(key, False)
        if isinstance(value, bool):
            return value
        bad(check_id, f": {key} {safe_repr(value)} must be True or False", hint)
        return False

    unknown = sorted(safe_str(k) for k in mapping if k not in KNOWN_KEYS)
    if unknown:
        bad("resilience.E070", f": unknown key(s) {', '.join(unknown)}",
            f"Known keys: {', '.join(sorted(KNOWN_KEYS))}.")  # fmt: skip
    name = mapping.get("name")
    # The limit rules' name rule: a control character in a label or log line could forge one.
    if not isinstance(name, str) or RULE_NAME.match(name) is None:
        bad(
            "resilience.E071",
            f": name {safe_repr(name)} must be 1-100 letters, digits or _ . : / -",
            "Name the rule; the name labels its metrics and its 503s.",
        )
        name = ""
    else:
        where = f"{where} ({safe_repr(name)})"
    matcher = None
    try:
        matcher = parse_route_matcher(
            mapping, where=where, check_id="resilience.E072", allow_regex=allow_regex
        )
    except ConfigError as exc:
        problems.append(exc)
    max_concurrent = bounded_int(mapping.get("max_concurrent"), minimum=1, maximum=MAX_CONCURRENT)
    if max_concurrent is None:
        bad("resilience.E073", f": max_concurrent {safe_repr(mapping.get('max_concurrent'))} "
            f"must be an integer from 1 to {MAX_CONCURRENT:_}",
            "Set how many requests of this route may run at once, e.g. 50.")  # fmt: skip
    queue = bounded_int(mapping.get("queue", 0), minimum=0, maximum=MAX_QUEUE)
    if queue is None:
        bad("resilience.E074", f": queue {safe_repr(mapping.get('queue'))} must be an integer "
            f"from 0 to {MAX_QUEUE:_}",
            "Set how many requests may wait for a slot; 0 sheds at once when full.")  # fmt: skip
    max_wait = 0.1
    try:
        # A wait inside one request: no longer than the longest request budget.
        max_wait = parse_duration(mapping.get("max_wait", 0.1), maximum=MAX_DEADLINE)
    except ValueError as exc:
        bad("resilience.E075", f": max_wait: {exc}", "Write it like '200ms'; at most a day.")
    adaptive = flag("adaptive", "resilience.E076", "Set adaptive to True to let the limit "
                    "follow latency.")  # fmt: skip
    # Checked against max_concurrent only when that one is usable.
    ceiling = max_concurrent or MAX_CONCURRENT
    min_concurrent = bounded_int(
        mapping.get("min_concurrent", min(20, ceiling)), minimum=1, maximum=ceiling
    )
    if min_concurrent is None:
        bad("resilience.E076", f": min_concurrent {safe_repr(mapping.get('min_concurrent'))} "
            f"must be an integer between 1 and max_concurrent ({ceiling})",
            "min_concurrent is the floor the adaptive limit never goes below.")  # fmt: skip
    share = mapping.get("critical_share", 0.0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
        bad("resilience.E077", f": critical_share {safe_repr(share)} must be a number from 0 up "
            "to (not including) 1",
            "E.g. 0.2 keeps a fifth of the slots for critical requests.")  # fmt: skip
    critical = flag("critical", "resilience.E078", "Set critical to True to make every request "
                    "of this rule critical.")  # fmt: skip
    paths = mapping.get("critical_paths", ())
    if isinstance(paths, str) or not isinstance(paths, Sequence):
        bad("resilience.E078", f": critical_paths {safe_repr(paths)} must be a list of paths",
            "E.g. ['/api/orders/checkout'] or ['^/api/orders/\\d+/pay$'].")  # fmt: skip
        paths = ()
    elif len(paths) > MAX_CRITICAL_PATHS:
        bad(
            "resilience.E078",
            f": critical_paths has {len(paths):_} entries, more than {MAX_CRITICAL_PATHS}",
            f"At most {MAX_CRITICAL_PATHS}: every request of the rule is checked against each "
            "path; one prefix or one regex can cover many.",
        )
        paths = ()
    prefixes: list[str] = []
    regexes: list[re.Pattern[str]] = []
    for path in paths:
        # "critical_paths: path '^(' is not ..." says which of the rule's paths is wrong.
        try:
            prefix, regex = compile_path(
                path, where=f"{where}: critical_paths", check_id="resilience.E078",
                allow_regex=allow_regex,
            )  # fmt: skip
        except ConfigError as exc:
            problems.append(exc)
            continue
        prefixes += [prefix] if prefix is not None else []
        regexes += [regex] if regex is not None else []
    methods = mapping.get("critical_methods", ())
    if isinstance(methods, str) or not isinstance(methods, Iterable):
        bad("resilience.E078", f": critical_methods {safe_repr(methods)} must be a list such "
            "as ['DELETE']", "Write critical_methods as a list of HTTP method names.")  # fmt: skip
        methods = ()
    header = mapping.get("critical_header")
    if header is not None and (
        not isinstance(header, str) or not HEADER_NAME.match(header.strip())
    ):
        bad("resilience.E078", f": critical_header {safe_repr(header)} must be a header name",
            "E.g. 'X-Priority', set by your own gateway, never trusted from clients.")  # fmt: skip
    exempt_streams = flag("exempt_streams", "resilience.E080", "True lets a streamed response "
        "give its slot back when the view returns it (long-lived streams such as server-sent "
        "events); False holds it to the body's end.")  # fmt: skip
    if problems:
        raise problems[0] if len(problems) == 1 else ConfigErrors(problems)
    assert max_concurrent is not None and queue is not None and min_concurrent is not None
    assert matcher is not None
    return SheddingRule(
        name=name,
        matcher=matcher,
        max_concurrent=max_concurrent,
        queue=queue,
        max_wait=max_wait,
        adaptive=adaptive,
        min_concurrent=min_concurrent,
        critical_share=float(share),
        critical=critical,
        critical_prefixes=tuple(prefixes),
        critical_regexes=tuple(regexes),
        critical_methods=method_set(methods),
        critical_header=header.strip() if isinstance(header, str) else None,
        exempt_streams=exempt_streams,
    )


def parse_shedding_rules(
    entries: Iterable[object],
) -> tuple[tuple[SheddingRule, ...], tuple[ConfigError, ...]]:
    """Parse every rule, keeping the good ones and collecting every error (E070-E079)."""
    rules: dict[str, SheddingRule] = {}
    errors: list[ConfigError] = []
    for index, entry in enumerate(entries):
        try:
            rule = parse_shedding_rule(entry, index=index)
        except ConfigError as exc:
            errors.extend(every_error(exc))
            continue
        if rule.name in rules:
            message = f"RESILIENCE['SHEDDING'][{index}]: a rule named {rule.name!r} already exists"
            hint = "Give each shedding rule its own name."
            errors.append(ConfigError(message, check_id="resilience.E079", hint=hint))
        else:
            rules[rule.name] = rule
    return tuple(rules.values()), tuple(errors)
