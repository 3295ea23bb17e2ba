"""Which requests a rule applies to: path prefix or regex, URL name, methods; one matcher
and one index for every kind of rule (docs/limits.md, "Which requests a rule matches")."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Generic, TypeVar

from .exceptions import ConfigError
from .units import safe_repr

__all__ = [
    "RouteIndex",
    "RouteMatcher",
    "method_set",
    "normalize_method",
    "parse_route_matcher",
    "scope_path",
]

T = TypeVar("T")

_STANDARD_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
_STANDARD = frozenset(_STANDARD_METHODS)
# The methods clients send, as they send them, to the upper-case name: one lookup per
# request instead of a new string; never grown, whatever methods clients invent.
_METHOD_NAMES = {m: m for m in _STANDARD_METHODS} | {m.lower(): m for m in _STANDARD_METHODS}
# An HTTP method is a token (RFC 9110): "GET, POST" or a look-alike letter never matches.
_METHOD_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def normalize_method(method: str) -> str:
    """The method as rules spell it: upper case (``"get"`` → ``"GET"``)."""
    return _METHOD_NAMES.get(method) or method.upper()


def method_set(methods: Iterable[object]) -> frozenset[str]:
    """Method names as a matcher holds them: upper case, and HEAD wherever GET is."""
    names = {str(m).upper() for m in methods}
    if "GET" in names:
        names.add("HEAD")
    return frozenset(names)


# Django's FORCE_SCRIPT_NAME, which it strips in place of ``root_path`` (set by ``runtime``).
forced_script_name = ""


def scope_path(scope: Mapping[str, Any]) -> str:
    """The path Django matches on, from an ASGI scope: ``path`` without the script name."""
    path: str = scope.get("path", "/")
    root: str = forced_script_name or scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


@dataclass(frozen=True, slots=True)
class RouteMatcher:
    """``matches(method, path, view_name)``; ``method`` must be upper case
    (``normalize_method``), as Django's ``request.method`` always is."""

    prefix: str | None = None
    regex: re.Pattern[str] | None = None
    view: str | None = None
    methods: frozenset[str] | None = None
    # The standard methods not listed: a method a client invents ("FOO", as a plain function
    # view serves like GET) matches every rule, so inventing one gets around none.
    _refused: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Upper case, and GET brings HEAD, however built: matching is one set lookup.
        if self.methods is not None:
            object.__setattr__(self, "methods", methods := method_set(self.methods))
            object.__setattr__(self, "_refused", _STANDARD - methods)

    @property
    def needs_view_name(self) -> bool:
        """True when the URL must be resolved before this matcher can answer."""
        return self.view is not None

    def matches(self, method: str, path: str, view_name: str | None = None) -> bool:
        if self._refused is not None and method in self._refused:
            return False
        if self.prefix is not None and not path.startswith(self.prefix):
            return False
        if self.regex is not None and self.regex.match(path) is None:
            return False
        return self.view is None or self.view == view_name

    def describe(self) -> str:
        parts = (
            self.prefix,
            self.regex and self.regex.pattern,
            self.view and f"view={self.view}",
            self.methods and "|".join(sorted(self.methods)),
        )
        return " ".join(part for part in parts if part) or "*"


def reject_regex(path: object, *, where: str, check_id: str) -> None:
    """Raise ``ConfigError`` for a regex path: what admin rows are refused."""
    if isinstance(path, str) and path.startswith("^"):
        raise ConfigError(
            f"{where}: path {path!r} is a regular expression; rules saved in the admin "
            "take path prefixes, not regexes",
            check_id=check_id,
            hint="Use a prefix such as '/api/orders' (or, where the rule takes one, a URL name "
            "such as 'orders:quote'); regexes belong in settings, which are reviewed as "
            "code: a regex can make every request slow.",
        )


def compile_path(
    path: object, *, where: str, check_id: str, allow_regex: bool = True
) -> tuple[str | None, re.Pattern[str] | None]:
    """Split a ``path`` setting into a prefix or a compiled regex; ``allow_regex=False``
    (admin rows) refuses a regex with ``ConfigError``."""
    if not isinstance(path, str) or not path:
        raise ConfigError(
            f"{where}: path {safe_repr(path)} must be a non-empty string",
            check_id=check_id,
            hint="Use a prefix like '/api/orders' or a regex starting with '^'.",
        )
    if path.startswith("^"):
        if not allow_regex:
            reject_regex(path, where=where, check_id=check_id)
        try:
            return None, re.compile(path)
        # A huge repeat count raises OverflowError, deep nesting RecursionError.
        except (re.error, OverflowError, RecursionError) as exc:
            raise ConfigError(
                f"{where}: path {safe_repr(path)} is not a valid regular expression "
                f"({type(exc).__name__}: {safe_repr(str(exc), 100)})",
                check_id=check_id,
                hint="Fix the regex, or use a plain prefix that does not start with '^'.",
            ) from exc
    if not path.startswith("/"):
        raise ConfigError(
            f"{where}: path {path!r} must start with '/' (a prefix) or '^' (a regex)",
            check_id=check_id,
            hint="Write the path as it appears in the URL, e.g. '/api/orders'.",
        )
    return path, None


