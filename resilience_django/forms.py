"""Admin forms: friendlier widgets over the models; validation stays in ``Model.clean()``.
Dotted paths are picked from what ``RESILIENCE["ADMIN_CHOICES"]`` allows (docs/admin.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .admin_choices import BUILTIN_KEYS, admin_choices
from .models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule, _split

__all__ = [
    "BreakerPolicyForm",
    "DottedPathsField",
    "LimitRuleForm",
    "RouteDeadlineForm",
    "SheddingRuleForm",
]

# Offered on every breaker form: built-in classes import nothing, so they need no listing.
COMMON_EXCEPTIONS = tuple(
    f"builtins.{name}" for name in ("Exception", "ConnectionError", "TimeoutError", "OSError")
)
_NOT_ALLOWED = "{} (not allowed by settings)"


class DatalistInput(forms.TextInput):
    """A text input with suggestions: built-in key kinds take an argument, so not a select."""

    def __init__(self, options: Sequence[str]) -> None:
        super().__init__()
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
    joiner = "\n"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return _split(value) if isinstance(value, str) else value

    def clean(self, value: Any) -> str:
        return self.joiner.join(super().clean(value))


_PATH_HELP = "Path prefix such as '/api/orders' (regexes only in settings); empty: any."

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

SEEN = "seen_updated_at"  # the form's hidden updated_at (RuleForm), in the first fieldset
# How the admin groups each form's fields (``admin.py``); the forms take the fields from them.
_HISTORY = ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)})
LIMIT_FIELDSETS: Any = (
    (None, {"fields": ("name", "enabled", "mode", "notes", SEEN)}),
    ("Which requests", {"fields": ("path", "view", "methods")}),
    ("How fast", {"fields": ("key", "rate", "burst", "algorithm", "scope")}),
    _HISTORY,
)
BREAKER_FIELDSETS: Any = (
    (None, {"fields": ("name", "enabled", "mode", "notes", SEEN)}),
    ("Tripping", {"fields": ("failure_threshold", "window", "error_rate", "min_calls")}),
    ("Open and half-open", {"fields": ("open_for", "open_for_max", "half_open_calls",
                                       "close_ratio", "half_open_max_wait")}),
    ("Slow calls and EWMA", {"fields": ("slow_call", "slow_call_rate", "ewma_alpha",
                                        "ewma_threshold"), "classes": ("collapse",)}),
    ("What counts as a failure", {"fields": ("record", "ignore", "caller_fault",
                                             "failure_result"), "classes": ("collapse",)}),
    ("Fleet", {"fields": ("shared", "shared_poll"), "classes": ("collapse",)}),
    _HISTORY,
)  # fmt: skip
SHEDDING_FIELDSETS: Any = (
    (None, {"fields": ("name", "enabled", "position", "notes", SEEN)}),
    ("Which requests", {"fields": ("path", "view", "methods")}),
    ("How many at once", {"fields": ("max_concurrent", "queue", "max_wait", "adaptive",
                                     "min_concurrent")}),
    ("Critical requests", {"fields": ("critical_share", "critical", "critical_paths",
                                      "critical_methods", "critical_header")}),
    _HISTORY,
)  # fmt: skip


def _editable(fieldsets: Any) -> list[str]:
    return [f for _, options in fieldsets[:-1] for f in options["fields"]]


class RuleForm(forms.ModelForm):  # type: ignore[type-arg]
    """Optimistic concurrency: the row's ``updated_at`` when the form was opened comes back
    hidden, and a save over a change made since then is refused (docs/admin.md)."""

    seen_updated_at = forms.CharField(widget=forms.HiddenInput, required=False)
    save_conflict = False  # set by the admin when this save lost a race (admin.py)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields[SEEN].initial = self._saved()

    def _saved(self) -> str:
        return str(self.instance.updated_at.isoformat())

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        # No value: not posted from the form (a script); nothing to compare with.
        seen = self.cleaned_data.get(SEEN)
        if self.instance.pk is not None and seen not in ("", None, self._saved()):
            rule = f"{self.instance._meta.verbose_name} {str(self.instance)!r}"
            why = f"Not saved: someone else changed the {rule} after you opened this page. "
            self.add_error(None, why + "Open it again to see their change, then redo yours.")
        elif self.save_conflict:
            why = "Not saved: another change to a rule of this name was saved at the same moment. "
            self.add_error(None, why + "Check the list of rules, then save again.")
        return cleaned


class MethodsField(DottedPathsField):
    """HTTP methods as checkboxes, stored as "POST, PUT" (none ticked: every method)."""

    joiner = ", "

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("choices", [(m, m) for m in METHODS])
        kwargs.setdefault("help_text", "None ticked: the rule applies to every method.")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return [m.upper() for m in super().prepare_value(value) or ()]


class LimitRuleForm(RuleForm):
    methods = MethodsField()

    class Meta:
        model = LimitRule
        fields = _editable(LIMIT_FIELDSETS)
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"path": _PATH_HELP}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Suggestions only: header:<Name> takes any name; Model.clean() checks ADMIN_CHOICES.
        # No field for staff who may only view: the admin shows it read-only.
        if (key := self.fields.get("key")) is None:
            return
        key.widget = DatalistInput(
            [*BUILTIN_KEYS, "header:X-Api-Key", "param:token", *admin_choices().keys]
        )
        key.help_text = (
            "ip, user, user_or_ip, header:<Name>, param:<name>, or a key function "
            "listed in RESILIENCE['ADMIN_CHOICES']['KEYS']."
        )


class BreakerPolicyForm(RuleForm):
    # Picked from what settings allow (RESILIENCE["ADMIN_CHOICES"]), never typed.
    record = DottedPathsField(
        help_text="Exception classes counted as failures; none: any Exception."
    )
    ignore = DottedPathsField(help_text="Exception classes that count as successes.")
    caller_fault = DottedPathsField(help_text="Exception classes that are the caller's fault.")
    failure_result = forms.ChoiceField(
        required=False, help_text="A predicate(result) -> bool marking results as failures."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = admin_choices()
        # Common built-ins, the listed classes, and the row's own values (marked when refused).
        allowed = list(dict.fromkeys([*COMMON_EXCEPTIONS, *choices.exceptions]))
        for name in ("record", "ignore", "caller_fault"):
            field = self.fields[name]
            assert isinstance(field, DottedPathsField)
            options = [(path, path) for path in allowed]
            for path in dict.fromkeys(field.prepare_value(getattr(self.instance, name))):
                if path not in allowed:
                    refused = choices.refuse_exception(path) is not None
                    options.append((path, _NOT_ALLOWED.format(path) if refused else path))
            field.choices = options
        predicate = self.fields["failure_result"]
        assert isinstance(predicate, forms.ChoiceField)
        current = self.instance.failure_result
        options = [("", "— none —"), *((p, p) for p in choices.predicates)]
        if current and current not in choices.predicates:
            options.append((current, _NOT_ALLOWED.format(current)))
        predicate.choices = options

    class Meta:
        model = BreakerPolicy
        fields = _editable(BREAKER_FIELDSETS)
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}


class SheddingRuleForm(RuleForm):
    methods = MethodsField()
    critical_methods = MethodsField(
        label="Critical methods", help_text="Requests with these methods are critical."
    )

    class Meta:
        model = SheddingRule
        fields = _editable(SHEDDING_FIELDSETS)
        widgets = {
            "critical_paths": forms.Textarea(
                attrs={"rows": 2, "placeholder": "/api/orders/checkout"}
            ),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }
        help_texts = {
            "path": _PATH_HELP,
            "critical_paths": "Critical path prefixes, one a line (regexes only in settings).",
        }


class RouteDeadlineForm(RuleForm):
    class Meta:
        model = RouteDeadline
        fields = ["route", "budget", "enabled", "notes"]
        help_texts = {
            "route": "Path prefix ('/api/orders') or URL name ('orders:quote'); "
            "regexes only in settings."
        }
