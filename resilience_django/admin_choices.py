"""What admin users may pick: the dotted paths ``RESILIENCE["ADMIN_CHOICES"]`` lists; every
check is a string comparison made *before* anything is imported (docs/security.md)."""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from typing import Any

from .conf import _mapping, _report, _unknown_keys, get_settings
from .dotted import import_dotted
from .exceptions import ConfigError
from .units import safe_repr

__all__ = [
    "BUILTIN_KEYS",
    "AdminChoices",
    "admin_choices",
    "check_admin_choices",
    "is_builtin_exception",
    "parse_admin_choices",
]

KINDS = ("KEYS", "EXCEPTIONS", "PREDICATES")
BUILTIN_KEYS = ("ip", "user", "user_or_ip")
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+\Z", re.ASCII)
_WHERE = "RESILIENCE['ADMIN_CHOICES']"


def is_builtin_exception(path: str) -> bool:
    """``builtins.<Name>`` naming an exception class: already loaded, imports nothing."""
    module, _, name = path.rpartition(".")
    return module == "builtins" and _is_exception_class(getattr(builtins, name, None))


@dataclass(frozen=True, slots=True)
class AdminChoices:
    """The dotted paths admin rows may name, per kind; compared as strings, never imported."""

    keys: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()
    predicates: tuple[str, ...] = ()

    def refuse_key(self, spec: str) -> str | None:
        """Why an admin row may not use this key, or ``None`` when it may."""
        kind, sep, _ = spec.partition(":")  # the built-in kinds import nothing
        if spec in BUILTIN_KEYS or (sep and kind in ("header", "param")) or spec in self.keys:
            return None
        use = f"ip, user, user_or_ip, header:<Name>, param:<name>{_or_listed(self.keys)}"
        if "." not in spec or ":" in spec:
            # Not a dotted path at all: the parser's words, and its check id.
            return f"key {safe_repr(spec)} is not a known key function: use {use} (resilience.E022)"
        return _refusal(f"key {safe_repr(spec)}", use, "Other key functions", "KEYS")

    def refuse_exception(self, path: str) -> str | None:
        if is_builtin_exception(path) or path in self.exceptions:
            return None
        use = "a built-in exception class such as builtins.ConnectionError"
        use += _or_listed(self.exceptions)
        return _refusal(repr(path), use, "Other classes", "EXCEPTIONS")

    def refuse_predicate(self, path: str) -> str | None:
        if path in self.predicates:
            return None
        use = _or_listed(self.predicates).removeprefix(" or ")
        return _refusal(repr(path), use, "Predicates", "PREDICATES")


def _or_listed(paths: tuple[str, ...]) -> str:
    return f" or one of {', '.join(paths)}" if paths else ""


def _refusal(what: str, use: str, others: str, kind: str) -> str:
    return (
        f"{what} is not allowed here{': use ' + use if use else ''}. {others} must be listed "
        f"in the RESILIENCE setting, under ADMIN_CHOICES[{safe_repr(kind)}]."
    )


def parse_admin_choices(raw: Any, found: list[ConfigError]) -> AdminChoices:
    """The lists' shape only, nothing imported; problems go to ``found`` (E085)."""
    hint = "Example: {'KEYS': ['myapp.keys.by_tenant'], 'EXCEPTIONS': ['httpx.HTTPError'], "
    hint += "'PREDICATES': ['myapp.breakers.is_5xx']}"
    if raw is None or (raw := _mapping(found, raw, _WHERE, "resilience.E085", hint)) is None:
        return AdminChoices()
    _unknown_keys(found, raw, KINDS, _WHERE, "resilience.E085")
    lists: list[tuple[str, ...]] = []
    for kind in KINDS:
        value = raw.get(kind, ())
        if isinstance(value, str) or not isinstance(value, list | tuple):
            _report(found, f"{_WHERE}[{safe_repr(kind)}] must be a list of dotted paths, not "
                    f"{type(value).__name__}", "resilience.E085",
                    "Example: ['myapp.keys.by_tenant'].")  # fmt: skip
            value = ()
        good: list[str] = []
        for item in value:
            if isinstance(item, str) and _DOTTED.match(item):
                good.append(item)
            else:
                hint = "Write module.attribute, e.g. 'myapp.keys.by_tenant'."
                message = f"{_WHERE}[{safe_repr(kind)}]: {safe_repr(item)} is not a dotted path"
                _report(found, message, "resilience.E085", hint)
        lists.append(tuple(dict.fromkeys(good)))
    return AdminChoices(*lists)


def check_admin_choices(raw: Any) -> list[ConfigError]:
    """Every problem of the setting, importing each entry (settings are code, so this may)."""
    errors: list[ConfigError] = []
    choices = parse_admin_choices(raw, errors)
    expect = (
        ("KEYS", choices.keys, callable, "a callable(request) -> str | None"),
        ("EXCEPTIONS", choices.exceptions, _is_exception_class, "an exception class"),
        ("PREDICATES", choices.predicates, callable, "a callable(result) -> bool"),
    )
    for kind, paths, test, what in expect:
        for path in paths:
            try:
                problem = None if test(import_dotted(path)) else f"is not {what}"
            except ImportError as exc:
                problem = f"cannot be imported ({exc})"
            if problem is not None:
                hint = f"List the dotted path of {what}; fix the module if importing it fails."
                message = f"{_WHERE}[{safe_repr(kind)}]: {safe_repr(path)} {problem}"
                _report(errors, message, "resilience.E086", hint)
    return errors


def _is_exception_class(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


def admin_choices() -> AdminChoices:
    """The allowlist the current settings define (shape-checked, nothing imported)."""
    return parse_admin_choices(get_settings().raw.get("ADMIN_CHOICES"), [])
