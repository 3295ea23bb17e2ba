"""``ResilienceTestMixin``: each test of a ``TestCase`` starts from a fresh process state."""

from __future__ import annotations

from typing import Any

from .reset import reset

__all__ = ["ResilienceTestMixin"]


class ResilienceTestMixin:
    """Reset every limiter, breaker, bulkhead and budget before each test.

    >>> from django.test import TestCase
    >>> from resilience_django.testing import ResilienceTestMixin
    >>> class OrderTests(ResilienceTestMixin, TestCase):
    ...     def test_fifth_order_is_limited(self): ...

    Put it before ``TestCase`` so its ``setUp`` runs first; a class-level
    ``override_settings`` is applied once per class, so without it a test
    inherits the quota the previous test of the class spent.
    """

    def setUp(self) -> None:
        reset()
        super_setup: Any = getattr(super(), "setUp", None)
        if super_setup is not None:
            super_setup()
