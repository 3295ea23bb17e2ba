"""What admin users may pick: the dotted paths ``RESILIENCE["ADMIN_CHOICES"]`` lists.

The trust model (``docs/security.md``): settings are code and may name any
dotted path; admin users are trusted with values, not code.  An admin row may
name a key function, an exception class or a result predicate only when the
settings list it here::

    RESILIENCE["ADMIN_CHOICES"] = {
        "KEYS": ["myapp.keys.by_tenant"],
        "EXCEPTIONS": ["httpx.HTTPError"],
        "PREDICATES": ["myapp.breakers.is_5xx"],
    }

Built-in key kinds (``ip``, ``user``, ``user_or_ip``, ``header:<Name>``,
``param:<name>``) and built-in exception classes (``builtins.ConnectionError``)
import nothing and are always allowed.  Every check here is a string
comparison made *before* anything is imported: an admin value that is not
listed never reaches ``importlib``.

System check ids:

    resilience.E085  ADMIN_CHOICES is not a dict of KEYS / EXCEPTIONS / PREDICATES
                     lists of dotted paths
    resilience.E086  an ADMIN_CHOICES entry cannot be imported, or is not what its
                     list holds (a callable; an exception class)
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .dotted import import_dotted
from .exceptions import ConfigError

__all__ = [
    "BUILTIN_KEYS",
    "AdminChoices",
    "admin_choices",
    "check_admin_choices",
    "is_builtin_exception",
    "is_builtin_key",
    "parse_admin_choices",
]

KINDS = ("KEYS", "EXCEPTIONS", "PREDICATES")
BUILTIN_KEYS = ("ip", "user", "user_or_ip")
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+\Z", re.ASCII)
_WHERE = "RESILIENCE['ADMIN_CHOICES']"


def is_builtin_key(spec: str) -> bool:
    """``ip``, ``user``, ``user_or_ip``, ``header:<Name>`` or ``param:<name>``: no import."""
    kind, sep, _ = spec.partition(":")
    return spec in BUILTIN_KEYS or (bool(sep) and kind in ("header", "param"))


def is_builtin_exception(path: str) -> bool:
    """``builtins.<Name>`` naming an exception class: already loaded, imports nothing."""
    module, _, name = path.rpartition(".")
    value = getattr(builtins, name, None) if module == "builtins" else None
    return isinstance(value, type) and issubclass(value, BaseException)


@dataclass(frozen=True, slots=True)
class AdminChoices:
    """The dotted paths admin rows may name, per kind; compared as strings, never imported."""

    keys: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()
    predicates: tuple[str, ...] = ()

    def refuse_key(self, spec: str) -> str | None:
        """Why an admin row may not use this key, or ``None`` when it may."""
        if is_builtin_key(spec) or spec in self.keys:
            return None
        if "." not in spec or ":" in spec:
            # Not a dotted path at all: the parser's words, and its check id.
            return (
                f"key {spec!r} is not a known key function: use ip, user, user_or_ip, "
                f"header:<Name>, param:<name>{_or_listed(self.keys)} (resilience.E022)"
            )
        return (
            f"key {spec!r} is not allowed here: use ip, user, user_or_ip, header:<Name>, "
            f"param:<name>{_or_listed(self.keys)}. "
            "Other key functions must be listed in the RESILIENCE setting, "
            "under ADMIN_CHOICES['KEYS']."
        )

    def refuse_exception(self, path: str) -> str | None:
        if is_builtin_exception(path) or path in self.exceptions:
            return None
        return (
            f"{path!r} is not allowed here: use a built-in exception class such as "
            f"builtins.ConnectionError{_or_listed(self.exceptions)}. "
            "Other classes must be listed in the RESILIENCE setting, "
            "under ADMIN_CHOICES['EXCEPTIONS']."
        )

    def refuse_predicate(self, path: str) -> str | None:
        if path in self.predicates:
            return None
        listed = _or_listed(self.predicates).removeprefix(" or ")
        return (
            f"{path!r} is not allowed here{': use ' + listed if listed else ''}. "
            "Predicates must be listed in the RESILIENCE setting, "
            "under ADMIN_CHOICES['PREDICATES']."
        )


def _or_listed(paths: tuple[str, ...]) -> str:
    return f" or one of {', '.join(paths)}" if paths else ""


def parse_admin_choices(raw: Any, errors: list[ConfigError] | None = None) -> AdminChoices:
    """The lists' shape only, nothing imported; problems go to ``errors`` (E085)."""
    found: list[ConfigError] = [] if errors is None else errors
    if raw is None:
        return AdminChoices()
    if not isinstance(raw, Mapping):
        found.append(
            ConfigError(
                f"{_WHERE} must be a dict, not {type(raw).__name__}",
                check_id="resilience.E085",
                hint="Example: {'KEYS': ['myapp.keys.by_tenant'], 'EXCEPTIONS': "
                "['httpx.HTTPError'], 'PREDICATES': ['myapp.breakers.is_5xx']}",
            )
        )
        return AdminChoices()
    for kind in raw:
        if kind not in KINDS:
            found.append(
                ConfigError(
                    f"{_WHERE} has an unknown key {kind!r}",
                    check_id="resilience.E085",
                    hint=f"Known keys: {', '.join(KINDS)}.",
                )
            )
    lists: dict[str, tuple[str, ...]] = {}
    for kind in KINDS:
        value = raw.get(kind, ())
        if isinstance(value, str) or not isinstance(value, list | tuple):
            found.append(
                ConfigError(
                    f"{_WHERE}[{kind!r}] must be a list of dotted paths, not "
                    f"{type(value).__name__}",
                    check_id="resilience.E085",
                    hint="Example: ['myapp.keys.by_tenant'].",
                )
            )
            value = ()
        good: list[str] = []
        for item in value:
            if isinstance(item, str) and _DOTTED.match(item):
                good.append(item)
            else:
                found.append(
                    ConfigError(
                        f"{_WHERE}[{kind!r}]: {item!r} is not a dotted path",
                        check_id="resilience.E085",
                        hint="Write module.attribute, e.g. 'myapp.keys.by_tenant'.",
                    )
                )
        lists[kind] = tuple(dict.fromkeys(good))
    return AdminChoices(lists["KEYS"], lists["EXCEPTIONS"], lists["PREDICATES"])


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
            problem: str | None
            try:
                value = import_dotted(path)
            except ImportError as exc:
                problem = f"cannot be imported ({exc})"
            else:
                problem = None if test(value) else f"is not {what}"
            if problem is not None:
                errors.append(
                    ConfigError(
                        f"{_WHERE}[{kind!r}]: {path!r} {problem}",
                        check_id="resilience.E086",
                        hint=f"List the dotted path of {what}; fix the module if importing "
                        "it fails.",
                    )
                )
    return errors


def _is_exception_class(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


def admin_choices() -> AdminChoices:
    """The allowlist the current settings define (shape-checked, nothing imported)."""
    from .conf import get_settings

    return parse_admin_choices(get_settings().raw.get("ADMIN_CHOICES"))
