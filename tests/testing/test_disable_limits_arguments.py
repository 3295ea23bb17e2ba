"""``disable_limits`` takes no arguments: a bare ``@disable_limits`` (no parentheses) fails at
import, as before it was built on Django's TestContextDecorator, rather than turning the test
into an object pytest does not collect (the test silently never ran)."""

from __future__ import annotations

import pytest

from resilience_django.testing import disable_limits


def test_a_bare_decorator_fails_loudly():
    def test_something() -> None:
        raise AssertionError("never ran")

    with pytest.raises(TypeError):
        disable_limits(test_something)  # type: ignore[call-arg]


def test_no_attr_name_or_kwarg_name():
    with pytest.raises(TypeError):
        disable_limits(kwarg_name="x")  # type: ignore[call-arg]


def test_with_parentheses_still_decorates():
    @disable_limits()
    def inner() -> str:
        return "ran"

    assert inner() == "ran"
