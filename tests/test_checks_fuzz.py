"""Random settings thrown at the parser and the system checks: never a traceback.

Whatever ``RESILIENCE`` holds (every type, nested, huge and negative numbers,
nan and infinities, junk rates and durations), ``parse_settings`` and the
checks return, and every refusal is a check message with a ``resilience.``
id and a hint.
"""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilience_django import conf
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.checks import check_deploy, check_settings
from resilience_django.conf import FLEET_KEYS, KNOWN_KEYS, UNEXPECTED, parse_settings
from resilience_django.limiting.fallback import FallbackSettings
from resilience_django.limiting.rules import RULE_FIELDS
from resilience_django.observability.config import KNOWN_KEYS as METRICS_KEYS
from resilience_django.shedding.rules import KNOWN_KEYS as SHEDDING_KEYS

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HUGE_INTS = [
    2**31 - 1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    2**64,
    10**30,
    -(10**30),
    10**400,  # past float's range: float() raises OverflowError
]
# Past repr's 4300 digits (repr() raises ValueError): kept out of the random
# values because hypothesis could not print a failing example holding it.
UNPRINTABLE = 10**5000
JUNK_STRINGS = [
    "",
    " ",
    "x",
    "0",
    "-1",
    "nan",
    "inf",
    "1e999",
    "10/x",
    "0/s",
    "9223372036854775808/s",
    "1" * 5000 + "/s",
    "1/0s",
    "1/1000d",
    "100/m",
    "30d",
    "25d",
    "1d",
    "99999999999999999999s",
    "0.0000001ms",
    "-5s",
    "1.5s",
    "800ms",
    "ip",
    "user",
    "header:",
    "header:X-Key",
    "no.such.module.thing",
    "json.dumps",
    "builtins.Exception",
    "redis://",
    "redis://:notaport",
    "redis://127.0.0.1:99999999/0",
    "redis://127.0.0.1:6379/0",
    "unix://",
    "http://cache",
    "default",
    "nope",
    "/api/",
    "^/api/(",
    "^/(a+)+$",
    "orders:quote",
    "GET",
    "10.0.0.0/8",
    "::/0",
    "sliding_window",
    "token_bucket",
    "distributed",
    "enforce",
    "\x00",
    "é" * 300,
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(JUNK_STRINGS),
    st.text(max_size=30),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(JUNK_STRINGS)), inner),
    ),
    max_leaves=12,
)


def _mapping_of(keys: frozenset[str] | set[str]) -> st.SearchStrategy[dict[Any, Any]]:
    """Dicts whose keys are mostly the ones a parser reads, with random values."""
    return st.dictionaries(
        st.one_of(st.sampled_from(sorted(keys)), st.text(max_size=8)), values, max_size=6
    )


FALLBACK_KEYS = frozenset(name.upper() for name in FallbackSettings.__dataclass_fields__)
BREAKER_KEYS = (set(BreakerPolicy.__dataclass_fields__) - {"route"}) | {"path", "view", "methods"}
NESTED: dict[str, st.SearchStrategy[Any]] = {
    "LIMITS": st.lists(st.one_of(_mapping_of(RULE_FIELDS), values), max_size=3),
    "SHEDDING": st.lists(st.one_of(_mapping_of(SHEDDING_KEYS), values), max_size=3),
    "BREAKERS": st.dictionaries(
        st.one_of(st.text(max_size=8), st.sampled_from(HUGE_INTS), st.none()),
        st.one_of(_mapping_of(BREAKER_KEYS), values),
        max_size=3,
    ),
    "FLEET": _mapping_of(FLEET_KEYS),
    "FALLBACK": _mapping_of(FALLBACK_KEYS),
    "METRICS": _mapping_of(METRICS_KEYS),
    "REDIS": _mapping_of(
        {
            "CACHE",
            "URL",
            "CLUSTER",
            "PASSWORD",
            "MAX_CONNECTIONS",
            "SOCKET_TIMEOUT",
            "CONNECT_TIMEOUT",
            "KEY_PREFIX",
            "SENTINELS",
        }
    ),
    "DEADLINE": _mapping_of({"DEFAULT", "HEADERS", "ROUTES", "OUTBOUND_MARGIN"}),
}

# Every key: random values of any type, or (for the nested ones) dicts and
# lists of the right shape holding random values.
resilience_settings = st.fixed_dictionaries(
    {},
    optional={
        key: st.one_of(values, NESTED[key]) if key in NESTED else values
        for key in sorted(KNOWN_KEYS)
    },
)


