from __future__ import annotations

from django.conf import settings
from django.urls import path

from .views import hello, ratelimited_hello

view = ratelimited_hello() if settings.RATELIMITED else hello
urlpatterns = [path("hello/", view, name="hello")]  # type: ignore[arg-type]
if settings.VARIANT == "inproc":
    urlpatterns.append(path("rl/hello/", ratelimited_hello(), name="rl-hello"))  # type: ignore[arg-type]
