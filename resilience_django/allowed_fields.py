"""Form fields that offer what ``RESILIENCE["ADMIN_CHOICES"]`` allows, and nothing else.

Admin users pick key functions, exception classes and predicates from the
lists the settings define (see ``admin_choices.py``); the choices are built
when each form is made, so they follow the settings.  A value a row already
holds but the settings do not allow (saved before the allowlist existed) is
shown, marked, so the operator sees why the form refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .admin_choices import BUILTIN_KEYS, AdminChoices, is_builtin_exception

__all__ = [
    "COMMON_EXCEPTIONS",
    "DatalistInput",
    "DottedPathsField",
    "exception_choices",
    "key_options",
    "predicate_choices",
]

# Offered on every breaker form: built-in classes import nothing, so they need no listing.
COMMON_EXCEPTIONS = (
    "builtins.Exception",
    "builtins.ConnectionError",
    "builtins.TimeoutError",
    "builtins.OSError",
)
_NOT_ALLOWED = "{} (not allowed by settings)"


def _split(value: str) -> list[str]:
    return [p for p in (part.strip() for part in value.replace("\n", ",").split(",")) if p]


class DatalistInput(forms.TextInput):
    """A text input with suggestions: built-in key kinds take an argument, so not a select."""

    def __init__(self, options: Sequence[str] = (), attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.options = tuple(options)

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        list_id = f"{(attrs or {}).get('id') or 'id_' + name}_choices"
        html = super().render(name, value, {**(attrs or {}), "list": list_id}, renderer)
        options = format_html_join("", '<option value="{}"></option>', ((o,) for o in self.options))
        return html + format_html('<datalist id="{}">{}</datalist>', list_id, options)


class DottedPathsField(forms.MultipleChoiceField):
    """Dotted paths as checkboxes, stored one a line (the model's text format)."""

    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return _split(value) if isinstance(value, str) else value

    def clean(self, value: Any) -> str:
        return "\n".join(super().clean(value))


def key_options(choices: AdminChoices) -> list[str]:
    """Suggestions for a limit rule's key: the built-in kinds, then what settings list."""
    return [*BUILTIN_KEYS, "header:X-Api-Key", "param:token", *choices.keys]


def exception_choices(choices: AdminChoices, current: Iterable[str]) -> list[tuple[str, str]]:
    """Common built-ins, the listed classes, and the row's own values (marked when refused)."""
    allowed = list(dict.fromkeys([*COMMON_EXCEPTIONS, *choices.exceptions]))
    out = [(path, path) for path in allowed]
    for path in dict.fromkeys(current):
        if path not in allowed:
            refused = not is_builtin_exception(path) and path not in choices.exceptions
            out.append((path, _NOT_ALLOWED.format(path) if refused else path))
    return out


def predicate_choices(choices: AdminChoices, current: str) -> list[tuple[str, str]]:
    out = [("", "— none —"), *((path, path) for path in choices.predicates)]
    if current and current not in choices.predicates:
        out.append((current, _NOT_ALLOWED.format(current)))
    return out