def parse_route_matcher(
    spec: Mapping[str, object], *, where: str, check_id: str, allow_regex: bool = True
) -> RouteMatcher:
    """Build a matcher from the ``path``, ``view`` and ``methods`` keys of a rule."""
    path = spec.get("path")
    prefix, regex = None, None
    if path is not None:
        prefix, regex = compile_path(path, where=where, check_id=check_id, allow_regex=allow_regex)
    view = spec.get("view")
    if view is not None and (not isinstance(view, str) or not view):
        raise ConfigError(
            f"{where}: view {safe_repr(view)} must be a URL name such as 'orders:quote'",
            check_id=check_id,
            hint="Use the name given to path(..., name=...), with its namespace.",
        )
    methods = spec.get("methods")
    if methods is None:
        return RouteMatcher(prefix=prefix, regex=regex, view=view)
    # A string, bytes or an entry that is not a method name (None, "GET, POST") never matches.
    listed = (
        None
        if isinstance(methods, str | bytes) or not isinstance(methods, Iterable)
        else list(methods)
    )
    if listed is None or not all(
        isinstance(m, str) and _METHOD_TOKEN.match(m) is not None for m in listed
    ):
        raise ConfigError(
            f"{where}: methods {safe_repr(methods)} must be a list of HTTP method names "
            "such as ['POST']",
            check_id=check_id,
            hint="Write methods as a list of HTTP method names, one per entry: ['GET', 'POST'].",
        )
    if not listed:
        raise ConfigError(
            f"{where}: methods is empty, so the rule would match no request",
            check_id=check_id,
            hint="Leave methods out for every method, or list some: ['POST'].",
        )
    return RouteMatcher(prefix=prefix, regex=regex, view=view, methods=method_set(listed))


_position = itemgetter(0)
# Shorter rule lists are scanned: a few ``startswith`` cost about what the lookups do.
LINEAR_BELOW = 8
# A prefix's answer is built ahead of time up to this many rules; a longer one is
# merged per request, so memory stays linear.
PREBUILT_MAX = 64

_Pairs = tuple[tuple[int, T], ...]


class RouteIndex(Generic[T]):
    """Rules found by path: the ones that may match, in their original order.

    ``candidates(path)``: the items whose prefix the path starts with and those without
    one, in order (the caller still asks each matcher); one lookup per distinct prefix
    *length*, longest first.  Below ``linear_below`` rules: the plain scan.

    >>> index = RouteIndex([(RouteMatcher(prefix="/api"), "a"), (RouteMatcher(), "b"),
    ...                     (RouteMatcher(prefix="/api/orders"), "c"),
    ...                     (RouteMatcher(prefix="/admin"), "d")], linear_below=0)
    >>> list(index.candidates("/api/orders/1")), list(index.candidates("/other"))
    (['a', 'b', 'c'], ['b'])
    """

    __slots__ = ("_answers", "_lengths", "_pairs", "_rest", "_rest_items", "items")

    def __init__(
        self,
        entries: Iterable[tuple[RouteMatcher, T]],
        *,
        linear_below: int = LINEAR_BELOW,
        prebuilt_max: int = PREBUILT_MAX,
    ) -> None:
        listed = tuple(entries)
        self.items: tuple[T, ...] = tuple(item for _, item in listed)
        by_prefix: dict[str, list[tuple[int, T]]] = {}
        rest: list[tuple[int, T]] = []
        for position, (matcher, item) in enumerate(listed):
            if matcher.prefix:
                by_prefix.setdefault(matcher.prefix, []).append((position, item))
            else:
                rest.append((position, item))
        self._rest: _Pairs[T] = tuple(rest)
        self._rest_items = tuple(item for _, item in rest)
        # (position, item) pairs per prefix, for the answers merged per request.
        self._pairs: dict[str, _Pairs[T]] = {p: tuple(v) for p, v in by_prefix.items()}
        # Longest first: the first prefix a path starts with is its longest.
        # None in linear mode: candidates() answers with every item.
        self._lengths: tuple[int, ...] | None = None
        self._answers: dict[str, tuple[T, ...] | None] = {}
        if len(listed) >= linear_below:
            self._lengths = tuple(sorted({len(p) for p in by_prefix}, reverse=True))
            self._answers = {p: self._merged(p, len(p), prebuilt_max) for p in by_prefix}

    def candidates(self, path: str) -> Sequence[T]:
        """The items that may match ``path``, in their original order."""
        lengths = self._lengths
        if lengths is None:
            return self.items
        answers = self._answers
        size = len(path)
        for length in lengths:
            if length > size:
                continue
            # () means "no rule has this prefix" (an indexed one holds its own rules);
            # None, an answer too long to keep built, merged per request.
            answer = answers.get(path[:length], ())
            if answer:
                return answer
            if answer is None:
                return self._merged(path, length) or ()
        return self._rest_items

    def _merged(self, path: str, longest: int, most: int | None = None) -> tuple[T, ...] | None:
        """Every rule whose prefix ``path[:longest]`` starts with, and the prefix-less
        ones, in order; ``None`` past ``most`` rules (so memory stays linear)."""
        assert self._lengths is not None
        pairs = list(self._rest)
        for length in self._lengths:
            if length <= longest:
                pairs.extend(self._pairs.get(path[:length], ()))
            if most is not None and len(pairs) > most:
                return None
        pairs.sort(key=_position)
        return tuple(item for _, item in pairs)
