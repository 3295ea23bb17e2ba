"""Admin users are trusted with values, not code: only dotted paths settings list are used.

Each test here failed before ``RESILIENCE["ADMIN_CHOICES"]``: the admin
imported (and the limiter later called) whatever dotted path a row named, and a
module whose import raised anything but ``ImportError`` was a 500, a traceback
in ``check``, and stopped every admin rule from reloading.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import checks
from django.test import Client, override_settings

from resilience_django import live
from resilience_django.checks import check_settings
from resilience_django.models import BreakerPolicy, LimitRule
from resilience_django.units import parse_rate

from .servers import csrf_token

pytestmark = pytest.mark.django_db

SENTINEL = "tests.admin.sentinel_key"
LIMIT_ADD = "/admin/resilience_django/limitrule/add/"
BREAKER_ADD = "/admin/resilience_django/breakerpolicy/add/"
LIMIT_LIST = "/admin/resilience_django/limitrule/"


@pytest.fixture(autouse=True)
def _sentinel_not_imported() -> Iterator[None]:
    sys.modules.pop(SENTINEL, None)
    yield
    sys.modules.pop(SENTINEL, None)


@pytest.fixture
def admin_client(db: None) -> Client:
    """A superuser's browser: CSRF checked as in production."""
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _post(client: Client, url: str, data: dict[str, Any]) -> Any:
    token = csrf_token(client.get(url).content.decode())
    return client.post(url, {**data, "csrfmiddlewaretoken": token})


def _limit_form(**fields: Any) -> dict[str, Any]:
    return {"name": "api", "enabled": "on", "mode": "enforce", "rate": "10/m",
            "algorithm": "sliding_window", "scope": "local", **fields}  # fmt: skip


@pytest.fixture
def broken_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``syntax_broken`` (a SyntaxError) and ``gis_like`` (ImproperlyConfigured at import)."""
    (tmp_path / "syntax_broken.py").write_text("def key(request):\n    return (\n")
    (tmp_path / "gis_like.py").write_text(
        textwrap.dedent(
            """
            from django.core.exceptions import ImproperlyConfigured
            raise ImproperlyConfigured("Could not find the GDAL library")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("syntax_broken", "gis_like"):
        sys.modules.pop(name, None)


# -- the admin forms -------------------------------------------------------------------


