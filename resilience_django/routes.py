"""Which requests a rule applies to: path prefix or regex, URL name, methods.

Deadlines, limits, shedding and route breakers all select requests the same
way, so they share this matcher.  A ``path`` starting with ``^`` is a regular
expression (matched with ``re.match``), any other ``path`` is a prefix.  A
``view`` is a URL name (``"orders:quote"``), known only once Django has
resolved the URL, which is why matching takes the name as an optional input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .exceptions import ConfigError

__all__ = ["RouteMatcher", "parse_route_matcher", "scope_path"]


def scope_path(scope: Mapping[str, Any]) -> str:
    """The path Django matches on, from an ASGI scope: ``path`` without ``root_path``."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


@dataclass(frozen=True, slots=True)
class RouteMatcher:
    prefix: str | None = None
    regex: re.Pattern[str] | None = None
    view: str | None = None
    methods: frozenset[str] | None = None

    @property
    def needs_view_name(self) -> bool:
        """True when the URL must be resolved before this matcher can answer."""
        return self.view is not None

    def matches(self, method: str, path: str, view_name: str | None = None) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.prefix is not None and not path.startswith(self.prefix):
            return False
        if self.regex is not None and self.regex.match(path) is None:
            return False
        return self.view is None or self.view == view_name

    def describe(self) -> str:
        parts = []
        if self.prefix is not None:
            parts.append(self.prefix)
        if self.regex is not None:
            parts.append(self.regex.pattern)
        if self.view is not None:
            parts.append(f"view={self.view}")
        if self.methods:
            parts.append("|".join(sorted(self.methods)))
        return " ".join(parts) or "*"


def compile_path(
    path: str, *, where: str, check_id: str
) -> tuple[str | None, re.Pattern[str] | None]:
    """Split a ``path`` setting into a prefix or a compiled regex."""
    if not isinstance(path, str) or not path:
        raise ConfigError(
            f"{where}: path {path!r} must be a non-empty string",
            check_id=check_id,
            hint="Use a prefix like '/api/orders' or a regex starting with '^'.",
        )
    if path.startswith("^"):
        try:
            return None, re.compile(path)
        except re.error as exc:
            raise ConfigError(
                f"{where}: path {path!r} is not a valid regular expression ({exc})",
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


def parse_route_matcher(spec: Mapping[str, object], *, where: str, check_id: str) -> RouteMatcher:
    """Build a matcher from the ``path``, ``view`` and ``methods`` keys of a rule."""
    prefix: str | None = None
    regex: re.Pattern[str] | None = None
    path = spec.get("path")
    if path is not None:
        prefix, regex = compile_path(path, where=where, check_id=check_id)  # type: ignore[arg-type]
    view = spec.get("view")
    if view is not None and (not isinstance(view, str) or not view):
        raise ConfigError(
            f"{where}: view {view!r} must be a URL name such as 'orders:quote'",
            check_id=check_id,
            hint="Use the name given to path(..., name=...), with its namespace.",
        )
    methods_value = spec.get("methods")
    methods: frozenset[str] | None = None
    if methods_value is not None:
        if isinstance(methods_value, str) or not isinstance(methods_value, Iterable):
            raise ConfigError(
                f"{where}: methods {methods_value!r} must be a list such as ['POST']",
                check_id=check_id,
                hint="Write methods as a list of HTTP method names.",
            )
        methods = frozenset(str(m).upper() for m in methods_value)
    return RouteMatcher(prefix=prefix, regex=regex, view=view, methods=methods)
