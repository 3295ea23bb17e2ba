"""The metrics view: 404 when off, 403 unless the network, the token or staff lets you in."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from resilience_django import metrics

from .scrape import value

TOKEN = "s3cret-token-0123456789"
URL = "/resilience/metrics/"


def enabled(**extra):
    return override_settings(RESILIENCE={"METRICS": {"ENABLED": True, **extra}})


def test_off_by_default_answers_404(client):
    assert client.get(URL, REMOTE_ADDR="127.0.0.1").status_code == 404


@override_settings(RESILIENCE={"METRICS": {"ENABLED": False, "ALLOWED_NETWORKS": ["0.0.0.0/0"]}})
def test_explicitly_disabled_answers_404_even_to_allowed_networks(client):
    assert client.get(URL, REMOTE_ADDR="127.0.0.1").status_code == 404


@pytest.mark.parametrize("method", ["post", "head", "options", "put", "delete"])
@pytest.mark.parametrize("url", [URL, URL.rstrip("/")])
def test_off_answers_404_to_every_method_as_a_url_that_does_not_exist(method, url):
    # CSRF enforced as in a real browser: a 405 or a CSRF 403 would advertise the URL.
    client = Client(enforce_csrf_checks=True)
    assert getattr(client, method)("/no-such-url/").status_code == 404
    assert getattr(client, method)(url, REMOTE_ADDR="127.0.0.1").status_code == 404


@enabled(ALLOWED_NETWORKS=["10.1.0.0/16"])
def test_an_address_outside_the_networks_gets_403(client):
    assert client.get(URL, REMOTE_ADDR="10.2.0.1").status_code == 403


@enabled(ALLOWED_NETWORKS=["10.1.0.0/16"])
def test_forwarded_for_headers_do_not_open_the_view(client):
    response = client.get(URL, REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.1.2.3")
    assert response.status_code == 403


@enabled(ALLOWED_NETWORKS=["10.1.0.0/16", "::1"])
def test_an_allowed_network_reads_the_exposition(client):
    metrics.breaker_state("view-test", "open")
    response = client.get(URL, REMOTE_ADDR="10.1.200.3")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    text = response.content.decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "resilience_deadline_exceeded" in names
    assert value("resilience_breaker_state", text=text, breaker="view-test") == 1
    assert client.get(URL, REMOTE_ADDR="::1").status_code == 200


@enabled(ALLOWED_NETWORKS=["10.0.0.0/8"])
def test_an_ipv4_peer_on_a_dual_stack_socket_matches_ipv4_networks(client):
    assert client.get(URL, REMOTE_ADDR="::ffff:10.0.0.1").status_code == 200
    assert client.get(URL, REMOTE_ADDR="::ffff:11.0.0.1").status_code == 403


@enabled(ALLOWED_NETWORKS=["::ffff:10.0.0.0/104"])
def test_a_network_written_in_ipv4_mapped_form_matches_its_ipv4_peers(client):
    for peer in ("10.0.0.1", "::ffff:10.0.0.1"):
        assert client.get(URL, REMOTE_ADDR=peer).status_code == 200
    assert client.get(URL, REMOTE_ADDR="11.0.0.1").status_code == 403


@enabled(BEARER_TOKEN=TOKEN)
def test_the_bearer_token_opens_the_view_and_a_wrong_one_does_not(client):
    ok = client.get(URL, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200
    for header in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "):
        response = client.get(URL, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=header)
        assert response.status_code == 403, header


@pytest.mark.django_db
@enabled()
def test_staff_may_read_and_other_users_may_not(client):
    user = User.objects.create_user("plain", password="pw")
    client.force_login(user)
    assert client.get(URL, REMOTE_ADDR="203.0.113.9").status_code == 403
    user.is_staff = True
    user.save()
    assert client.get(URL, REMOTE_ADDR="203.0.113.9").status_code == 200


@pytest.mark.django_db
@enabled(ALLOW_STAFF=False)
def test_staff_is_refused_when_allow_staff_is_false(client):
    client.force_login(User.objects.create_user("staff", password="pw", is_staff=True))
    assert client.get(URL, REMOTE_ADDR="203.0.113.9").status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["false", "no", 0])
def test_a_bad_allow_staff_value_does_not_let_staff_in(client, bad):
    with enabled(ALLOW_STAFF=bad):
        client.force_login(User.objects.create_user("staff", password="pw", is_staff=True))
        assert client.get(URL, REMOTE_ADDR="203.0.113.9").status_code == 403


@enabled(ALLOWED_NETWORKS=["127.0.0.1"])
def test_only_get_is_allowed(client):
    response = client.post(URL, REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 405
    assert response["Allow"] == "GET"


@enabled(ALLOWED_NETWORKS=["127.0.0.1"])
def test_openmetrics_is_served_when_asked_for(client):
    response = client.get(
        URL, REMOTE_ADDR="127.0.0.1", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


def test_settings_changes_reach_the_view(client):
    with enabled(ALLOWED_NETWORKS=["127.0.0.1"]):
        assert client.get(URL, REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get(URL, REMOTE_ADDR="127.0.0.1").status_code == 404
