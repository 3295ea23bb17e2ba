"""The demo's own TestCase suite (demo_project/orders/tests.py) passes under ``manage.py test``.

That suite is what a team writes with ``resilience_django.testing``; running
it here keeps it working as the helpers change.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.demo.server import ROOT, demo_env

pytestmark = pytest.mark.e2e


def test_demo_testcase_suite_passes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "test", "demo_project.orders", "--noinput"],
        cwd=ROOT, env=demo_env(tmp_path, 0), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Ran 5 tests" in output and "\nOK" in output
