"""Numbers past their documented range are form errors in the admin, never saved rows.

Each of these was saved before (issue 12), and then every matching request
was a 500: an ``OverflowError`` in the limiter, a ``MemoryError`` in the
bulkhead, an out-of-range ``statement_timeout`` on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from resilience_django.forms import BreakerPolicyForm, LimitRuleForm, SheddingRuleForm
from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule
from tests.admin.test_admin import ADD, _data, client  # noqa: F401 - the client fixture

pytestmark = pytest.mark.django_db

FORMS: dict[str, Any] = {
    "limit": LimitRuleForm,
    "breaker": BreakerPolicyForm,
    "shedding": SheddingRuleForm,
}


@pytest.mark.parametrize(
    ("kind", "data", "field", "words"),
    [
        ("limit", {"name": "api", "rate": "9223372036854775808/s"}, "rate",
         "the count must be at most 1_000_000_000"),
        ("limit", {"name": "api", "rate": "1/400d"}, "rate", "the period must be from 1ms"),
        ("limit", {"name": "api", "rate": "10/s", "burst": str(2**62)}, "burst",
         "must be an integer from 1 to 1_000_000_000"),
        ("shedding", {"name": "o", "max_concurrent": str(2**31 - 1)}, "max_concurrent",
         "must be an integer from 1 to 1_000_000"),
        ("shedding", {"name": "o", "max_concurrent": "5", "queue": str(2**31 - 1)}, "queue",
         "must be an integer from 0 to 1_000_000"),
        ("shedding", {"name": "o", "max_concurrent": "5", "max_wait": "2d"}, "max_wait",
         "the most is 1 day"),
        ("route", {"route": "/api/", "budget": "30d"}, "budget", "the most is 1 day"),
        ("route", {"route": "/api/", "budget": "25d"}, "budget", "the most is 1 day"),
        ("breaker", {"name": "pricing", "failure_threshold": str(2**31 - 1)},
         "failure_threshold", "from 1 to 1_000_000"),
        ("breaker", {"name": "pricing", "open_for": "400d"}, "open_for", "the most is 365 days"),
    ],
)  # fmt: skip
def test_a_number_past_its_range_is_a_form_error_and_nothing_is_saved(
    client: Client,  # noqa: F811 - the fixture imported above
    kind: str,
    data: dict[str, Any],
    field: str,
    words: str,
) -> None:
    form_class = FORMS.get(kind)
    post = _data(form_class, **data) if form_class else {"enabled": "on", **data}
    response = client.post(ADD[kind], post)
    assert response.status_code == 200  # the form again, not a redirect
    form = response.context["adminform"].form
    assert words in " ".join(form.errors[field]), form.errors
    assert not LimitRule.objects.exists()
    assert not BreakerPolicy.objects.exists()
    assert not RouteDeadline.objects.exists()
    assert not SheddingRule.objects.exists()


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (
            "limit",
            {"name": "api", "rate": "1000000000/s", "algorithm": "gcra", "burst": "1000000000"},
        ),
        ("shedding", {"name": "o", "max_concurrent": "1000000", "queue": "1000000"}),
        ("route", {"route": "/api/", "budget": "1d"}),
    ],
)
def test_the_top_of_each_range_is_saved(
    client: Client,  # noqa: F811 - the fixture imported above
    kind: str,
    data: dict[str, Any],
) -> None:
    form_class = FORMS.get(kind)
    post = _data(form_class, **data) if form_class else {"enabled": "on", **data}
    response = client.post(ADD[kind], post)
    assert response.status_code == 302, response.context["adminform"].form.errors
