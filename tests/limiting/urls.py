from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("sync-ip/", views.sync_ip),
    path("async-ip/", views.async_ip),
    path("per-key/", views.per_key),
    path("shadowed/", views.shadowed),
    path("default-name/", views.default_name),
]
