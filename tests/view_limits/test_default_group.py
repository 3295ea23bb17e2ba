"""A view's default group is its dotted path, at most 100 characters; long paths stay distinct."""

from __future__ import annotations

from typing import Any

from resilience_django.view_limits.compat import default_group


def _view(module: str, qualname: str) -> Any:
    def view(request: object) -> None:
        return None

    view.__module__, view.__qualname__ = module, qualname
    return view


def test_short_dotted_path_is_the_group_as_is() -> None:
    assert default_group(_view("shop.views", "checkout")) == "shop.views.checkout"


def test_two_long_paths_with_the_same_end_keep_distinct_groups() -> None:
    tail = "views." + "a" * 120 + ".checkout"
    first, second = default_group(_view("shop", tail)), default_group(_view("blog", tail))
    assert first != second
    assert len(first) == len(second) == 100
    assert first.startswith("a") and "checkout" in first  # the path's end stays readable
    assert first == default_group(_view("shop", tail))  # the same in every process
