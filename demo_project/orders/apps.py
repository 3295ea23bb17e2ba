from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "demo_project.orders"
    label = "demo_orders"
    verbose_name = "Demo order service"
