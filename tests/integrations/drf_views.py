"""Real DRF views under our throttles (``test_drf.py`` in process, ``test_drf_e2e.py`` served).

Each view names its authentication and throttle classes, so the tests do not
depend on ``REST_FRAMEWORK["DEFAULT_*"]`` except where they test just that.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.authentication import BasicAuthentication, TokenAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from resilience_django.integrations.drf import (
    AnonResilienceThrottle,
    ResilienceRulesThrottle,
    ResilienceThrottle,
    ScopedResilienceThrottle,
)


class _Base(APIView):
    authentication_classes = [TokenAuthentication, BasicAuthentication]
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]

    def get(self, request: Request) -> Response:
        user = request.user
        decision = getattr(request, "resilience_decision", None)
        return Response(
            {
                "user": user.get_username() if user.is_authenticated else None,
                "decided": decision is not None,
            }
        )


class PerUser(_Base):
    throttle_classes = [ResilienceThrottle]


class AnonOnly(_Base):
    throttle_classes = [AnonResilienceThrottle]


class Scoped(_Base):
    throttle_classes = [ScopedResilienceThrottle]
    throttle_scope = "uploads"


class Unscoped(_Base):
    throttle_classes = [ScopedResilienceThrottle]


class Rules(_Base):
    throttle_classes = [ResilienceRulesThrottle]


class Defaults(_Base):
    """Takes REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"].

    Read per request: APIView copies the setting into ``throttle_classes`` at
    import, before a test's ``override_settings``.
    """

    def get_throttles(self) -> list[object]:
        return [throttle() for throttle in api_settings.DEFAULT_THROTTLE_CLASSES]


class GcraPerKey(ResilienceThrottle):
    scope = "keys"
    key = "header:X-Api-Key"
    algorithm = "gcra"
    burst = 1


class PerApiKey(_Base):
    throttle_classes = [GcraPerKey]


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("ready/", plain),
    path("plain/", plain),
    path("drf/user/", PerUser.as_view()),
    path("drf/anon/", AnonOnly.as_view()),
    path("drf/scoped/", Scoped.as_view()),
    path("drf/unscoped/", Unscoped.as_view()),
    path("drf/rules/", Rules.as_view()),
    path("drf/defaults/", Defaults.as_view()),
    path("drf/api-key/", PerApiKey.as_view()),
]
