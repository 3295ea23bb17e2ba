"""A project of its own (``sample_project/``) runs its TestCase and pytest suites on the helpers.

Its test settings keep ``REDIS: {"CACHE": "default"}`` with a LocMem cache and
``BACKEND: "local"``, as a team's test settings do; the system checks that
``manage.py test`` runs must let it through.  Each suite runs in its own
process, as the project's CI would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).parent / "sample_project"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(SAMPLE)
    return subprocess.run(
        [sys.executable, *args], cwd=SAMPLE, env=env, capture_output=True, text=True, timeout=300
    )


def test_sample_testcase_suite_passes_with_the_mixin() -> None:
    done = run("-m", "django", "test", "--settings=sample_settings", "-v", "2")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Ran 6 tests" in output and "OK" in output


def test_sample_pytest_suite_passes_with_the_plugin() -> None:
    done = run("-m", "pytest", "-q", "-p", "no:cacheprovider")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "6 passed" in output
