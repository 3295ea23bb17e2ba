"""Views of the helpers' tests: one limited by ``@limit``, for ``disable_limits``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

import resilience_django


@resilience_django.limit("1/m", key="ip", name="decorated-once")
def decorated(request: HttpRequest) -> HttpResponse:
    return HttpResponse("decorated")


urlpatterns = [
    path("decorated/", decorated),
    path("", include("tests.urls")),
]
