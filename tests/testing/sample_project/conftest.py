pytest_plugins = ["resilience_django.testing.pytest_plugin"]
