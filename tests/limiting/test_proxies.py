"""Reading the client address through trusted proxies only."""

from __future__ import annotations

from dataclasses import replace

import pytest

from resilience_django.exceptions import ConfigError
from resilience_django.limiting.proxies import (
    TrustedProxies,
    address_key,
    parse_ipv6_prefix,
    parse_trusted_proxies,
    peer_key,
)


def client_ip(proxies: TrustedProxies, remote: str | None, forwarded_for: str | None) -> str | None:
    """The client's address in full: its ``ip`` key with an IPv6 prefix of 128."""
    return replace(proxies, ipv6_prefix=128).client_key(remote, forwarded_for)


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
    assert client_ip(one, "10.0.0.2", "6.6.6.6, 203.0.113.7") == "203.0.113.7"
    two = parse_trusted_proxies(2)
    assert client_ip(two, "10.0.0.2", "6.6.6.6, 203.0.113.7, 10.0.0.9") == "203.0.113.7"
    assert client_ip(two, "10.0.0.2", "203.0.113.7") == "203.0.113.7"
    assert client_ip(one, "10.0.0.2", None) == "10.0.0.2"


def test_networks_walk_from_the_right_past_trusted_addresses():
    trusted = parse_trusted_proxies(["10.0.0.0/8", "fd00::/8"])
    assert isinstance(trusted, TrustedProxies)
    assert client_ip(trusted, "10.0.0.2", "6.6.6.6, 203.0.113.7, 10.1.1.1") == "203.0.113.7"
    assert client_ip(trusted, "fd00::1", "2001:db8::5") == "2001:db8::5"
    # Every hop trusted: the leftmost is the best we know.
    assert client_ip(trusted, "10.0.0.2", "10.0.0.3") == "10.0.0.3"


def test_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing():
    for trusted in (parse_trusted_proxies(["10.0.0.0/8"]), None):
        peer = "198.51.100.4"
        got = peer if trusted is None else client_ip(trusted, peer, "1.2.3.4, 10.0.0.1")
        assert got == peer


def test_missing_peer_has_no_address_unless_a_hop_count_reads_the_header():
    # A hop count never looks at the peer (a Unix socket reports none); networks do.
    assert client_ip(parse_trusted_proxies(1), None, "1.2.3.4") == "1.2.3.4"
    assert client_ip(parse_trusted_proxies(1), None, None) is None
    assert client_ip(parse_trusted_proxies(["0.0.0.0/0"]), None, "1.2.3.4") is None


def _bad_forwarded_for() -> float:
    from prometheus_client import REGISTRY

    sample = REGISTRY.get_sample_value(
        "resilience_bad_headers_total", {"header": "x-forwarded-for"}
    )
    return sample or 0.0


@pytest.mark.parametrize(
    "entry",
    ["junk-17", "a" * 10_000, "1" * 10_000, " ", "1.2.3.4:5678", "01.2.3.4", "1.2.3", "::ffff:x"],
)
def test_hop_count_never_keys_on_an_entry_that_is_not_an_ip_address(entry):
    one = parse_trusted_proxies(1)
    before = _bad_forwarded_for()
    assert client_ip(one, "198.51.100.4", f"{entry}") == "198.51.100.4"
    assert one.client_key("198.51.100.4", f"203.0.113.9, {entry}") == "198.51.100.4"
    assert _bad_forwarded_for() == before + 2


def test_networks_never_key_on_an_entry_that_is_not_an_ip_address():
    trusted = parse_trusted_proxies(["10.0.0.0/8"])
    before = _bad_forwarded_for()
    assert client_ip(trusted, "10.0.0.2", "203.0.113.7, junk") == "10.0.0.2"
    assert client_ip(trusted, "10.0.0.2", "x" * 10_000 + ", 10.0.0.3") == "10.0.0.2"
    assert _bad_forwarded_for() == before + 2
    # Past the first untrusted address nothing is read, junk or not.
    assert client_ip(trusted, "10.0.0.2", "junk, 203.0.113.7") == "203.0.113.7"
    assert _bad_forwarded_for() == before + 2


def test_well_formed_entries_are_read_without_counting_anything():
    before = _bad_forwarded_for()
    assert client_ip(parse_trusted_proxies(1), "10.0.0.2", "203.0.113.7") == "203.0.113.7"
    assert client_ip(parse_trusted_proxies(1), "10.0.0.2", None) == "10.0.0.2"
    assert _bad_forwarded_for() == before


@pytest.mark.parametrize(
    "written", ["1.2.3.4", " 1.2.3.4 ", "\t1.2.3.4", "::ffff:1.2.3.4", "::FFFF:102:304"]
)
def test_one_address_written_differently_is_one_client(written):
    for trusted in (parse_trusted_proxies(1), parse_trusted_proxies(["10.0.0.0/8"])):
        assert client_ip(trusted, "10.0.0.2", f"6.6.6.6,{written}") == "1.2.3.4"
        assert trusted.client_key("10.0.0.2", f"6.6.6.6,{written}") == "1.2.3.4"
    assert client_ip(parse_trusted_proxies(1), "2001:DB8:0::0:1", None) == "2001:db8::1"


@pytest.mark.parametrize("space", ["\xa0", "\x85", "\x1c", "\x0b", "\u2003", "\u3000"])
def test_only_spaces_and_tabs_around_an_entry_are_optional_whitespace(space):
    # Header values arrive decoded as latin-1: str.strip() would also drop \xa0 (NBSP) and
    # \x85 (NEL), so "1.2.3.4\xa0" would be read as an address.  HTTP's OWS is SP and HTAB.
    for trusted in (parse_trusted_proxies(1), parse_trusted_proxies(["10.0.0.0/8"])):
        before = _bad_forwarded_for()
        assert trusted.client_key("10.0.0.2", f"1.2.3.4{space}") == "10.0.0.2"
        assert client_ip(trusted, "10.0.0.2", f"{space}1.2.3.4") == "10.0.0.2"
        assert _bad_forwarded_for() == before + 2
    assert address_key(f"1.2.3.4{space}") is None