def _assert_all_resilience_messages(messages: list[checks.CheckMessage]) -> None:
    for message in messages:
        assert isinstance(message, checks.CheckMessage)
        assert message.id and message.id.startswith("resilience."), message
        assert message.msg
        # The safety net caught a parser that raised: a bug, even if no traceback.
        assert UNEXPECTED not in message.msg, message


@FUZZ
@given(resilience_settings)
def test_parse_settings_never_raises_and_every_error_has_an_id(raw: dict[str, Any]) -> None:
    parsed = parse_settings(raw)
    for error in parsed.errors:
        assert error.check_id.startswith("resilience."), error
        assert str(error) and UNEXPECTED not in str(error), error


@FUZZ
@given(resilience_settings)
def test_system_checks_never_raise_whatever_the_settings_hold(raw: dict[str, Any]) -> None:
    with override_settings(RESILIENCE=raw):
        messages = [*check_settings(), *check_deploy()]
    _assert_all_resilience_messages(messages)
    errors = [m for m in messages if m.level >= checks.ERROR]
    assert all(m.hint for m in errors), errors


@FUZZ
@given(values)
def test_any_value_as_the_whole_setting_is_a_check_error_not_a_traceback(raw: Any) -> None:
    with override_settings(RESILIENCE=raw):
        messages = [*check_settings(), *check_deploy()]
    _assert_all_resilience_messages(messages)


@FUZZ
@given(st.sampled_from(sorted(KNOWN_KEYS)), values)
def test_any_value_for_any_key_never_raises(key: str, value: Any) -> None:
    parsed = conf.parse_settings({key: value})
    assert all(e.check_id.startswith("resilience.") for e in parsed.errors)
    assert not [e for e in parsed.errors if UNEXPECTED in str(e)]


# One field at a time on an otherwise valid entry, so every field's parsing is
# reached (a random entry mostly fails on its first field).
VALID_ENTRY: dict[str, tuple[dict[str, Any], frozenset[str] | set[str]]] = {
    "LIMITS": ({"name": "r", "rate": "10/s"}, RULE_FIELDS),
    "SHEDDING": ({"name": "s", "max_concurrent": 5}, SHEDDING_KEYS),
    "BREAKERS": ({}, BREAKER_KEYS),
    "FLEET": ({}, FLEET_KEYS),
    "FALLBACK": ({}, FALLBACK_KEYS),
    "METRICS": ({}, METRICS_KEYS),
    "DEADLINE": ({}, {"DEFAULT", "HEADERS", "ROUTES", "OUTBOUND_MARGIN"}),
}


def _with_field(setting: str, field: str, value: Any) -> dict[str, Any]:
    base, _ = VALID_ENTRY[setting]
    entry = {**base, field: value}
    if setting in ("LIMITS", "SHEDDING"):
        return {setting: [entry]}
    if setting == "BREAKERS":
        return {setting: {"b": entry}}
    return {setting: entry}


fields = st.sampled_from(sorted(VALID_ENTRY)).flatmap(
    lambda setting: st.tuples(st.just(setting), st.sampled_from(sorted(VALID_ENTRY[setting][1])))
)


@FUZZ
@given(fields, values)
def test_any_value_in_any_field_of_a_valid_entry_is_a_check_error_or_accepted(
    where: tuple[str, str], value: Any
) -> None:
    setting, field = where
    with override_settings(RESILIENCE=_with_field(setting, field, value)):
        messages = [*check_settings(), *check_deploy()]
    _assert_all_resilience_messages(messages)


def test_a_number_too_long_to_print_is_a_check_error_in_every_field() -> None:
    for setting, (_, keys) in VALID_ENTRY.items():
        for field in sorted(keys):
            parsed = parse_settings(_with_field(setting, field, UNPRINTABLE))
            assert all(e.check_id.startswith("resilience.") for e in parsed.errors)
            # Its own check id, not the safety net's "could not be read" for the section.
            assert not [e for e in parsed.errors if UNEXPECTED in str(e)], (setting, field)
    for key in sorted(KNOWN_KEYS):
        parsed = parse_settings({key: UNPRINTABLE})
        assert all(e.check_id.startswith("resilience.") for e in parsed.errors)
        assert not [e for e in parsed.errors if UNEXPECTED in str(e)], key
