"""``RESILIENCE["METRICS"]`` parsing: one check id per problem, closed by default."""

from __future__ import annotations

import ipaddress

import pytest

from resilience_django.observability.config import (
    MetricsSettings,
    deploy_warnings,
    parse_metrics,
)

TOKEN = "s3cret-token-0123456789"


def parse(raw):
    errors = []
    return parse_metrics(raw, errors), [e.check_id for e in errors], errors


def test_absent_means_off_with_no_errors():
    settings, ids, _ = parse(None)
    assert settings == MetricsSettings()
    assert settings.enabled is False
    assert ids == []


def test_a_full_setting_parses():
    settings, ids, _ = parse(
        {
            "ENABLED": True,
            "ALLOWED_NETWORKS": ["10.0.0.0/8", "::1", "192.168.1.7/24"],
            "BEARER_TOKEN": TOKEN,
            "ALLOW_STAFF": False,
        }
    )
    assert ids == []
    assert settings.enabled is True
    assert settings.allowed_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("192.168.1.0/24"),  # host bits forgiven, not an error
    )
    assert settings.bearer_token == TOKEN
    assert settings.allow_staff is False


@pytest.mark.parametrize(
    ("raw", "check_id"),
    [
        (["ENABLED"], "resilience.E090"),
        ({"ENABLE": True}, "resilience.E091"),
        ({"ENABLED": "yes"}, "resilience.E092"),
        ({"ALLOWED_NETWORKS": "10.0.0.0/8"}, "resilience.E093"),
        ({"ALLOWED_NETWORKS": ["10.0.0.0/33"]}, "resilience.E094"),
        ({"ALLOWED_NETWORKS": [None]}, "resilience.E094"),
        ({"BEARER_TOKEN": 12345}, "resilience.E095"),
        ({"BEARER_TOKEN": ""}, "resilience.E095"),
        ({"BEARER_TOKEN": "short"}, "resilience.E096"),
        ({"ALLOW_STAFF": 1}, "resilience.E097"),
    ],
)
def test_each_problem_has_its_own_check_id_and_a_hint(raw, check_id):
    _, ids, errors = parse(raw)
    assert ids == [check_id]
    assert errors[0].hint
    assert "METRICS" in str(errors[0])


def test_a_bad_enabled_value_leaves_the_view_off():
    settings, _, _ = parse({"ENABLED": "true"})
    assert settings.enabled is False


def test_a_bad_token_is_not_used_and_the_good_networks_still_are():
    settings, ids, _ = parse(
        {"ENABLED": True, "BEARER_TOKEN": "short", "ALLOWED_NETWORKS": ["10.0.0.0/8", "nope"]}
    )
    assert ids == ["resilience.E094", "resilience.E096"]
    assert settings.bearer_token is None
    assert settings.allowed_networks == (ipaddress.ip_network("10.0.0.0/8"),)


def test_enabled_without_prometheus_client_is_an_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    _, ids, _ = parse({"ENABLED": True})
    assert ids == ["resilience.E098"]


def test_deploy_warning_when_every_address_is_allowed():
    open_to_all, _, _ = parse({"ENABLED": True, "ALLOWED_NETWORKS": ["0.0.0.0/0"]})
    assert [w.check_id for w in deploy_warnings(open_to_all)] == ["resilience.W090"]
    closed, _, _ = parse({"ENABLED": True, "ALLOWED_NETWORKS": ["10.0.0.0/8"]})
    assert deploy_warnings(closed) == []
    off, _, _ = parse({"ENABLED": False, "ALLOWED_NETWORKS": ["::/0"]})
    assert deploy_warnings(off) == []


def test_metrics_are_parsed_with_the_rest_of_resilience_into_one_settings_object():
    from django.test import override_settings

    from resilience_django.conf import get_settings, parse_settings

    parsed = parse_settings({"METRICS": {"ENABLED": "yes", "BEARER_TOKEN": TOKEN}})
    assert parsed.metrics == MetricsSettings(enabled=False, bearer_token=TOKEN)
    assert [e.check_id for e in parsed.errors] == ["resilience.E092"]
    with override_settings(RESILIENCE={"METRICS": {"ENABLED": True, "BEARER_TOKEN": TOKEN}}):
        assert get_settings().metrics.enabled is True
    assert get_settings().metrics.enabled is False


@pytest.mark.parametrize(
    "networks", [["127.0.0.1"], ["10.0.0.0/8", "::1"], ["::ffff:127.0.0.1"], ["64.0.0.0/2"]]
)
def test_deploy_warning_when_loopback_is_allowed(networks):
    # Behind nginx on the same host every REMOTE_ADDR is 127.0.0.1: all its clients get in.
    from django.test import override_settings

    from resilience_django.checks import check_deploy, check_settings

    config = {"METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": networks}}
    with override_settings(RESILIENCE=config):
        [warning] = [m for m in check_deploy() if m.id.startswith("resilience.W09")]
        assert warning.id == "resilience.W092"
        assert "BEARER_TOKEN" in warning.hint and "Prometheus" in warning.hint
        assert not [m for m in check_settings() if m.id == "resilience.W092"]  # deploy only
    for closed in (["10.0.0.0/8", "128.0.0.0/1", "::2"], ["0.0.0.0/0", "127.0.0.1"]):
        settings, _, _ = parse({"ENABLED": True, "ALLOWED_NETWORKS": closed})
        assert "resilience.W092" not in [w.check_id for w in deploy_warnings(settings)]
    off, _, _ = parse({"ENABLED": False, "ALLOWED_NETWORKS": networks})
    assert deploy_warnings(off) == []
