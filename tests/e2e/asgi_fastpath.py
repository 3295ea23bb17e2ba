import django
from django.core.asgi import get_asgi_application

from resilience_django.asgi import ResilienceASGIMiddleware

django.setup()
application = ResilienceASGIMiddleware(get_asgi_application())
