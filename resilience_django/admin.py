"""Admin pages for live tuning and the breaker dashboard (docs/admin.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, IntegrityError, router, transaction
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from . import admin_views, forms
from .admin_views.state import snapshot
from .conf import ResilienceSettings, get_settings
from .live import row_problem, settings_names
from .models import BreakerDashboard, BreakerPolicy, LimitRule, RouteDeadline, SheddingRule
from .units import parse_rate

__all__ = [
    "BreakerDashboardAdmin",
    "BreakerPolicyAdmin",
    "LimitRuleAdmin",
    "RouteDeadlineAdmin",
    "SheddingRuleAdmin",
]


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:g}ms" if value < 1 else f"{value:g}s"


def _action(description: str, field: str, value: object) -> Callable[..., None]:
    """A bulk action setting ``field`` to ``value`` on the selected rows."""

    @admin.action(description=description, permissions=["change"])
    def action(self: _RuleAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._bulk(request, queryset, field, value)

    return action


_SHADOW = "Shadow selected %(verbose_name_plural)s (count, never block)"
_ENFORCE = "Enforce selected %(verbose_name_plural)s"
_CONFLICT = "_resilience_save_conflict"  # on a request whose save lost a race


class _SavedMeanwhile(Exception):
    """The row changed between reading it for the form and saving it."""


class _RuleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    settings_key = ""  # the RESILIENCE key whose errors the changelist shows
    actions: tuple[str, ...] = ("enable", "disable")
    change_list_template = "resilience_django/admin/change_list.html"
    readonly_fields = ("created_at", "updated_at")

    @admin.display(description="in force")
    def in_force(self, obj: Any) -> str:
        if not obj.enabled:
            return format_html('<span class="rd-muted">{}</span>', "disabled")
        conflict = '<span class="rd-conflict" title="{}">{}</span>'
        if getattr(obj, obj.name_field) in settings_names()[obj.settings_kind]:
            why = "Settings define a rule with this name; the settings rule is in force."
            return format_html(conflict, why, "overridden by settings")
        # The live loader's own verdict: the page and the loader agree.
        if (problem := row_problem(obj)) is not None:
            return format_html(conflict + "<br><small>{}</small>", problem, "not in force", problem)
        return format_html('<span class="rd-ok">{}</span>', "✔ in force")

    def _bulk(self, request: HttpRequest, queryset: QuerySet[Any], field: str, value: Any) -> None:
        label = str(self.model._meta.get_field(field).verbose_name).capitalize()
        changed = 0
        for obj in queryset.exclude(**{field: value}):
            setattr(obj, field, value)
            try:
                # save(), not update(): post_save bumps the live version.  In a savepoint,
                # so a failed save leaves a surrounding transaction usable.
                with transaction.atomic(using=router.db_for_write(self.model)):
                    obj.save(update_fields=[field, "updated_at"])
            except DatabaseError:
                # "did not affect any rows": another admin deleted it since the list was read.
                if self.model._default_manager.filter(pk=obj.pk).exists():
                    raise
                continue
            changed += 1
            self.log_change(request, obj, [{"changed": {"fields": [label]}}])
        plural = self.model._meta.verbose_name_plural
        self.message_user(request, f"{changed} {plural} updated.", messages.SUCCESS)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # clean()'s updated_at check, again in one step with the save: this UPDATE matches
        # nothing if the row changed since it was read, and locks it until the transaction ends.
        rows = self.model._default_manager.filter(pk=obj.pk, updated_at=obj.updated_at)
        if change and not rows.update(updated_at=F("updated_at")):
            raise _SavedMeanwhile
        super().save_model(request, obj, form, change)

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)
        except (IntegrityError, _SavedMeanwhile):
            # Another admin's save won a race (docs/admin.md): this one was rolled back, and
            # the form comes again with the error, not a 500.
            setattr(request, _CONFLICT, True)
            return super().changeform_view(request, *args, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # Read-only, the form's hidden field would be a row of its own: "Seen updated at: None".
        drop = () if obj is None or self.has_change_permission(request, obj) else (forms.SEEN,)
        sets = super().get_fieldsets(request, obj)
        return [(n, {**o, "fields": [f for f in o["fields"] if f not in drop]}) for n, o in sets]

    def get_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        form = super().get_form(request, *args, **kwargs)
        conflict = getattr(request, _CONFLICT, False)
        return type(form.__name__, (form,), {"save_conflict": True}) if conflict else form

    enable = _action("Enable selected %(verbose_name_plural)s", "enabled", True)
    disable = _action("Disable selected %(verbose_name_plural)s", "enabled", False)

    def settings_rows(self, settings: ResilienceSettings) -> tuple[list[str], list[list[str]]]:
        """Column headings and rows of the rules settings define."""
        raise NotImplementedError

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        settings = get_settings()
        headings, rows = self.settings_rows(settings)
        errors = settings.errors_of(self.settings_key) if self.settings_key else ()
        context = {
            "settings_headings": headings,
            "settings_rows": rows,
            "settings_problems": [f"{e} ({e.check_id})" for e in errors],
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)


class _RoutedRuleAdmin(_RuleAdmin):
    @admin.display(description="route")
    def route(self, obj: Any) -> str:
        parts = [obj.path or "", f"view={obj.view}" if obj.view else "", obj.methods]
        return " ".join(p for p in parts if p) or "*"


@admin.register(LimitRule)
class LimitRuleAdmin(_RoutedRuleAdmin):
    settings_key = "LIMITS"
    shadow = _action(_SHADOW, "mode", "shadow")
    enforce = _action(_ENFORCE, "mode", "enforce")
    form = forms.LimitRuleForm
    # Scope and algorithm are filters, not columns: the list must fit beside the sidebars.
    list_display = (
        "name", "route", "key", "rate_shown", "mode", "enabled", "in_force", "updated_at",
    )  # fmt: skip
    list_filter = ("enabled", "mode", "scope", "algorithm")
    search_fields = ("name", "path", "view", "key", "notes")
    actions = ("enable", "disable", "shadow", "enforce")
    fieldsets = forms.LIMIT_FIELDSETS

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # As for a settings rule that names no scope.
        scope = "distributed" if get_settings().backend == "redis" else "local"
        return {"scope": scope, **super().get_changeform_initial_data(request)}

    @admin.display(description="rate", ordering="rate")
    def rate_shown(self, obj: LimitRule) -> str:
        # "100/m", as in the settings table, also for rows saved before clean() normalized it.
        try:
            return str(parse_rate(obj.rate))
        except ValueError:
            return obj.rate

    def settings_rows(self, settings: ResilienceSettings) -> tuple[list[str], list[list[str]]]:
        rows = [
            [r.name, r.matcher.describe(), r.key, r.rate, r.policy.algorithm.value, r.scope, r.mode]
            for r in settings.limits
        ]
        return ["name", "route", "key", "rate", "algorithm", "scope", "mode"], rows


@admin.register(BreakerPolicy)
class BreakerPolicyAdmin(_RuleAdmin):
    settings_key = "BREAKERS"
    shadow = _action(_SHADOW, "mode", "metrics_only")
    enforce = _action(_ENFORCE, "mode", "normal")
    form = forms.BreakerPolicyForm
    list_display = (
        "name", "failure_threshold", "error_rate", "open_for", "window", "mode", "enabled",
        "in_force", "updated_at",
    )  # fmt: skip
    list_filter = ("enabled", "mode", "shared")
    search_fields = ("name", "notes")
    actions = ("enable", "disable", "shadow", "enforce")
    fieldsets = forms.BREAKER_FIELDSETS

    def settings_rows(self, settings: ResilienceSettings) -> tuple[list[str], list[list[str]]]:
        rows = [
            [str(name), str(p.failure_threshold or "—"), str(p.error_rate or "—"),
             str(p.min_calls), _seconds(p.open_for), _seconds(p.window), p.mode,
             "yes" if p.shared else "no"]
            for name, p in settings.breakers.items()
        ]  # fmt: skip
        headings = ["name", "failure threshold", "error rate", "min calls", "open for", "window",
                    "mode", "shared"]  # fmt: skip
        return headings, rows


@admin.register(RouteDeadline)
class RouteDeadlineAdmin(_RuleAdmin):
    form = forms.RouteDeadlineForm
    list_display = ("route", "budget", "enabled", "in_force", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("route", "notes")
    fields = ("route", "budget", "enabled", "notes", "created_at", "updated_at", forms.SEEN)

    def settings_rows(self, settings: ResilienceSettings) -> tuple[list[str], list[list[str]]]:
        deadline = settings.deadline
        rows = [["(every request)", _seconds(deadline.default)]]
        return ["route", "budget"], rows + [[r.label, _seconds(r.budget)] for r in deadline.routes]


def _critical(share: float, critical: bool) -> str:
    if critical:
        return "all requests"
    return f"{share:.0%} reserved" if share else "—"


@admin.register(SheddingRule)
class SheddingRuleAdmin(_RoutedRuleAdmin):
    settings_key = "SHEDDING"
    form = forms.SheddingRuleForm
    # No "updated at" column: ten columns already fill the width beside the filters.
    list_display = (
        "name", "position", "route", "max_concurrent", "queue", "max_wait", "adaptive",
        "priority", "enabled", "in_force",
    )  # fmt: skip
    list_filter = ("enabled", "adaptive", "critical")
    search_fields = ("name", "path", "view", "critical_paths", "critical_header", "notes")
    # No shadow mode (actions: enable, disable): a bulkhead holds requests back or does nothing.
    fieldsets = forms.SHEDDING_FIELDSETS

    @admin.display(description="critical")
    def priority(self, obj: SheddingRule) -> str:
        return _critical(obj.critical_share, obj.critical)

    def settings_rows(self, settings: ResilienceSettings) -> tuple[list[str], list[list[str]]]:
        rows = [
            [r.name, r.matcher.describe(), str(r.max_concurrent), str(r.queue),
             _seconds(r.max_wait), f"yes (floor {r.min_concurrent})" if r.adaptive else "no",
             _critical(r.critical_share, r.critical)]
            for r in settings.shedding
        ]  # fmt: skip
        headings = ["name", "route", "max concurrent", "queue", "max wait", "adaptive",
                    "critical"]  # fmt: skip
        return headings, rows


@admin.register(BreakerDashboard)
class BreakerDashboardAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin_views.can_view(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    has_add_permission = has_delete_permission = has_change_permission

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap: Callable[..., Any] = self.admin_site.admin_view
        # Only these: the default views would query a table that does not exist.
        return [
            path("", wrap(self.dashboard_view), name=f"{name}_changelist"),
            path("api/", wrap(admin_views.api_view), name=f"{name}_api"),
            path("api/<path:name>/", wrap(admin_views.api_view), name=f"{name}_api_breaker"),
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not admin_views.can_view(request.user):
            raise PermissionDenied
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        can_operate = admin_views.can_operate(request.user)
        context = {
            **self.admin_site.each_context(request),
            "title": "Breaker dashboard",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "api_url": reverse(f"{self.admin_site.name}:{name}_api"),
            "state": snapshot(can_operate=can_operate),
            "can_operate": can_operate,
        }
        return TemplateResponse(request, "resilience_django/admin/dashboard.html", context)
