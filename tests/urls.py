from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from . import views

app_patterns = (
    [
        path("quote/", views.async_slow, name="quote"),
    ],
    "orders",
)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ready/", views.hello, name="ready"),
    path("hello/", views.hello, name="hello"),
    path("fail/sync/", views.failing, name="fail-sync"),
    path("fail/async/", views.async_failing, name="fail-async"),
    path("dependency/", views.dependency_open, name="dependency"),
    path("async-hello/", views.async_hello, name="async-hello"),
    path("budget/", views.budget, name="budget"),
    path("async-budget/", views.async_budget, name="async-budget"),
    path("slow/async/", views.async_slow, name="async-slow"),
    path("slow/sync/", views.sync_slow, name="sync-slow"),
    path("query/", views.sync_query, name="query"),
    path("pg-sleep/", views.pg_sleep, name="pg-sleep"),
    path("outbound/", views.outbound, name="outbound"),
    path("async-outbound/", views.async_outbound, name="async-outbound"),
    path("decorated/", views.decorated_async_slow, name="decorated"),
    path("marker/", views.ran_marker, name="marker"),
    path("limited-hello/", views.limited_hello, name="limited-hello"),
    path("stream/sync/", views.stream_sync, name="stream-sync"),
    path("stream/async/", views.stream_async, name="stream-async"),
    path("sleep/sync/", views.sync_sleep, name="sleep-sync"),
    path("orders/", include(app_patterns)),
    path("resilience/", include("resilience_django.urls")),
]
