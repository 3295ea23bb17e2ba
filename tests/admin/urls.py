"""The test project's URLs plus the admin tests' own views and the static files."""

from __future__ import annotations

from django.contrib.staticfiles.views import serve
from django.urls import path, re_path

from tests.urls import urlpatterns as base

from . import views

urlpatterns = [
    *base,
    path("admin-test/fail/<str:name>/", views.failing_call, name="admin-test-fail"),
    path("admin-test/flaky/<str:name>/", views.flaky_call, name="admin-test-flaky"),
    path("admin-test/limited/", views.limited, name="admin-test-limited"),
    path("admin-test/live-rules/", views.live_rules, name="admin-test-live-rules"),
    # uvicorn serves no static files: the browser test needs the admin's CSS and our JS.
    re_path(r"^static/(?P<path>.*)$", serve, {"insecure": True}),
]
