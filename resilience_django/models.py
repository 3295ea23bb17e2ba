"""Rules operators tune live in the Django admin (docs/admin.md), each validated by the
settings' own parser through the settings entry it mirrors (``as_setting()``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models

from . import live
from .admin_choices import AdminChoices, admin_choices
from .breakers.policy import parse_breaker_policy
from .conf import RouteBudget, _route_key_matcher
from .exceptions import ConfigError, every_error
from .limiting.rules import parse_limit_rule
from .routes import reject_regex
from .shedding.rules import parse_shedding_rule
from .units import parse_deadline_budget

__all__ = [
    "BreakerDashboard",
    "BreakerPolicy",
    "LimitRule",
    "RouteDeadline",
    "SheddingRule",
    "config_error",
]


def config_error(
    exc: ConfigError, fields: tuple[str, ...] = (), by_check: dict[str, str] | None = None
) -> ValidationError:
    """Each problem of ``exc`` on its field: the check id's (``by_check``), else the one its
    message starts with or names; without the settings prefix ("RESILIENCE['LIMITS'][0]: ")."""
    by_field: dict[str, list[str]] = {}
    for problem in every_error(exc):
        message = str(problem)
        head, sep, tail = message.partition(": ")
        if sep and head.startswith("RESILIENCE["):
            message = tail
        # Else by name, the longest first, so "slow_call_rate" wins over "slow_call".
        field = (by_check or {}).get(problem.check_id) or next(
            (n for n in sorted(fields, key=len, reverse=True)
             if message.startswith(n) or f" {n} " in f" {message} "),
            NON_FIELD_ERRORS,
        )  # fmt: skip
        hint = f" — {problem.hint}" if problem.hint else ""
        by_field.setdefault(field, []).append(f"{message}{hint} ({problem.check_id})")
    return ValidationError(by_field)


class _AdminRule(models.Model):
    """What every admin rule has: on/off, notes, history, validation by the settings' parser."""

    enabled = models.BooleanField(
        default=True, help_text="Only enabled rules are in force; disabled ones are kept."
    )
    notes = models.TextField(blank=True, help_text="Why this rule exists; for the next operator.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    settings_kind = ""  # the ``live.settings_names()`` kind
    name_field = "name"
    # The form field of a parser's problem: by check id, else the field its message names.
    fields_by_check: dict[str, str] = {}
    fields_by_message: tuple[str, ...] = ()
    # ``as_setting()``: fields always written, left out when empty, split into lists.
    always: tuple[str, ...] = ()
    when_set: tuple[str, ...] = ()
    as_lists: tuple[str, ...] = ()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return str(getattr(self, self.name_field))

    def refusals(self, choices: AdminChoices) -> dict[str, str]:
        """Field → why ``ADMIN_CHOICES`` does not allow the dotted path it names (no import)."""
        return {}

    def as_setting(self) -> dict[str, Any]:
        """This row as the settings entry it mirrors."""
        entry = {name: getattr(self, name) for name in self.always}
        entry |= {n: v for n in self.when_set if (v := getattr(self, n)) not in ("", None)}
        entry |= {n: _split(v) for n in self.as_lists if (v := getattr(self, n)).strip()}
        return entry

    def parse(self, index: int = 0) -> object:
        """This row through the settings' own parser (``index`` names it in errors); raises
        ``ConfigError``.  Admin rows take path prefixes and URL names only (docs/admin.md)."""
        raise NotImplementedError

    def clean(self) -> None:
        self._refuse_settings_name()
        if refusals := self.refusals(admin_choices()):
            raise ValidationError(refusals)
        try:
            self.parse()
        except ConfigError as exc:
            fields = self.fields_by_message or tuple(f.name for f in self._meta.fields)
            raise config_error(exc, fields, self.fields_by_check) from None

    def _refuse_settings_name(self) -> None:
        name = getattr(self, self.name_field)
        if name in live.settings_names()[self.settings_kind]:
            kind = self._meta.verbose_name
            why = f"The settings (RESILIENCE) already define a {kind} named {name!r}, and settings "
            why += "win: this one would never be in force. Choose another name, or change the rule "
            raise ValidationError({self.name_field: why + "in the settings."})


def _split(value: str) -> list[str]:
    return [part for part in (p.strip() for p in value.replace("\n", ",").split(",")) if part]


class _RoutedRule(_AdminRule):
    """A rule that selects requests by path, view and methods."""

    path = models.CharField(
        max_length=500,
        blank=True,
        help_text="Path prefix ('/api/orders') or regex ('^/api/\\d+$'); empty: any.",
    )
    view = models.CharField(
        max_length=200, blank=True, help_text="URL name such as 'orders:quote'; empty: any."
    )
    methods = models.CharField(
        max_length=100, blank=True, help_text="Comma-separated, e.g. 'POST, PUT'; empty: any."
    )

    class Meta:
        abstract = True


class LimitRule(_RoutedRule):
    """One entry of ``RESILIENCE["LIMITS"]``, defined in the admin."""

    ALGORITHMS = [
        ("sliding_window", "sliding window"),
        ("token_bucket", "token bucket"),
        ("gcra", "GCRA"),
    ]
    SCOPES = [("local", "local"), ("distributed", "distributed")]
    MODES = [("enforce", "enforce"), ("shadow", "shadow"), ("off", "off")]
    name = models.CharField(
        max_length=100,
        unique=True,
        help_text="Unique; in RateLimit headers and metrics. Letters, digits, _ . : / -",
    )
    key = models.CharField(
        max_length=200,
        default="ip",
        help_text="ip, user, user_or_ip, header:<Name>, param:<name> or dotted path.",
    )
    rate = models.CharField(max_length=50, help_text="'100/m', '10/s', '5000/h', '100/30s'.")
    burst = models.IntegerField(
        null=True, blank=True, help_text="Token bucket and GCRA only; empty: the rate's count."
    )
    algorithm = models.CharField(max_length=20, choices=ALGORITHMS, default="sliding_window")
    scope = models.CharField(
        max_length=20,
        choices=SCOPES,
        default="local",
        help_text="local: each process counts alone; distributed: shared through Redis.",
    )
    mode = models.CharField(
        max_length=10,
        choices=MODES,
        default="enforce",
        help_text="shadow: counted and reported, never blocks; off: ignored.",
    )

    settings_kind = "limit"
    # E027 (path, view or methods) is found from the message.
    fields_by_check = {
        "resilience.E020": "rate",
        "resilience.E021": "algorithm",
        "resilience.E022": "key",
        "resilience.E023": "scope",
        "resilience.E024": "mode",
        "resilience.E025": "burst",
        "resilience.E026": "name",
    }
    fields_by_message = ("path", "view", "methods")
    always = ("name", "key", "rate", "algorithm", "scope", "mode")
    when_set = ("path", "view", "burst")
    as_lists = ("methods",)

    class Meta:
        ordering = ["name"]
        verbose_name = "limit rule"

    def refusals(self, choices: AdminChoices) -> dict[str, str]:
        refusal = choices.refuse_key(self.key) if isinstance(self.key, str) else None
        return {"key": refusal} if refusal else {}

    def parse(self, index: int = 0) -> object:
        rule = parse_limit_rule(self.as_setting(), index=index, allow_regex=False)
        self.rate = rule.rate  # saved as shown: "100/minute" and "100/60s" are "100/m"
        return rule


class BreakerPolicy(_AdminRule):
    """One entry of ``RESILIENCE["BREAKERS"]``, defined in the admin (durations as in settings:
    "30s"; an empty optional field is the setting's ``None`` or default)."""

    MODES = [("normal", "normal"), ("disabled", "disabled"), ("metrics_only", "metrics only")]
    LISTS = ("record", "ignore", "caller_fault")

    name = models.CharField(
        max_length=100, unique=True, help_text="The name code passes to breaker()."
    )
    failure_threshold = models.IntegerField(
        null=True, blank=True, default=5, help_text="Consecutive failures that trip it; empty: off."
    )
    open_for = models.CharField(max_length=20, default="30s")
    open_for_max = models.CharField(
        max_length=20, blank=True, help_text="Cap for doubling open_for on re-trips; empty: none."
    )
    half_open_calls = models.IntegerField(default=10)
    close_ratio = models.FloatField(default=0.9)
    window = models.CharField(max_length=20, default="60s")
    error_rate = models.FloatField(null=True, blank=True, default=0.5)
    min_calls = models.IntegerField(default=20)
    slow_call = models.CharField(max_length=20, blank=True)
    slow_call_rate = models.FloatField(null=True, blank=True)
    ewma_alpha = models.FloatField(default=0.3)
    ewma_threshold = models.FloatField(null=True, blank=True)
    half_open_max_wait = models.CharField(max_length=20, default="60s")
    record = models.TextField(
        blank=True, help_text="Exception classes counted as failures: dotted paths, one a line."
    )
    ignore = models.TextField(blank=True, help_text="Exception classes that count as successes.")
    caller_fault = models.TextField(blank=True)
    failure_result = models.CharField(
        max_length=200, blank=True, help_text="Dotted path to predicate(result) -> bool."
    )
    mode = models.CharField(
        max_length=20,
        choices=MODES,
        default="normal",
        help_text="metrics only: measured and reported, never opens; disabled: never opens.",
    )
    shared = models.BooleanField(default=False, help_text="Open in every process together.")
    shared_poll = models.IntegerField(default=500, help_text="Milliseconds.")

    settings_kind = "breaker"
    always = (
        "failure_threshold", "open_for", "half_open_calls", "close_ratio", "window", "error_rate",
        "min_calls", "ewma_alpha", "ewma_threshold", "half_open_max_wait", "mode", "shared",
        "shared_poll",
    )  # fmt: skip
    when_set = ("open_for_max", "slow_call", "failure_result", "slow_call_rate")
    as_lists = LISTS

    class Meta:
        ordering = ["name"]
        verbose_name = "breaker policy"
        verbose_name_plural = "breaker policies"

    def refusals(self, choices: AdminChoices) -> dict[str, str]:
        found: dict[str, str] = {}
        for name in self.LISTS:
            for path in _split(getattr(self, name) or ""):
                if refusal := choices.refuse_exception(path):
                    found.setdefault(name, refusal)
        result = self.failure_result  # a predicate's dotted path
        if isinstance(result, str) and result and (refusal := choices.refuse_predicate(result)):
            found["failure_result"] = refusal
        return found

    def parse(self, index: int = 0) -> object:
        return parse_breaker_policy(self.name, self.as_setting())


class RouteDeadline(_AdminRule):
    """One entry of ``RESILIENCE["DEADLINE"]["ROUTES"]``, defined in the admin."""

    route = models.CharField(
        max_length=500,
        unique=True,
        help_text="Path prefix ('/api/orders'), regex ('^/api/.*$') or URL name.",
    )
    budget = models.CharField(max_length=20, help_text="'800ms', '2s'.")

    settings_kind = "route"
    name_field = "route"

    class Meta:
        ordering = ["route"]
        verbose_name = "route deadline"

    def __str__(self) -> str:
        return f"{self.route} → {self.budget}"

    def parsed_budget(self) -> float:
        """The budget in seconds; ``ConfigError`` unless a positive duration."""
        try:
            return parse_deadline_budget(self.budget)
        except ValueError as exc:
            hint = "Write it like '800ms' or '2s': longer than zero, at most a day."
            raise ConfigError(str(exc), check_id="resilience.E008", hint=hint) from None

    def parse(self, index: int = 0) -> RouteBudget:
        budget = self.parsed_budget()
        where = f"admin route deadline {self.route!r}"
        reject_regex(self.route, where=where, check_id="resilience.E008")
        return RouteBudget(
            matcher=_route_key_matcher(self.route, where), budget=budget, label=self.route
        )

    def clean(self) -> None:
        self._refuse_settings_name()
        where = f"RESILIENCE['DEADLINE']['ROUTES'][{self.route!r}]"
        errors: dict[str, str] = {}
        # Both fields at once; a route is a prefix or a URL name, never a regex (docs/admin.md).
        for field, parse in (
            ("budget", self.parsed_budget),
            ("route", lambda: _route_key_matcher(self.route, where, allow_regex=False)),
        ):
            try:
                parse()
            except ConfigError as exc:
                errors[field] = config_error(exc).messages[0]
        if errors:
            raise ValidationError(errors)


class SheddingRule(_RoutedRule):
    """One entry of ``RESILIENCE["SHEDDING"]``, defined in the admin; tried after the settings
    rules, by ``position`` then name (docs/admin.md, "Precedence")."""

    name = models.CharField(
        max_length=100, unique=True, help_text="Unique; labels the rule's metrics and its 503s."
    )
    position = models.IntegerField(
        default=0,
        help_text="Admin rules are tried lowest first, after the settings rules; "
        "the first rule that matches a request decides.",
    )
    max_concurrent = models.IntegerField(help_text="Requests of this rule that may run at once.")
    queue = models.IntegerField(
        default=0, help_text="Requests that may wait for a slot; 0: shed at once when full."
    )
    max_wait = models.CharField(
        max_length=20,
        default="100ms",
        help_text="Longest wait in the queue ('200ms'); never past the request's deadline.",
    )
    adaptive = models.BooleanField(
        default=False,
        help_text="The limit follows latency, between min_concurrent and max_concurrent.",
    )
    min_concurrent = models.IntegerField(
        null=True, blank=True, help_text="Adaptive only: the floor; empty: min(20, max_concurrent)."
    )
    critical_share = models.FloatField(
        default=0.0, help_text="Share of the slots kept for critical requests, from 0 up to 1."
    )
    critical = models.BooleanField(
        default=False, help_text="Every request of this rule is critical."
    )
    critical_paths = models.TextField(
        blank=True, help_text="Critical path prefixes or regexes ('^...'), one a line."
    )
    critical_methods = models.CharField(
        max_length=100, blank=True, help_text="Comma-separated, e.g. 'DELETE'; empty: none."
    )
    critical_header = models.CharField(
        max_length=100,
        blank=True,
        help_text="A header your own gateway sets (never trusted from clients); empty: none.",
    )

    settings_kind = "shedding"
    # E072 (path, view or methods) and E078 (a critical_* field) are found from the message.
    fields_by_check = {
        "resilience.E071": "name",
        "resilience.E073": "max_concurrent",
        "resilience.E074": "queue",
        "resilience.E075": "max_wait",
        # "adaptive" is a checkbox and cannot be wrong: an E076 is about the floor.
        "resilience.E076": "min_concurrent",
        "resilience.E077": "critical_share",
    }
    fields_by_message = (
        "path", "view", "methods", "critical", "critical_paths", "critical_methods",
        "critical_header",
    )  # fmt: skip
    always = ("name", "max_concurrent", "queue", "max_wait", "adaptive", "critical_share",
              "critical")  # fmt: skip
    when_set = ("path", "view", "min_concurrent")
    as_lists = ("methods", "critical_methods")

    class Meta:
        ordering = ["position", "name"]
        verbose_name = "shedding rule"

    def as_setting(self) -> dict[str, Any]:
        entry = super().as_setting()
        # One a line, not comma-separated: a regex may hold a comma ("\\d{1,3}").
        if paths := [line.strip() for line in self.critical_paths.splitlines() if line.strip()]:
            entry["critical_paths"] = paths
        if self.critical_header.strip():
            entry["critical_header"] = self.critical_header.strip()
        return entry

    def parse(self, index: int = 0) -> object:
        return parse_shedding_rule(self.as_setting(), index=index, allow_regex=False)


class BreakerDashboard(models.Model):
    """No table: the admin's link to the breaker dashboard, and its permission."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [
            ("operate_breakers", "Can force-open, force-close, reset and disable breakers")
        ]
        verbose_name = "breaker dashboard"
        verbose_name_plural = "breaker dashboard"

    def __str__(self) -> str:
        return "breaker dashboard"


live.connect_signals((LimitRule, BreakerPolicy, RouteDeadline, SheddingRule))


# -- the database fleet store (fleetstore/database.py): never touched by a request.


class FleetProcess(models.Model):
    """One process's latest report; rows not refreshed within ``FLEET["TTL"]`` are dead."""

    process = models.CharField(max_length=255, unique=True)  # "host:pid"
    report = models.TextField()  # JSON, never queried into
    # Written with the database's clock, so hosts whose clocks disagree still agree.
    updated_at = models.DateTimeField(db_index=True)

    class Meta:
        default_permissions = ()
        verbose_name = "fleet process"

    def __str__(self) -> str:
        return self.process


class FleetCommand(models.Model):
    """An operator command; its id is its number in the fleet's command sequence."""

    breaker = models.TextField()
    action = models.CharField(max_length=20)
    at = models.FloatField(db_index=True)  # wall-clock seconds; old ones are deleted

    class Meta:
        default_permissions = ()
        verbose_name = "fleet command"

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.breaker}"


class FleetValue(models.Model):
    """Small shared values: the rules' version, the command order, shared breakers' markers."""

    key = models.CharField(max_length=255, primary_key=True)
    value = models.TextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        default_permissions = ()
        verbose_name = "fleet value"

    def __str__(self) -> str:
        return self.key
