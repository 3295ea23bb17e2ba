"""Random form data at every admin add form: the form again with errors, or saved; never a 500.

Hypothesis fills every field of each form with junk a careless operator or an
attacker could type or post: empty values, huge and negative numbers, NaN and
infinities, unicode, control characters, dotted paths to real callables, lists
where one value is expected.  Whatever it sends, the answer is 200 (the form
re-shown with its errors) or 302 (saved), and nothing is imported that no
setting lists.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from resilience_django.forms import BreakerPolicyForm, LimitRuleForm, SheddingRuleForm
from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule

pytestmark = pytest.mark.django_db

SENTINEL = "tests.admin.sentinel_key"
# Importing it raises ImproperlyConfigured (no GDAL library), not ImportError.
GDAL = "django.contrib.gis.gdal.GDALRaster"
MODELS: dict[str, Any] = {
    "limitrule": LimitRule,
    "breakerpolicy": BreakerPolicy,
    "routedeadline": RouteDeadline,
    "sheddingrule": SheddingRule,
}
FORMS: dict[str, list[str]] = {
    "limitrule": list(LimitRuleForm._meta.fields or ()),
    "breakerpolicy": list(BreakerPolicyForm._meta.fields or ()),
    "routedeadline": ["route", "budget", "enabled", "notes"],
    "sheddingrule": list(SheddingRuleForm._meta.fields or ()),
}

# Text a client can encode (no lone surrogates); anything else goes.
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
_number = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e400", "-1e400", "nan", "inf", "9223372036854775808", "2147483648"]),
)
_shaped = st.sampled_from(
    [
        "", " ", "0", "-1", "10/m", "9223372036854775808/s", "30d", "1ms", "^/(a+)+$", "/api/",
        "ip", "user", "header:", "header:X-Api-Key", "param:", "sys.exit", f"{SENTINEL}.key",
        "django.contrib.auth.logout", "builtins.Exception", "builtins.SystemExit", "on", "off",
        "enforce", "shadow", "token_bucket", "gcra", "distributed", "metrics_only", "\x00",
        "GET", "get", "a" * 5000, GDAL,
    ]
)  # fmt: skip
_value = st.one_of(_text, _number, _shaped)
_field_value = st.one_of(_value, st.lists(_value, max_size=4))


# A valid form to start from, so that random values reach the parsers behind
# each field instead of stopping at a missing name.
BASE: dict[str, dict[str, Any]] = {
    "limitrule": {"name": "fuzz", "rate": "10/m", "key": "ip", "mode": "enforce",
                  "algorithm": "sliding_window", "scope": "local", "enabled": "on"},
    "breakerpolicy": {"name": "fuzz", "mode": "normal", "failure_threshold": "5",
                      "open_for": "30s", "half_open_calls": "10", "close_ratio": "0.9",
                      "window": "60s", "error_rate": "0.5", "min_calls": "20",
                      "ewma_alpha": "0.3", "half_open_max_wait": "60s", "shared_poll": "500"},
    "routedeadline": {"route": "/fuzz/", "budget": "1s", "enabled": "on"},
    "sheddingrule": {"name": "fuzz", "position": "0", "max_concurrent": "5", "queue": "0",
                     "max_wait": "100ms", "critical_share": "0"},
}  # fmt: skip
# Each form's dotted-path fields set to a module whose import raises something
# other than ImportError: a 500 before the allowlist.
IMPORT_BOMB: dict[str, dict[str, Any]] = {
    "limitrule": {"key": GDAL},
    "breakerpolicy": {"record": GDAL, "failure_result": GDAL},
    "routedeadline": {"route": GDAL},
    "sheddingrule": {"view": GDAL},
}


def _form_data(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=dict.fromkeys(fields, _field_value))


@pytest.fixture
def root_client(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.mark.parametrize("model", sorted(FORMS))
def test_random_form_data_is_a_form_error_or_a_save_never_a_500(
    root_client: Client, model: str
) -> None:
    url = f"/admin/resilience_django/{model}/add/"
    sys.modules.pop(SENTINEL, None)

    @settings(
        max_examples=50,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @example(data=IMPORT_BOMB[model])
    @given(data=_form_data(FORMS[model]))
    def post(data: dict[str, Any]) -> None:
        data = {**BASE[model], **data}
        response = root_client.post(url, data)
        assert response.status_code in (200, 302), (data, response.status_code)
        if response.status_code == 200:
            # The form again, with at least one error saying why.
            assert response.context["adminform"].form.errors, data
        else:
            MODELS[model].objects.all().delete()  # the next example may reuse the name

    post()
    assert SENTINEL not in sys.modules
