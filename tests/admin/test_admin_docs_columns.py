"""docs/admin.md's table of changelist columns, filters and search is what the admin shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.admin.utils import label_for_field

from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule

DOCS = Path(__file__).resolve().parents[2] / "docs" / "admin.md"
PAGES = {
    "Limit rules": LimitRule,
    "Breaker policies": BreakerPolicy,
    "Route deadlines": RouteDeadline,
    "Shedding rules": SheddingRule,
}


def documented(page: str) -> list[list[str]]:
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == page and len(cells) == 4:
            return [[w.strip() for w in cell.split(",")] for cell in cells[1:]]
    raise AssertionError(f"docs/admin.md has no column table row for {page}")


def words(name: str) -> str:
    return re.sub(r"_", " ", name)


@pytest.mark.parametrize("page", PAGES)
def test_docs_list_the_changelist_columns_filters_and_search_fields(page: str) -> None:
    model = PAGES[page]
    model_admin = admin.site.get_model_admin(model)
    columns, filters, search = documented(page)
    shown = [str(label_for_field(f, model, model_admin)).lower() for f in model_admin.list_display]
    assert columns == shown
    assert filters == [words(f) for f in model_admin.list_filter]
    assert search == [words(f) for f in model_admin.search_fields]
