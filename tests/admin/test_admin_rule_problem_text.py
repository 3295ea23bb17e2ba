"""What a rule the loader cannot parse shows to staff: the failure's kind; the text, which may
name files or values, goes to the server log with its traceback."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from resilience_django.live import row_problem


class _RowWithABug:
    """An admin row whose parsing fails with something other than ConfigError (a bug)."""

    def refusals(self, choices: Any) -> dict[str, str]:
        return {}

    def parse(self, index: int = 0) -> object:
        raise FileNotFoundError(2, "No such file or directory", "/srv/app/secrets/keys.json")


def test_an_unexpected_parse_failure_shows_its_type_and_logs_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="resilience_django.live"):
        problem = row_problem(_RowWithABug())
    assert problem is not None and "FileNotFoundError" in problem
    assert "/srv/app" not in problem
    [record] = [r for r in caplog.records if r.name == "resilience_django.live"]
    assert record.exc_info is not None and "/srv/app/secrets/keys.json" in caplog.text
