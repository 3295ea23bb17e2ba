"""The door: pick a request's shedding rule and admit it through that rule's bulkhead; one
``Shedder`` per process, one bulkhead per rule, kept across edits that only resize it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .. import deadline
from ..clock import Clock, monotonic
from ..routes import RouteIndex
from .bulkhead import Bulkhead, Permit, Shed
from .rules import SheddingRule

__all__ = ["Shedder"]

HeaderLookup = Callable[[str], str | None]


class Shedder:
    """Rules in order (the first match decides) and their bulkheads.

    >>> from resilience_django.shedding.rules import parse_shedding_rule
    >>> rule = parse_shedding_rule({"name": "api", "path": "/api", "max_concurrent": 1}, index=0)
    >>> door = Shedder([rule])
    >>> permit = door.admit_sync("GET", "/api/x")
    >>> permit.admitted, door.admit_sync("GET", "/api/y").admitted, door.admit_sync("GET", "/")
    (True, False, None)
    >>> permit.release()
    """

    __slots__ = ("_clock", "_state", "needs_view_name")

    def __init__(self, rules: Sequence[SheddingRule] = (), *, clock: Clock = monotonic) -> None:
        self._clock = clock
        # Rules and their bulkheads, published as one pair: a request reading while an admin edit
        # lands sees the old pair or the new one, never a rule of one with bulkheads of the other.
        self._state: tuple[RouteIndex[SheddingRule], dict[str, Bulkhead]] = (RouteIndex(()), {})
        self.needs_view_name = False
        self.update(rules)

    @property
    def rules(self) -> tuple[SheddingRule, ...]:
        return self._state[0].items

    def update(self, rules: Sequence[SheddingRule]) -> None:
        """Put new rules in force, keeping the bulkheads of rules that only changed size."""
        old_index, old_bulkheads = self._state
        old = {rule.name: rule for rule in old_index.items}
        bulkheads: dict[str, Bulkhead] = {}
        for rule in rules:
            previous = old.get(rule.name)
            kept = old_bulkheads.get(rule.name)
            if previous is not None and kept is not None and _same_shape(previous, rule):
                if rule.max_concurrent != previous.max_concurrent:
                    kept.resize(rule.max_concurrent)
                kept.exempt_streams = rule.exempt_streams
                bulkheads[rule.name] = kept
            else:
                bulkheads[rule.name] = rule.make_bulkhead(clock=self._clock)
        self._state = (RouteIndex((r.matcher, r) for r in rules), bulkheads)
        self.needs_view_name = any(r.matcher.needs_view_name for r in rules)
        for name, bulkhead in old_bulkheads.items():
            if bulkhead is not bulkheads.get(name):
                bulkhead.retire(gone=name not in bulkheads)

    def match(self, method: str, path: str, view_name: str | None = None) -> SheddingRule | None:
        return _first_match(self._state[0], method, path, view_name)

    def bulkhead(self, name: str) -> Bulkhead:
        return self._state[1][name]

    def _prepare(
        self, method: str, path: str, view_name: str | None, header: HeaderLookup | None
    ) -> tuple[Bulkhead, float, bool] | None:
        """The bulkhead, wait and criticality of a request; ``None`` when no rule applies."""
        index, bulkheads = self._state  # one snapshot: this rule, these bulkheads
        rule = _first_match(index, method, path, view_name)
        if rule is None:
            return None
        value = None
        if rule.critical_header is not None and header is not None:
            value = header(rule.critical_header)
        critical = rule.is_critical(method, path, value)
        return bulkheads[rule.name], rule.wait_timeout(deadline.remaining()), critical

    def admit_sync(self, method: str, path: str, view_name: str | None = None,
                   header: HeaderLookup | None = None) -> Permit | Shed | None:  # fmt: skip
        """A slot (release it when the response is done), a ``Shed`` (answer 503), or ``None``
        when no rule applies; waits at most ``min(max_wait, deadline)``.  ``header(name)``: a
        request header's value or ``None``, asked only for rules with a ``critical_header``."""
        found = self._prepare(method, path, view_name, header)
        return None if found is None else found[0].acquire_sync(found[1], found[2])

    async def admit_async(self, method: str, path: str, view_name: str | None = None,
                          header: HeaderLookup | None = None) -> Permit | Shed | None:  # fmt: skip
        """``admit_sync`` for the event loop: waits without blocking it."""
        found = self._prepare(method, path, view_name, header)
        return None if found is None else await found[0].acquire_async(found[1], found[2])


def _first_match(
    index: RouteIndex[SheddingRule], method: str, path: str, view_name: str | None
) -> SheddingRule | None:
    rules = index.candidates(path)
    return next((r for r in rules if r.matcher.matches(method, path, view_name)), None)


def _same_shape(a: SheddingRule, b: SheddingRule) -> bool:
    """Whether ``b`` can reuse ``a``'s bulkhead (a resize at most)."""
    if (a.queue, a.adaptive, a.critical_share) != (b.queue, b.adaptive, b.critical_share):
        return False
    # An adaptive limit owns its size: any change to its bounds rebuilds it.
    bounds = (a.min_concurrent, a.max_concurrent) == (b.min_concurrent, b.max_concurrent)
    return not a.adaptive or bounds
