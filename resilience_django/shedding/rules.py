"""``RESILIENCE["SHEDDING"]`` rules: which requests share a bulkhead, and how big it is.

A rule looks like::

    {"name": "orders", "path": "/api/orders", "max_concurrent": 50, "queue": 100,
     "max_wait": "200ms", "adaptive": False, "critical_share": 0.2,
     "critical_paths": ["/api/orders/checkout"], "critical_methods": ["DELETE"],
     "critical_header": "X-Priority"}

``path`` / ``view`` / ``methods`` select requests as every rule does
(``routes.py``).  With ``adaptive`` the limit follows latency between
``min_concurrent`` (default ``min(20, max_concurrent)``) and ``max_concurrent``.
A request is critical when the whole rule is (``"critical": True``), when its
path starts with one of ``critical_paths`` (``^`` for a regex), its method is
in ``critical_methods``, or ``critical_header`` is present and not ``0``,
``false`` or ``no``.  Only name a header your own proxy sets: a client that
could set it would make all its requests critical.

Check ids (each problem has its own):

* ``resilience.E070`` the rule is not a mapping, or has unknown keys
* ``resilience.E071`` ``name`` missing or not a non-empty string
* ``resilience.E072`` ``path``, ``view`` or ``methods`` invalid
* ``resilience.E073`` ``max_concurrent`` not an integer >= 1
* ``resilience.E074`` ``queue`` not an integer >= 0
* ``resilience.E075`` ``max_wait`` not a duration
* ``resilience.E076`` ``adaptive`` not a boolean, or ``min_concurrent`` not an
  integer between 1 and ``max_concurrent``
* ``resilience.E077`` ``critical_share`` not a number in [0, 1)
* ``resilience.E078`` ``critical``, ``critical_paths``, ``critical_methods`` or
  ``critical_header`` invalid (a header name is an HTTP token: no spaces, no colon)
* ``resilience.E079`` two rules with the same name (``parse_shedding_rules``)
* ``resilience.E080`` ``exempt_streams`` not a boolean
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..clock import Clock, monotonic
from ..exceptions import ConfigError, ConfigErrors, every_error
from ..routes import RouteMatcher, compile_path, method_set, parse_route_matcher
from ..units import MAX_CONCURRENT, MAX_DEADLINE, MAX_QUEUE, bounded_int, parse_duration, safe_repr
from .adaptive import AdaptiveLimit
from .bulkhead import Bulkhead

__all__ = ["SheddingRule", "parse_shedding_rule", "parse_shedding_rules"]

KNOWN_KEYS = frozenset(
    {
        "name",
        "path",
        "view",
        "methods",
        "max_concurrent",
        "queue",
        "max_wait",
        "adaptive",
        "min_concurrent",
        "critical_share",
        "critical",
        "critical_paths",
        "critical_methods",
        "critical_header",
        "exempt_streams",
    }
)
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})
# An HTTP field name (RFC 9110 token): a name with a space or a colon never matches a header.
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


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
    # A streamed body gives its slot back when the view returns, not when the
    # body ends: for long-lived streams (server-sent events) this rule should
    # not count.
    exempt_streams: bool = False

    def matches(self, method: str, path: str, view_name: str | None = None) -> bool:
        return self.matcher.matches(method, path, view_name)

    def is_critical(self, method: str, path: str, header: str | None = None) -> bool:
        """Whether a request may use the reserved share.

        ``header`` is the value of ``critical_header`` on the request (``None``
        when absent or when the rule names no header); the adapter looks it up.
        """
        if self.critical or method in self.critical_methods:
            return True
        if header is not None and header.strip().lower() not in _FALSE_WORDS:
            return True
        if any(path.startswith(p) for p in self.critical_prefixes):
            return True
        return any(r.match(path) for r in self.critical_regexes)

    def wait_timeout(self, remaining: float | None) -> float:
        """How long a request may queue: ``max_wait``, never past its own deadline."""
        if remaining is None:
            return self.max_wait
        return max(0.0, min(self.max_wait, remaining))

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


def _int(value: object, *, minimum: int, maximum: int = MAX_CONCURRENT) -> int | None:
    return bounded_int(value, minimum=minimum, maximum=maximum)


def _methods(value: object, where: str) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(
            f"{where}: critical_methods {safe_repr(value)} must be a list such as ['DELETE']",
            check_id="resilience.E078",
            hint="Write critical_methods as a list of HTTP method names.",
        )
    return method_set(value)


def parse_shedding_rule(mapping: object, *, index: int, allow_regex: bool = True) -> SheddingRule:
    """Parse one entry of ``RESILIENCE["SHEDDING"]``; raise ``ConfigError`` (E070-E078),
    ``ConfigErrors`` with every problem when there are several.

    ``allow_regex=False`` (admin rows) refuses a regex ``path`` or critical path.
    """
    where = f"RESILIENCE['SHEDDING'][{index}]"
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"{where} must be a dict, not {type(mapping).__name__}",
            check_id="resilience.E070",
            hint="Write each shedding rule as a dict with at least 'name' and 'max_concurrent'.",
        )
    # Every problem of the rule is collected and raised together (ConfigErrors),
    # so `check` lists them all at once instead of one per fix-and-rerun.
    problems: list[ConfigError] = []
    unknown = sorted(str(k) for k in mapping if k not in KNOWN_KEYS)
    if unknown:
        problems.append(ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}",
            check_id="resilience.E070",
            hint=f"Known keys: {', '.join(sorted(KNOWN_KEYS))}.",
        ))  # fmt: skip
    name = mapping.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(ConfigError(
            f"{where}: 'name' must be a non-empty string",
            check_id="resilience.E071",
            hint="Name the rule; the name labels its metrics and its 503s.",
        ))  # fmt: skip
        name = ""
    else:
        where = f"{where} ({name!r})"
    try:
        matcher = parse_route_matcher(
            mapping, where=where, check_id="resilience.E072", allow_regex=allow_regex
        )
    except ConfigError as exc:
        problems.append(exc)

    max_concurrent = _int(mapping.get("max_concurrent"), minimum=1)
    if max_concurrent is None:
        problems.append(ConfigError(
            f"{where}: max_concurrent {safe_repr(mapping.get('max_concurrent'))} must be an "
            f"integer from 1 to {MAX_CONCURRENT:_}",
            check_id="resilience.E073",
            hint="Set how many requests of this route may run at once, e.g. 50.",
        ))  # fmt: skip
    queue = _int(mapping.get("queue", 0), minimum=0, maximum=MAX_QUEUE)
    if queue is None:
        problems.append(ConfigError(
            f"{where}: queue {safe_repr(mapping.get('queue'))} must be an integer "
            f"from 0 to {MAX_QUEUE:_}",
            check_id="resilience.E074",
            hint="Set how many requests may wait for a slot; 0 sheds at once when full.",
        ))  # fmt: skip
    max_wait = 0.1
    try:
        # A wait inside one request: no longer than the longest request budget.
        max_wait = parse_duration(mapping.get("max_wait", 0.1), maximum=MAX_DEADLINE)
    except ValueError as exc:
        problems.append(ConfigError(
            f"{where}: max_wait: {exc}",
            check_id="resilience.E075",
            hint="Write it like '200ms'; at most a day.",
        ))  # fmt: skip

    adaptive = mapping.get("adaptive", False)
    if not isinstance(adaptive, bool):
        problems.append(ConfigError(
            f"{where}: adaptive {safe_repr(adaptive)} must be True or False",
            check_id="resilience.E076",
            hint="Set adaptive to True to let the limit follow latency.",
        ))  # fmt: skip
    # Checked against max_concurrent only when that one is usable.
    ceiling = max_concurrent or MAX_CONCURRENT
    min_concurrent = _int(mapping.get("min_concurrent", min(20, ceiling)), minimum=1)
    if min_concurrent is None or min_concurrent > ceiling:
        problems.append(ConfigError(
            f"{where}: min_concurrent {safe_repr(mapping.get('min_concurrent'))} must be an "
            f"integer between 1 and max_concurrent ({ceiling})",
            check_id="resilience.E076",
            hint="min_concurrent is the floor the adaptive limit never goes below.",
        ))  # fmt: skip

    share = mapping.get("critical_share", 0.0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
        problems.append(ConfigError(
            f"{where}: critical_share {safe_repr(share)} must be a number from 0 up to "
            "(not including) 1",
            check_id="resilience.E077",
            hint="E.g. 0.2 keeps a fifth of the slots for critical requests.",
        ))  # fmt: skip

    critical = mapping.get("critical", False)
    if not isinstance(critical, bool):
        problems.append(ConfigError(
            f"{where}: critical {safe_repr(critical)} must be True or False",
            check_id="resilience.E078",
            hint="Set critical to True to make every request of this rule critical.",
        ))  # fmt: skip
    prefixes: list[str] = []
    regexes: list[re.Pattern[str]] = []
    paths = mapping.get("critical_paths", ())
    if isinstance(paths, str) or not isinstance(paths, Sequence):
        problems.append(ConfigError(
            f"{where}: critical_paths {safe_repr(paths)} must be a list of paths",
            check_id="resilience.E078",
            hint="E.g. ['/api/orders/checkout'] or ['^/api/orders/\\d+/pay$'].",
        ))  # fmt: skip
        paths = ()
    for path in paths:
        # "critical_paths: path '^(' is not ..." says which of the rule's paths is wrong.
        try:
            prefix, regex = compile_path(
                path,
                where=f"{where}: critical_paths",
                check_id="resilience.E078",
                allow_regex=allow_regex,
            )
        except ConfigError as exc:
            problems.append(exc)
            continue
        if prefix is not None:
            prefixes.append(prefix)
        if regex is not None:
            regexes.append(regex)
    methods: frozenset[str] = frozenset()
    try:
        methods = _methods(mapping.get("critical_methods", ()), where)
    except ConfigError as exc:
        problems.append(exc)
    header = mapping.get("critical_header")
    if header is not None and (not isinstance(header, str) or not _HEADER.match(header.strip())):
        problems.append(ConfigError(
            f"{where}: critical_header {safe_repr(header)} must be a header name",
            check_id="resilience.E078",
            hint="E.g. 'X-Priority', set by your own gateway, never trusted from clients.",
        ))  # fmt: skip
    exempt_streams = mapping.get("exempt_streams", False)
    if not isinstance(exempt_streams, bool):
        problems.append(ConfigError(
            f"{where}: exempt_streams {safe_repr(exempt_streams)} must be True or False",
            check_id="resilience.E080",
            hint="True lets a streamed response give its slot back when the view returns it "
            "(long-lived streams such as server-sent events); False holds it to the body's end.",
        ))  # fmt: skip
    if problems:
        raise problems[0] if len(problems) == 1 else ConfigErrors(problems)
    assert max_concurrent is not None and queue is not None and min_concurrent is not None
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
        critical_methods=methods,
        critical_header=header.strip() if isinstance(header, str) else None,
        exempt_streams=exempt_streams,
    )


def parse_shedding_rules(
    entries: Iterable[object],
) -> tuple[tuple[SheddingRule, ...], tuple[ConfigError, ...]]:
    """Parse every rule, keeping the good ones and collecting every error (E070-E079)."""
    rules: list[SheddingRule] = []
    errors: list[ConfigError] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        try:
            rule = parse_shedding_rule(entry, index=index)
        except ConfigError as exc:
            errors.extend(every_error(exc))
            continue
        if rule.name in seen:
            errors.append(
                ConfigError(
                    f"RESILIENCE['SHEDDING'][{index}]: a rule named {rule.name!r} already exists",
                    check_id="resilience.E079",
                    hint="Give each shedding rule its own name.",
                )
            )
            continue
        seen.add(rule.name)
        rules.append(rule)
    return tuple(rules), tuple(errors)
