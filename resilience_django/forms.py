"""Admin forms: friendlier widgets over the models; validation stays in ``Model.clean()``.

The models validate by calling the settings' own parsers, so these forms add
no rules of their own, only input that is hard to get wrong.
"""

from __future__ import annotations

from typing import Any

from django import forms

from .models import BreakerPolicy, LimitRule, SheddingRule

__all__ = ["BreakerPolicyForm", "LimitRuleForm", "SheddingRuleForm"]

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


_LIST = forms.Textarea(attrs={"rows": 2, "placeholder": "package.module.ExceptionClass"})


class BreakerPolicyForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = BreakerPolicy
        fields = [
            "name", "enabled", "mode", "notes", "failure_threshold", "window", "error_rate",
            "min_calls", "open_for", "open_for_max", "half_open_calls", "close_ratio",
            "half_open_max_wait", "slow_call", "slow_call_rate", "ewma_alpha", "ewma_threshold",
            "record", "ignore", "caller_fault", "failure_result", "shared", "shared_poll",
        ]  # fmt: skip
        widgets = {
            "record": _LIST,
            "ignore": _LIST,
            "caller_fault": _LIST,
            "notes": forms.Textarea(attrs={"rows": 3}),
        }


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
