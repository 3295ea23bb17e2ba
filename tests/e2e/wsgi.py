"""The test project as a WSGI application, for gunicorn's sync workers (see ``test_wsgi.py``)."""

from __future__ import annotations

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
