from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from demo_project.orders import views

urlpatterns = [
    path("", views.index, name="index"),
    path("admin/", admin.site.urls),
    path("api/orders", views.create_order, name="orders-create"),
    path("chaos/", views.chaos_page, name="chaos"),
    # Prometheus metrics at /resilience/metrics/ (RESILIENCE["METRICS"]: 127.0.0.1 and staff).
    path("resilience/", include("resilience_django.urls")),
]
