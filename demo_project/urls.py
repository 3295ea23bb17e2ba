from __future__ import annotations

from django.contrib import admin
from django.urls import path

from demo_project.orders import views

urlpatterns = [
    path("", views.index, name="index"),
    path("admin/", admin.site.urls),
    path("api/orders", views.create_order, name="orders-create"),
    path("downstream/<str:service>", views.downstream, name="downstream"),
]
