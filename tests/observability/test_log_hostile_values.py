"""The JSON formatter writes one valid JSON object per record, whatever the fields hold."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pytest

from resilience_django.observability.log import JsonFormatter


def strict_loads(line: str) -> dict[str, Any]:
    """json.loads that refuses NaN and Infinity, as every other JSON parser does."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    loaded: dict[str, Any] = json.loads(line, parse_constant=refuse)
    return loaded


def cycle() -> list[object]:
    looped: list[object] = []
    looped.append(looped)
    return looped


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, [1.0, math.nan], {(1, 2): "tuple key"}, cycle()],
    ids=["nan", "inf", "-inf", "nan-in-list", "tuple-key", "cycle"],
)
def test_a_field_json_cannot_hold_is_written_as_its_repr_and_the_line_stays_json(
    value: object,
) -> None:
    # Say a DEBUG query log whose parameters hold a float("nan") a client sent.
    record = logging.makeLogRecord(
        {"name": "django.db.backends", "levelname": "DEBUG", "msg": "query %s", "args": ("x",),
         "params": value, "duration": 0.25, "rows": 3, "alias": "default"}
    )  # fmt: skip
    payload = strict_loads(JsonFormatter().format(record))
    assert payload["message"] == "query x"
    assert payload["params"] == repr(value)
    assert (payload["duration"], payload["rows"], payload["alias"]) == (0.25, 3, "default")


def test_ordinary_fields_keep_their_json_types() -> None:
    record = logging.makeLogRecord({"msg": "m", "share": 0.5, "active": True, "when": None})
    payload = strict_loads(JsonFormatter().format(record))
    assert (payload["share"], payload["active"], payload["when"]) == (0.5, True, None)
