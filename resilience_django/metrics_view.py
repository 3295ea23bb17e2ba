"""The metrics view: Prometheus exposition behind a switch (404 unless ``METRICS["ENABLED"]``)
and an access check (who gets in: docs/metrics.md)."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseNotAllowed,
)
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from .conf import get_settings
from .limiting.proxies import parse_address
from .observability.config import MetricsSettings
from .observability.exposition import MultiprocDirUnreadable, PrometheusMissing, render

__all__ = ["metrics_view"]

logger = logging.getLogger("resilience_django.metrics")


def _allowed(request: HttpRequest, settings: MetricsSettings) -> bool:
    if settings.allowed_networks:
        address = parse_address(request.META.get("REMOTE_ADDR", ""))
        if address is not None and any(address in net for net in settings.allowed_networks):
            return True
    if settings.bearer_token is not None:
        scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), settings.bearer_token.encode()
        ):
            return True
    user: Any = getattr(request, "user", None)
    return settings.allow_staff and user is not None and bool(user.is_active and user.is_staff)


# The switch comes first, before the method and CSRF checks: while off, every method gets the
# 404 of a URL that does not exist.  Nothing here changes state: CSRF has nothing to protect.
@csrf_exempt
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Serve the Prometheus exposition of this process, or of all workers in multiprocess mode."""
    settings = get_settings().metrics
    if not settings.enabled:
        raise Http404("metrics are not enabled")
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    if not _allowed(request, settings):
        return HttpResponseForbidden("not allowed to read metrics\n", content_type="text/plain")
    try:
        body, content_type = render(request.META.get("HTTP_ACCEPT", ""))
    except PrometheusMissing:
        missing = "prometheus-client is not installed\n"
        return HttpResponse(missing, status=501, content_type="text/plain")
    except MultiprocDirUnreadable as exc:  # the path stays in the server's log
        logger.error("metrics scrape failed: PROMETHEUS_MULTIPROC_DIR %s", exc)
        unavailable = "metrics storage is unavailable; the server log says why\n"
        return HttpResponse(unavailable, status=503, content_type="text/plain")
    return HttpResponse(body, content_type=content_type)
