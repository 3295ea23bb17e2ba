"""PROMETHEUS_MULTIPROC_DIR missing or unusable: requests and breakers work, metrics go quiet
(logged once), the metrics view answers 503 and the system check warns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks

from resilience_django.checks import check_multiproc_dir

from .scrape import value

ROOT = Path(__file__).resolve().parents[2]


def run_worker(directory: Path) -> tuple[dict[str, object], str]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.observability.multiproc_dir_worker"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_a_real_directory_collects_and_serves_the_metrics(tmp_path):
    out, _ = run_worker(tmp_path)
    assert out["statuses"] == [200, 200, 429, 429, 429, 429]
    assert out["breaker"] == ["ok", "ok", "ok"]
    assert out["scrape"] == 200
    body = str(out["body"])
    assert value("resilience_requests_rejected_total", body, rule="mp-hello",
                 reason="rate_limited") == 4  # fmt: skip
    assert value("resilience_breaker_calls_total", body, breaker="mp-dependency",
                 outcome="success") == 3  # fmt: skip


@pytest.mark.parametrize("where", ["missing", "under-a-file"])
def test_an_unusable_directory_loses_the_metrics_not_the_requests(tmp_path, where):
    if where == "missing":
        directory = tmp_path / "no-such-dir"
    else:
        (tmp_path / "a-file").write_text("")
        directory = tmp_path / "a-file" / "metrics"
    out, stderr = run_worker(directory)
    # Before the fix: 500s, and breaker calls raised FileNotFoundError.
    assert out["statuses"] == [200, 200, 429, 429, 429, 429]
    assert out["breaker"] == ["ok", "ok", "ok"]
    # A clear 503, without the path or a traceback.
    assert out["scrape"] == 503
    assert out["body"] == "metrics storage is unavailable; the server log says why\n"
    # Logged once, not per call nor per breaker flush.
    assert stderr.count("metrics are not reported") == 1, stderr
    assert "counter flush failed" not in stderr and "Traceback" not in stderr, stderr
    assert f"metrics scrape failed: PROMETHEUS_MULTIPROC_DIR '{directory}'" in stderr


def warnings_for(monkeypatch, directory: object) -> list[checks.CheckMessage]:
    if directory is None:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    else:
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    return [m for m in checks.run_checks() if m.id == "resilience.W091"]


def test_the_check_is_quiet_for_a_writable_directory_or_none(tmp_path, monkeypatch):
    assert warnings_for(monkeypatch, tmp_path) == []
    assert warnings_for(monkeypatch, None) == []
    assert check_multiproc_dir() == []


def test_the_check_warns_of_a_missing_directory(tmp_path, monkeypatch):
    (found,) = warnings_for(monkeypatch, tmp_path / "gone")
    assert isinstance(found, checks.Warning)
    assert f"'{tmp_path / 'gone'}' does not exist" in found.msg
    assert "writable by the user the workers run as" in found.hint


def test_the_check_warns_of_a_file_in_the_way(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    (found,) = warnings_for(monkeypatch, tmp_path / "file")
    assert "is not a directory" in found.msg


def test_the_check_warns_of_a_directory_it_cannot_write(tmp_path, monkeypatch):
    # Tests may run as root, who can write anywhere: os.access stands in for the mode.
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode)
    )
    (found,) = warnings_for(monkeypatch, tmp_path)
    assert "is not writable" in found.msg
