"""Building the decision objects on the hot path, two to three times faster.

The ``__init__`` a frozen dataclass gets goes through ``object.__setattr__``
for each field, about 1 µs for five fields; a decision is made per request,
so the stores build ``RuleOutcome``, ``Decision`` and ``LimitCheck`` another
way: fill a mutable twin class with the same slots and switch its class
(fastest), or set the slots through their descriptors.  The objects are the
very same frozen instances either way; if the classes' fields ever change,
the regular constructors are used instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from .decision import Decision, LimitCheck, Policy, RuleOutcome

__all__ = ["make_check", "make_decision", "make_outcome"]

_RULE_OUTCOME_FIELDS = ("check", "allowed", "remaining", "reset_after", "retry_after")
_DECISION_FIELDS = ("allowed", "outcomes", "backend")
_LIMIT_CHECK_FIELDS = ("policy", "key", "cost")


def _twin_constructor(cls: type[Any], names: tuple[str, ...]) -> Callable[..., Any] | None:
    """Build through a mutable twin with the same slots, then give it ``cls``.

    Plain attribute stores into slots are the cheapest way CPython fills an
    object; assigning ``__class__`` afterwards is allowed between classes of
    identical layout, and the result is an ordinary frozen ``cls`` instance.
    Verified on a sample; ``None`` when this interpreter refuses.
    """
    if getattr(cls, "__slots__", None) != names:
        return None
    args = ", ".join(f"a{i}" for i in range(len(names)))
    body = "\n".join(f"    self.{name} = a{i}" for i, name in enumerate(names))
    namespace: dict[str, Any] = {}
    exec(f"def __init__(self, {args}):\n{body}\n", namespace)  # as dataclasses does
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": names, "__init__": namespace["__init__"]})

    make: Callable[..., Any]
    if len(names) == 5:

        def make(a: Any, b: Any, c: Any, d: Any, e: Any) -> Any:
            obj = twin(a, b, c, d, e)
            obj.__class__ = cls
            return obj

    elif len(names) == 3:

        def make(a: Any, b: Any, c: Any) -> Any:
            obj = twin(a, b, c)
            obj.__class__ = cls
            return obj

    else:
        return None
    try:
        sample = make(*range(len(names)))
    except TypeError:
        return None
    if type(sample) is not cls or [getattr(sample, n) for n in names] != list(range(len(names))):
        return None
    return make


def _fast_constructor(cls: type[Any], names: tuple[str, ...]) -> Callable[..., Any] | None:
    """A constructor that fills a frozen slotted dataclass through its slot descriptors.

    The generated ``__init__`` of a frozen dataclass goes through
    ``object.__setattr__`` per field, which costs about 1 µs for five fields;
    setting the slots directly is about twice as fast and gives the very same
    object.  When the class's fields change, the regular constructor is used.
    """
    if tuple(f.name for f in fields(cls)) != names:
        return None
    new = object.__new__
    setters = [cls.__dict__[name].__set__ for name in names]
    if len(names) == 5:
        s0, s1, s2, s3, s4 = setters

        def make5(a: Any, b: Any, c: Any, d: Any, e: Any) -> Any:
            obj = new(cls)
            s0(obj, a)
            s1(obj, b)
            s2(obj, c)
            s3(obj, d)
            s4(obj, e)
            return obj

        return make5
    s0, s1, s2 = setters

    def make3(a: Any, b: Any, c: Any) -> Any:
        obj = new(cls)
        s0(obj, a)
        s1(obj, b)
        s2(obj, c)
        return obj

    return make3


def _constructor(cls: type[Any], names: tuple[str, ...]) -> Callable[..., Any]:
    if tuple(f.name for f in fields(cls)) != names:
        return cls
    return _twin_constructor(cls, names) or _fast_constructor(cls, names) or cls


make_outcome: Callable[[LimitCheck, bool, int, float, float], RuleOutcome] = _constructor(
    RuleOutcome, _RULE_OUTCOME_FIELDS
)
make_decision: Callable[[bool, tuple[RuleOutcome, ...], str], Decision] = _constructor(
    Decision, _DECISION_FIELDS
)
make_check: Callable[[Policy, str, int], LimitCheck] = _constructor(LimitCheck, _LIMIT_CHECK_FIELDS)
