"""Admin forms: friendlier widgets over the models; validation stays in ``Model.clean()``.

The models validate by calling the settings' own parsers, so these forms add
no rules of their own, only input that is hard to get wrong.
"""

from __future__ import annotations

from typing import Any

from django import forms

from .admin_choices import admin_choices
from .allowed_fields import (
    DatalistInput,
    DottedPathsField,
    exception_choices,
    key_options,
    predicate_choices,
)
from .models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule

__all__ = ["BreakerPolicyForm", "LimitRuleForm", "RouteDeadlineForm", "SheddingRuleForm"]

# Admin rows take prefixes and URL names, never regexes (``Model.clean()``
# refuses them): a regex saved here could make every request slow.
_PATH_HELP = "Path prefix such as '/api/orders' (regexes only in settings); empty: any."

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class MethodsField(forms.MultipleChoiceField):
    """HTTP methods as checkboxes, stored as "POST, PUT" (none ticked: every method)."""

    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("choices", [(m, m) for m in METHODS])
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "None ticked: the rule applies to every method.")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return [m.strip().upper() for m in value.split(",") if m.strip()]
        return value

    def clean(self, value: Any) -> str:
        return ", ".join(super().clean(value))


class LimitRuleForm(forms.ModelForm):  # type: ignore[type-arg]
    methods = MethodsField()

    class Meta:
        model = LimitRule
        fields = [
            "name", "enabled", "mode", "notes", "path", "view", "methods", "key", "rate",
            "burst", "algorithm", "scope",
        ]  # fmt: skip
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"path": _PATH_HELP}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Suggestions only: header:<Name> takes any name.  What is not built in
        # must be listed in RESILIENCE["ADMIN_CHOICES"]["KEYS"] (Model.clean()).
        key = self.fields["key"]
        key.widget = DatalistInput(key_options(admin_choices()))
        key.help_text = (
            "ip, user, user_or_ip, header:<Name>, param:<name>, or a key function "
            "listed in RESILIENCE['ADMIN_CHOICES']['KEYS']."
        )


class BreakerPolicyForm(forms.ModelForm):  # type: ignore[type-arg]
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
        instance = self.instance
        for name in ("record", "ignore", "caller_fault"):
            field = self.fields[name]
            assert isinstance(field, DottedPathsField)
            field.choices = exception_choices(choices, field.prepare_value(getattr(instance, name)))
        predicate = self.fields["failure_result"]
        assert isinstance(predicate, forms.ChoiceField)
        predicate.choices = predicate_choices(choices, instance.failure_result or "")

    class Meta:
        model = BreakerPolicy
        fields = [
            "name", "enabled", "mode", "notes", "failure_threshold", "window", "error_rate",
            "min_calls", "open_for", "open_for_max", "half_open_calls", "close_ratio",
            "half_open_max_wait", "slow_call", "slow_call_rate", "ewma_alpha", "ewma_threshold",
            "record", "ignore", "caller_fault", "failure_result", "shared", "shared_poll",
        ]  # fmt: skip
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}


class SheddingRuleForm(forms.ModelForm):  # type: ignore[type-arg]
    methods = MethodsField()
    critical_methods = MethodsField(
        label="Critical methods", help_text="Requests with these methods are critical."
    )

    class Meta:
        model = SheddingRule
        fields = [
            "name", "enabled", "position", "notes", "path", "view", "methods", "max_concurrent",
            "queue", "max_wait", "adaptive", "min_concurrent", "critical_share", "critical",
            "critical_paths", "critical_methods", "critical_header",
        ]  # fmt: skip
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


class RouteDeadlineForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = RouteDeadline
        fields = ["route", "budget", "enabled", "notes"]
        help_texts = {
            "route": "Path prefix ('/api/orders') or URL name ('orders:quote'); "
            "regexes only in settings."
        }
