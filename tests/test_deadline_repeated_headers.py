"""A caller's budget sent twice (two ``X-Timeout-Ms`` lines, or one line listing two
values): the tighter one is in force, through the ASGI wrapper and the Django middleware
alike; a malformed value beside it is counted and ignored, and nothing loosens the route
budget (docs/deadlines.md, "Choosing the budget")."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.test import Client, override_settings
from prometheus_client import REGISTRY

from resilience_django.asgi import ResilienceASGIMiddleware
from tests.settings import MIDDLEWARE
from tests.utils.asgi import call_asgi, http_scope

ROUTE_BUDGET = {"DEADLINE": {"DEFAULT": "30s", "ROUTES": {"/budget/": "20s"}}}


def _bad(header: str) -> float:
    labels = {"header": header}
    return REGISTRY.get_sample_value("resilience_bad_headers_total", labels) or 0.0


async def _remaining_asgi(headers: list[tuple[bytes, bytes]], middleware: list[str]) -> Any:
    scope = http_scope("/budget/") | {"headers": headers}
    with override_settings(MIDDLEWARE=middleware, RESILIENCE=ROUTE_BUDGET):
        sent = await call_asgi(ResilienceASGIMiddleware(ASGIHandler()), scope)
    assert sent[0]["status"] == 200, sent
    return json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["remaining"]


@pytest.mark.parametrize("middleware", [[], MIDDLEWARE], ids=["wrapper-alone", "middleware"])
@pytest.mark.parametrize(
    "values",
    [[b"5000", b"900"], [b"900", b"5000"], [b"5000, 900"], [b"soon", b"900"], [b"900,,x"]],
)
async def test_the_tighter_of_two_timeouts_wins_behind_the_wrapper(
    values: list[bytes], middleware: list[str]
) -> None:
    headers = [(b"x-timeout-ms", v) for v in values]
    assert 0 < await _remaining_asgi(headers, middleware) <= 0.9


async def test_the_tighter_of_two_header_names_wins_behind_the_wrapper() -> None:
    headers = [(b"grpc-timeout", b"1S"), (b"x-timeout-ms", b"700"), (b"grpc-timeout", b"600m")]
    assert 0 < await _remaining_asgi(headers, []) <= 0.6


@pytest.mark.parametrize("value", ["5000,900", "900, 5000", " 900 ,\t5000", "abc, 900"])
@override_settings(RESILIENCE=ROUTE_BUDGET)
def test_the_tighter_of_a_joined_list_wins_through_the_middleware(value: str) -> None:
    # A WSGI server (and Django's ASGI handler) joins repeated lines with a comma.
    remaining = Client().get("/budget/", HTTP_X_TIMEOUT_MS=value).json()["remaining"]
    assert 0 < remaining <= 0.9


@pytest.mark.parametrize(
    "value", ["abc", ",", "", "-5,abc", "99999999999,abc", "9" * 5000, "," * 8000 + "100"]
)
@override_settings(RESILIENCE=ROUTE_BUDGET)
def test_only_bad_values_leave_the_route_budget_and_are_counted(value: str) -> None:
    before = _bad("x-timeout-ms")
    remaining = Client().get("/budget/", HTTP_X_TIMEOUT_MS=value).json()["remaining"]
    assert 19 < remaining <= 20
    assert _bad("x-timeout-ms") == before + 1  # once per request, however many bad values


@override_settings(RESILIENCE=ROUTE_BUDGET)
def test_a_value_among_the_first_eight_counts_however_long_the_rest() -> None:
    # Past the eighth comma the rest is one value (malformed here): a header of commas
    # costs no more than a short one, and a budget the caller wrote first still counts.
    value = "soon," * 3 + "900," + "soon," * 4 + "," * 8000
    remaining = Client().get("/budget/", HTTP_X_TIMEOUT_MS=value).json()["remaining"]
    assert 0 < remaining <= 0.9


@override_settings(RESILIENCE=ROUTE_BUDGET)
def test_a_looser_list_never_loosens_the_route_budget() -> None:
    remaining = Client().get("/budget/", HTTP_X_TIMEOUT_MS="60000, 90000").json()["remaining"]
    assert 19 < remaining <= 20


async def test_a_header_setting_spelled_with_underscores_reads_the_header_behind_the_wrapper() -> (
    None
):
    scope = http_scope("/budget/") | {"headers": [(b"x-timeout-ms", b"900")]}
    config = {"DEADLINE": {"ROUTES": {"/budget/": "20s"}, "HEADERS": ["X_Timeout_Ms"]}}
    with override_settings(MIDDLEWARE=[], RESILIENCE=config):
        sent = await call_asgi(ResilienceASGIMiddleware(ASGIHandler()), scope)
    assert 0 < json.loads(sent[1]["body"])["remaining"] <= 0.9
