"""Limits decided on demand for one view or one call, on the middleware's stores.

The Django side of rate limiting that is not the middleware: ``@limit``
(``decorator.py``), django-ratelimit's ``is_ratelimited``/``get_usage``
vocabulary (``compat.py``) and the rule they and the DRF throttles share
(``standalone.py``).  The public names are re-exported from
``resilience_django``: ``resilience_django.limit``,
``resilience_django.is_ratelimited`` and so on.
"""
