"""The core knows no Django: importing it loads no Django module (docs/architecture.md).

``lint-imports`` (``make lint``) checks every import statement, lazy ones
included; this checks what actually happens at import time, in a fresh
interpreter.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import resilience_django

CORE_PACKAGES = ("limiting", "breakers", "shedding", "retrying")
CORE_MODULES = ("deadline", "deadline_policy", "routes", "units", "clock", "exceptions", "switch")


def _core_modules() -> list[str]:
    names = [f"resilience_django.{m}" for m in CORE_MODULES]
    for package in CORE_PACKAGES:
        names.append(f"resilience_django.{package}")
        path = [f"{resilience_django.__path__[0]}/{package}"]
        names += [f"resilience_django.{package}.{m.name}" for m in pkgutil.iter_modules(path)]
    return names


def test_importing_every_core_module_loads_no_django_module() -> None:
    modules = _core_modules()
    assert "resilience_django.limiting.engine" in modules
    assert "resilience_django.breakers.registry" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
