"""Views under ``@limit`` for the decorator tests (served by ``tests/limiting/urls.py``)."""

from __future__ import annotations

from django.http import HttpResponse

from resilience_django.view_limits.decorator import limit


@limit("2/m", name="sync-ip")
def sync_ip(request):
    return HttpResponse("ok")


@limit("2/m", name="async-ip")
async def async_ip(request):
    return HttpResponse("ok")


@limit("1/m", key="header:X-Api-Key", name="per-key", methods=["POST"])
def per_key(request):
    return HttpResponse("ok")


@limit("1/m", name="shadowed", mode="shadow")
async def shadowed(request):
    return HttpResponse("ok")


@limit("1/m", key="user_or_ip", algorithm="token_bucket", burst=1)
async def default_name(request):
    return HttpResponse("ok")
