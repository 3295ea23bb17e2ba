"""Limits decided on demand for one view or one call, on the middleware's stores:
``@limit`` (``decorator.py``), django-ratelimit's vocabulary (``compat.py``) and the
rule they and the DRF throttles share (``standalone.py``); re-exported from
``resilience_django``."""
