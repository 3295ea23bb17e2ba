from __future__ import annotations

# The fixtures a user gets from the plugin, imported the way a conftest may
# import them; the plugin's autouse reset is left out on purpose, so the
# TestCase tests here show what the mixin does on its own.
from resilience_django.testing.pytest_plugin import (  # noqa: F401
    resilience_clock,
    resilience_disabled,
    resilience_reset,
)

# A project of its own, run in subprocesses by test_sample_project.py.
collect_ignore = ["sample_project"]
