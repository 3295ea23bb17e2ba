"""Reading the client address through trusted proxies only."""

from __future__ import annotations

import pytest

from resilience_django.exceptions import ConfigError
from resilience_django.limiting.proxies import TrustedProxies, parse_trusted_proxies


@pytest.mark.parametrize("value", [None, 0, [], ()])
def test_no_trusted_proxies_means_none(value):
    assert parse_trusted_proxies(value) is None


@pytest.mark.parametrize("value", [-1, True, "10.0.0.0/8", ["10.0.0.0/33"], ["not-an-ip"], 1.5])
def test_bad_trusted_proxies_is_e010(value):
    with pytest.raises(ConfigError) as info:
        parse_trusted_proxies(value)
    assert info.value.check_id == "resilience.E010"
    assert info.value.hint


def test_hop_count_takes_the_address_that_many_places_left_of_the_peer():
    one = parse_trusted_proxies(1)
    assert one.client_ip("10.0.0.2", "6.6.6.6, 203.0.113.7") == "203.0.113.7"
    two = parse_trusted_proxies(2)
    assert two.client_ip("10.0.0.2", "6.6.6.6, 203.0.113.7, 10.0.0.9") == "203.0.113.7"
    assert two.client_ip("10.0.0.2", "203.0.113.7") == "203.0.113.7"
    assert one.client_ip("10.0.0.2", None) == "10.0.0.2"


def test_networks_walk_from_the_right_past_trusted_addresses():
    trusted = parse_trusted_proxies(["10.0.0.0/8", "fd00::/8"])
    assert isinstance(trusted, TrustedProxies)
    assert trusted.client_ip("10.0.0.2", "6.6.6.6, 203.0.113.7, 10.1.1.1") == "203.0.113.7"
    assert trusted.client_ip("fd00::1", "2001:db8::5") == "2001:db8::5"
    # Every hop trusted: the leftmost is the best we know.
    assert trusted.client_ip("10.0.0.2", "10.0.0.3") == "10.0.0.3"


def test_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing():
    for trusted in (parse_trusted_proxies(["10.0.0.0/8"]), None):
        peer = "198.51.100.4"
        got = peer if trusted is None else trusted.client_ip(peer, "1.2.3.4, 10.0.0.1")
        assert got == peer


def test_missing_peer_has_no_address():
    assert parse_trusted_proxies(1).client_ip(None, "1.2.3.4") is None