def test_key_sys_exit_is_a_form_error_on_the_add_view_and_nothing_is_saved(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(sys, "exit", lambda *args: calls.append(args))
    response = _post(admin_client, LIMIT_ADD, _limit_form(key="sys.exit"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "not allowed here" in " ".join(errors["key"])
    assert not LimitRule.objects.exists()
    assert calls == []


def test_a_key_no_setting_lists_is_never_imported(admin_client: Client) -> None:
    response = _post(admin_client, LIMIT_ADD, _limit_form(key=f"{SENTINEL}.key"))
    assert response.status_code == 200
    assert "key" in response.context["adminform"].form.errors
    assert SENTINEL not in sys.modules


def test_full_clean_refuses_an_unlisted_key_without_importing_it() -> None:
    rule = LimitRule(name="api", rate="10/m", key=f"{SENTINEL}.key")
    with pytest.raises(Exception, match="ADMIN_CHOICES") as info:
        rule.full_clean()
    assert "key" in info.value.message_dict  # type: ignore[attr-defined]
    assert SENTINEL not in sys.modules


def test_a_key_the_settings_list_is_offered_and_accepted(admin_client: Client) -> None:
    with override_settings(RESILIENCE={"ADMIN_CHOICES": {"KEYS": [f"{SENTINEL}.key"]}}):
        page = admin_client.get(LIMIT_ADD).content.decode()
        assert f'<option value="{SENTINEL}.key">' in page
        response = _post(admin_client, LIMIT_ADD, _limit_form(key=f"{SENTINEL}.key"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert LimitRule.objects.get().key == f"{SENTINEL}.key"


def test_built_in_key_kinds_need_no_listing(admin_client: Client) -> None:
    for index, key in enumerate(["ip", "user", "user_or_ip", "header:X-Api-Key", "param:t"]):
        response = _post(admin_client, LIMIT_ADD, _limit_form(name=f"r{index}", key=key))
        assert response.status_code == 302, (key, response.context["adminform"].form.errors)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("record", f"{SENTINEL}.SentinelError"),
        ("ignore", "django.core.exceptions.ImproperlyConfigured"),
        ("caller_fault", f"{SENTINEL}.SentinelError"),
        ("failure_result", "django.contrib.auth.logout"),
        ("failure_result", f"{SENTINEL}.is_failure"),
    ],
)
def test_breaker_form_refuses_exception_classes_and_predicates_settings_do_not_list(
    admin_client: Client, field: str, value: str
) -> None:
    data = {"name": "pricing", "enabled": "on", "mode": "normal", "failure_threshold": "5",
            "open_for": "30s", "half_open_calls": "10", "close_ratio": "0.9", "window": "60s",
            "error_rate": "0.5", "min_calls": "20", "ewma_alpha": "0.3",
            "half_open_max_wait": "60s", "shared_poll": "500", field: value}  # fmt: skip
    response = _post(admin_client, BREAKER_ADD, data)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not BreakerPolicy.objects.exists()
    assert SENTINEL not in sys.modules


def test_breaker_form_offers_and_accepts_what_the_settings_list(admin_client: Client) -> None:
    allowed = {
        "EXCEPTIONS": [f"{SENTINEL}.SentinelError"],
        "PREDICATES": [f"{SENTINEL}.is_failure"],
    }
    data = {"name": "pricing", "enabled": "on", "mode": "normal", "failure_threshold": "5",
            "open_for": "30s", "half_open_calls": "10", "close_ratio": "0.9", "window": "60s",
            "error_rate": "0.5", "min_calls": "20", "ewma_alpha": "0.3",
            "half_open_max_wait": "60s", "shared_poll": "500",
            "record": [f"{SENTINEL}.SentinelError", "builtins.TimeoutError"],
            "failure_result": f"{SENTINEL}.is_failure"}  # fmt: skip
    with override_settings(RESILIENCE={"ADMIN_CHOICES": allowed}):
        response = _post(admin_client, BREAKER_ADD, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    setting = BreakerPolicy.objects.get().as_setting()
    assert setting["record"] == [f"{SENTINEL}.SentinelError", "builtins.TimeoutError"]
    assert setting["failure_result"] == f"{SENTINEL}.is_failure"


@pytest.mark.usefixtures("broken_modules")
@pytest.mark.parametrize("module", ["syntax_broken", "gis_like"])
def test_a_listed_key_whose_module_fails_to_import_is_a_form_error_not_a_500(
    admin_client: Client, module: str
) -> None:
    with override_settings(RESILIENCE={"ADMIN_CHOICES": {"KEYS": [f"{module}.key"]}}):
        response = _post(admin_client, LIMIT_ADD, _limit_form(key=f"{module}.key"))
    assert response.status_code == 200
    assert "cannot be imported" in " ".join(response.context["adminform"].form.errors["key"])


# -- the live loader -------------------------------------------------------------------


def _reload() -> live.AdminRules:
    live.bump()
    live.reload_now()
    return live.admin_rules()


@pytest.mark.usefixtures("broken_modules")
def test_stored_bad_rows_are_skipped_and_a_good_rows_edit_still_reloads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(sys, "exit", lambda *args: calls.append(args))
    good = LimitRule.objects.create(name="good", rate="10/m", path="/api/")
    # Saved before the allowlist existed, or written around the admin.
    LimitRule.objects.bulk_create(
        [
            LimitRule(name="exit", rate="10/m", key="sys.exit"),
            LimitRule(name="sentinel", rate="10/m", key=f"{SENTINEL}.key"),
            LimitRule(name="gis", rate="10/m", key="gis_like.key"),
        ]
    )
    BreakerPolicy.objects.bulk_create(
        [BreakerPolicy(name="logout", failure_result="django.contrib.auth.logout")]
    )
    # gis_like is listed (settings are code), but importing it fails: that row alone is out.
    with override_settings(RESILIENCE={"ADMIN_CHOICES": {"KEYS": ["gis_like.key"]}}):
        rules = _reload()
        assert [r.name for r in rules.limit_rules] == ["good"]
        assert rules.limit_rules[0].rate == str(parse_rate("10/m"))
        skipped = {(kind, name): why for kind, name, why in rules.skipped}
        assert "not allowed here" in skipped[("limit", "exit")]
        assert "not allowed here" in skipped[("limit", "sentinel")]
        assert "ImproperlyConfigured" in skipped[("limit", "gis")]
        assert "failure_result" in skipped[("breaker", "logout")]
        assert "logout" not in rules.breaker_policies

        good.rate = "1/m"
        good.save()
        assert [r.rate for r in _reload().limit_rules] == [str(parse_rate("1/m"))]
    assert calls == []
    assert SENTINEL not in sys.modules


def test_changelist_shows_a_skipped_row_as_not_in_force_with_the_reason(
    admin_client: Client,
) -> None:
    LimitRule.objects.create(name="good", rate="10/m")
    LimitRule.objects.bulk_create([LimitRule(name="exit", rate="10/m", key="sys.exit")])
    page = admin_client.get(LIMIT_LIST).content.decode()
    assert page.count("not in force") == 1
    assert "key &#x27;sys.exit&#x27; is not allowed here" in page
    assert page.count("✔ in force") == 1


# -- settings: any exception from an import is a check error ---------------------------


@pytest.mark.usefixtures("broken_modules")
@pytest.mark.parametrize("module", ["syntax_broken", "gis_like"])
@pytest.mark.parametrize(
    ("resilience", "check_id"),
    [
        ({"LIMITS": [{"name": "a", "rate": "1/s", "key": "{m}.key"}]}, "resilience.E022"),
        ({"BREAKERS": {"p": {"record": ["{m}.Error"]}}}, "resilience.E063"),
        ({"BREAKERS": {"p": {"failure_result": "{m}.bad"}}}, "resilience.E064"),
        ({"RESPONSE_HANDLERS": {"deadline": "{m}.handler"}}, "resilience.E009"),
        ({"ADMIN_CHOICES": {"KEYS": ["{m}.key"]}}, "resilience.E086"),
    ],
)
def test_a_settings_path_whose_module_fails_to_import_is_a_check_error_not_a_traceback(
    module: str, resilience: dict[str, Any], check_id: str
) -> None:
    import json

    config = json.loads(json.dumps(resilience).replace("{m}", module))
    with override_settings(RESILIENCE=config):
        messages = check_settings()
    errors = [m for m in messages if m.level >= checks.ERROR]
    assert [m.id for m in errors] == [check_id], errors
    assert module in errors[0].msg
    assert errors[0].hint


def test_settings_rules_still_accept_any_importable_dotted_path() -> None:
    config = {"LIMITS": [{"name": "a", "rate": "1/s", "key": f"{SENTINEL}.key"}]}
    with override_settings(RESILIENCE=config):
        assert [m for m in check_settings() if m.level >= checks.ERROR] == []


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (["myapp.keys.by_tenant"], "must be a dict"),
        ({"KEY": []}, "unknown key 'KEY'"),
        ({"KEYS": "tests.admin.sentinel_key.key"}, "must be a list"),
        ({"KEYS": ["sys"]}, "'sys' is not a dotted path"),
        ({"KEYS": [5]}, "5 is not a dotted path"),
    ],
)
def test_malformed_admin_choices_is_e085(value: Any, words: str) -> None:
    with override_settings(RESILIENCE={"ADMIN_CHOICES": value}):
        errors = [m for m in check_settings() if m.level >= checks.ERROR]
    assert [m.id for m in errors] == ["resilience.E085"], errors
    assert words in errors[0].msg
    assert errors[0].hint


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"KEYS": [f"{SENTINEL}.IMPORTS"]}, "is not a callable"),
        ({"EXCEPTIONS": [f"{SENTINEL}.key"]}, "is not an exception class"),
        ({"PREDICATES": [f"{SENTINEL}.nothing"]}, "cannot be imported"),
        ({"EXCEPTIONS": ["no_such_module_here.Error"]}, "cannot be imported"),
    ],
)
def test_admin_choices_entry_that_is_not_what_its_list_holds_is_e086(
    value: Any, words: str
) -> None:
    with override_settings(RESILIENCE={"ADMIN_CHOICES": value}):
        errors = [m for m in check_settings() if m.level >= checks.ERROR]
    assert [m.id for m in errors] == ["resilience.E086"], errors
    assert words in errors[0].msg


def test_a_stored_unlisted_exception_shows_marked_on_the_change_form_and_cannot_be_kept(
    admin_client: Client,
) -> None:
    BreakerPolicy.objects.bulk_create(
        [BreakerPolicy(name="pricing", record=f"{SENTINEL}.SentinelError")]
    )
    policy = BreakerPolicy.objects.get()
    url = f"/admin/resilience_django/breakerpolicy/{policy.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert f"{SENTINEL}.SentinelError (not allowed by settings)" in page
    data = {"name": "pricing", "enabled": "on", "mode": "normal", "failure_threshold": "5",
            "open_for": "30s", "half_open_calls": "10", "close_ratio": "0.9", "window": "60s",
            "error_rate": "0.5", "min_calls": "20", "ewma_alpha": "0.3",
            "half_open_max_wait": "60s", "shared_poll": "500",
            "record": [f"{SENTINEL}.SentinelError"]}  # fmt: skip
    response = _post(admin_client, url, data)
    assert response.status_code == 200
    assert "not allowed here" in " ".join(response.context["adminform"].form.errors["record"])
    assert SENTINEL not in sys.modules
