"""On-demand limits for one view or call: ``@limit``, django-ratelimit's API, their shared rule."""