def test_ipv4_mapped_peer_matches_ipv4_trusted_networks():
    trusted = parse_trusted_proxies(["10.0.0.0/8"])
    # A dual-stack listener shows the IPv4 proxy 10.0.0.1 as ::ffff:10.0.0.1.
    assert client_ip(trusted, "::ffff:10.0.0.1", "203.0.113.7") == "203.0.113.7"
    assert client_ip(trusted, "::ffff:10.0.0.1", "203.0.113.7, ::ffff:10.0.0.9") == "203.0.113.7"
    # And the untrusted mapped peer is the IPv4 client it stands for.
    assert client_ip(trusted, "::ffff:198.51.100.4", "203.0.113.7") == "198.51.100.4"


def test_ipv4_mapped_trusted_network_matches_ipv4_peers():
    trusted = parse_trusted_proxies(["::ffff:10.0.0.0/104"])
    assert client_ip(trusted, "10.0.0.1", "203.0.113.7") == "203.0.113.7"
    everyone = parse_trusted_proxies(["::/0"])
    assert client_ip(everyone, "10.0.0.1", "203.0.113.7, 10.0.0.5") == "203.0.113.7"


def test_ipv6_clients_are_keyed_by_their_64_by_default():
    one = parse_trusted_proxies(1)
    a = one.client_key("10.0.0.2", "2001:db8:1:2::a")
    b = one.client_key("10.0.0.2", "2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert a == b == "2001:db8:1:2::/64"
    assert one.client_key("10.0.0.2", "2001:db8:1:3::a") == "2001:db8:1:3::/64"
    # With a prefix of 128 the key is the address itself.
    assert client_ip(one, "10.0.0.2", "2001:db8:1:2::a") == "2001:db8:1:2::a"
    # IPv4 clients are not grouped.
    assert one.client_key("10.0.0.2", "203.0.113.7") == "203.0.113.7"


@pytest.mark.parametrize(
    ("prefix", "key"),
    [(48, "2001:db8:1::/48"), (56, "2001:db8:1:200::/56"), (128, "2001:db8:1:2ab::1"), (1, "::/1")],
)
def test_the_ipv6_prefix_is_configurable(prefix, key):
    trusted = parse_trusted_proxies(1, ipv6_prefix=prefix)
    assert trusted.client_key("10.0.0.2", "2001:db8:1:2ab::1") == key
    assert address_key("2001:db8:1:2ab::1", prefix) == key


def test_no_trusted_proxies_with_another_ipv6_prefix_still_reads_only_the_peer():
    trusted = parse_trusted_proxies(None, ipv6_prefix=128)
    assert trusted is not None and not trusted.reads_forwarded_for
    assert trusted.client_key("2001:db8::5", "203.0.113.7") == "2001:db8::5"
    assert trusted.client_key("198.51.100.4", "203.0.113.7") == "198.51.100.4"


def test_a_zone_id_is_not_part_of_the_key():
    assert address_key("fe80::1%eth0", 128) == address_key("fe80::1", 128) == "fe80::1"


def test_a_peer_that_is_not_an_ip_address_stays_as_the_server_wrote_it():
    assert peer_key("unix-socket") == "unix-socket"
    assert peer_key("2001:db8::1") == "2001:db8::/64"
    assert peer_key("::ffff:198.51.100.4") == "198.51.100.4"


@pytest.mark.parametrize("value", [0, 129, -1, True, "64", 64.0, None])
def test_bad_ipv6_prefix_is_e016(value):
    with pytest.raises(ConfigError) as info:
        parse_ipv6_prefix(value)
    assert info.value.check_id == "resilience.E016"
    assert info.value.hint


@pytest.mark.parametrize("value", [1, 48, 64, 128])
def test_good_ipv6_prefix_is_accepted(value):
    assert parse_ipv6_prefix(value) == value


def _check_ids(resilience, check):
    from django.test import override_settings

    with override_settings(RESILIENCE=resilience):
        return {message.id for message in check()}


def test_check_reports_a_bad_ipv6_prefix_as_e016():
    from resilience_django.checks import check_settings

    assert "resilience.E016" in _check_ids({"IPV6_PREFIX": 0}, check_settings)
    assert "resilience.E016" not in _check_ids({"IPV6_PREFIX": 56}, check_settings)
    assert "resilience.E002" not in _check_ids({"IPV6_PREFIX": 56}, check_settings)


def test_deploy_check_warns_about_a_hop_count_as_w010():
    from resilience_django.checks import check_deploy

    assert "resilience.W010" in _check_ids({"TRUSTED_PROXIES": 1}, check_deploy)
    assert "resilience.W010" not in _check_ids({"TRUSTED_PROXIES": ["10.0.0.0/8"]}, check_deploy)
    assert "resilience.W010" not in _check_ids({}, check_deploy)


def test_the_ipv6_prefix_setting_reaches_the_parsed_settings():
    from resilience_django.conf import parse_settings

    parsed = parse_settings({"IPV6_PREFIX": 48, "TRUSTED_PROXIES": 1})
    assert not parsed.errors
    assert parsed.trusted_proxies.ipv6_prefix == 48 and parsed.trusted_proxies.hops == 1
    assert parse_settings({"IPV6_PREFIX": 48}).trusted_proxies.ipv6_prefix == 48
