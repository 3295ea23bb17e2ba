"""Key callables the tests name by dotted path."""

from __future__ import annotations


def tenant(request):
    return request.META.get("HTTP_X_TENANT")


async def async_tenant(request):
    return request.META.get("HTTP_X_TENANT")


def numeric(request):
    return 42


not_callable = "tenant"
