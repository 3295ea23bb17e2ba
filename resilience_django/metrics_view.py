"""The metrics view: Prometheus exposition behind a switch and an access check.

Off unless ``RESILIENCE["METRICS"]["ENABLED"]`` is True (404 otherwise, so the
endpoint's existence is not advertised).  When on, a request is let in if any
of these holds, else it gets 403:

* its ``REMOTE_ADDR`` is in ``ALLOWED_NETWORKS`` (``X-Forwarded-For`` is never
  consulted: scrapers talk to the workers directly, and a header any client can
  set must not open the endpoint);
* it carries ``Authorization: Bearer <BEARER_TOKEN>`` (compared in constant time);
* ``ALLOW_STAFF`` is True (the default) and ``request.user`` is active staff.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .conf import get_settings
from .observability.config import MetricsSettings
from .observability.exposition import PrometheusMissing, render

__all__ = ["metrics_settings", "metrics_view"]


def metrics_settings() -> MetricsSettings:
    """The parsed ``RESILIENCE["METRICS"]`` (part of the package settings and their cache)."""
    return get_settings().metrics


def _allowed(request: HttpRequest, settings: MetricsSettings) -> bool:
    if settings.allowed_networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            address = None
        if address is not None and any(address in net for net in settings.allowed_networks):
            return True
    if settings.bearer_token is not None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), settings.bearer_token.encode()
        ):
            return True
    if settings.allow_staff:
        user: Any = getattr(request, "user", None)
        if user is not None and user.is_active and user.is_staff:
            return True
    return False


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Serve the Prometheus exposition of this process, or of all workers in multiprocess mode."""
    settings = metrics_settings()
    if not settings.enabled:
        raise Http404("metrics are not enabled")
    if not _allowed(request, settings):
        return HttpResponseForbidden("not allowed to read metrics\n", content_type="text/plain")
    try:
        body, content_type = render(request.META.get("HTTP_ACCEPT", ""))
    except PrometheusMissing:
        return HttpResponse(
            "prometheus-client is not installed\n", status=501, content_type="text/plain"
        )
    return HttpResponse(body, content_type=content_type)
