"""Key functions on Django requests and on raw ASGI scopes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.test import RequestFactory

from resilience_django.exceptions import ConfigError
from resilience_django.limiting.engine import LimitEngine
from resilience_django.limiting.keys import check_key_spec, compile_key
from resilience_django.limiting.local import LocalLimiter
from resilience_django.limiting.proxies import parse_trusted_proxies
from resilience_django.limiting.rules import parse_limit_rules

rf = RequestFactory()


def user(pk=None):
    u = SimpleNamespace(is_authenticated=pk is not None, pk=pk)

    async def auser():
        return u

    return u, auser


def request_with(pk=None, **meta):
    request = rf.get("/x", **meta)
    request.user, request.auser = user(pk)
    return request


def scope(client=("198.51.100.4", 5000), headers=()):
    return {"type": "http", "client": client, "headers": list(headers)}


def test_ip_is_remote_addr_and_ignores_forwarded_for_without_trusted_proxies():
    key = compile_key("ip")
    request = rf.get("/", REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert key.get(request) == "198.51.100.4"
    assert key.from_scope(scope(headers=[(b"x-forwarded-for", b"1.2.3.4")])) == "198.51.100.4"
    assert not key.needs_request and key.loop_safe


def test_ip_reads_forwarded_for_through_trusted_proxies_on_request_and_scope():
    key = compile_key("ip", parse_trusted_proxies(["10.0.0.0/8"]))
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    assert key.get(request) == "203.0.113.7"
    raw = scope(
        ("10.0.0.2", 1), [(b"X-Forwarded-For", b"6.6.6.6"), (b"x-forwarded-for", b"203.0.113.7")]
    )
    assert key.from_scope(raw) == "203.0.113.7"


def test_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_key():
    key = compile_key("ip", parse_trusted_proxies(["10.0.0.0/8"]))
    honest = rf.get("/", REMOTE_ADDR="198.51.100.4")
    spoofed = rf.get("/", REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR="10.0.0.1, 1.1.1.1")
    assert key.get(spoofed) == key.get(honest) == "198.51.100.4"


def test_ip_without_a_client_has_no_key():
    assert compile_key("ip").from_scope(scope(client=None)) is None


async def test_user_is_the_pk_and_anonymous_has_no_key_sync_and_async():
    key = compile_key("user")
    assert key.needs_request and not key.loop_safe
    assert key.get(request_with(7)) == "7"
    assert await key.aget(request_with(7)) == "7"
    assert key.get(request_with(None)) is None
    assert await key.aget(request_with(None)) is None
    # Without AuthenticationMiddleware there is no user: no key either.
    assert key.get(rf.get("/")) is None
    assert await key.aget(rf.get("/")) is None


async def test_user_or_ip_prefixes_each_kind():
    key = compile_key("user_or_ip")
    assert key.get(request_with(7)) == "user:7"
    assert await key.aget(request_with(None, REMOTE_ADDR="198.51.100.4")) == "ip:198.51.100.4"
    assert key.get(request_with(None, REMOTE_ADDR="")) is None


def test_header_key_on_request_and_scope_missing_means_no_key():
    key = compile_key("header:X-Api-Key")
    assert key.get(rf.get("/", HTTP_X_API_KEY="abc")) == "abc"
    assert key.get(rf.get("/")) is None
    assert key.from_scope(scope(headers=[(b"x-api-key", b"abc")])) == "abc"
    assert key.from_scope(scope()) is None
    assert compile_key("header:Content-Type").get(rf.post("/", {})).startswith("multipart")


def test_long_values_are_stored_as_a_fixed_size_digest():
    key = compile_key("header:X-Api-Key")
    a, b = (
        key.get(rf.get("/", HTTP_X_API_KEY="a" * 5000)),
        key.get(rf.get("/", HTTP_X_API_KEY="b" * 5000)),
    )
    assert len(a) == 33 and a != b
    assert a == key.get(rf.get("/", HTTP_X_API_KEY="a" * 5000))


def test_param_key_reads_the_query_string_and_needs_the_request():
    key = compile_key("param:token")
    assert key.get(rf.get("/", {"token": "t1"})) == "t1"
    assert key.get(rf.get("/")) is None
    assert key.needs_request


async def test_sync_callable_key_works_in_sync_and_async_code():
    key = compile_key("tests.limiting.keyfuncs.tenant")
    request = rf.get("/", HTTP_X_TENANT="acme")
    assert key.get(request) == "acme"
    assert await key.aget(request) == "acme"
    assert compile_key("tests.limiting.keyfuncs.numeric").get(request) == "42"


async def test_async_callable_key_works_in_async_code():
    key = compile_key("tests.limiting.keyfuncs.async_tenant")
    assert await key.aget(rf.get("/", HTTP_X_TENANT="acme")) == "acme"


def test_async_callable_key_works_in_sync_code():
    key = compile_key("tests.limiting.keyfuncs.async_tenant")
    assert key.get(rf.get("/", HTTP_X_TENANT="acme")) == "acme"
    assert key.get(rf.get("/")) is None


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "ipv6",
        "header:",
        "header:X Api Key",  # a space: no header can be named so
        "header:Schl\u00fcssel",
        "header:X-Api-Key:v2",
        "param: ",
        "tests.limiting.keyfuncs.missing",
        "tests.limiting.keyfuncs.not_callable",
        "x:y",
    ],
)
def test_bad_key_specs_are_e022(spec):
    with pytest.raises(ConfigError) as info:
        check_key_spec(spec, where="rule")
    assert info.value.check_id == "resilience.E022"


def huge_key(request):
    """A key callable the tests name by dotted path: 10,000 characters."""
    return "k" * 10_000


@pytest.mark.parametrize("junk", ["junk-1", "junk-2", "1.2.3." + "9" * 5, "a" * 10_000])
def test_ip_under_a_hop_count_falls_back_to_the_peer_for_an_entry_that_is_no_ip(junk):
    key = compile_key("ip", parse_trusted_proxies(1))
    request = rf.get("/", REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR=junk)
    assert key.get(request) == "198.51.100.4"
    raw = scope(headers=[(b"x-forwarded-for", junk.encode())])
    assert key.from_scope(raw) == "198.51.100.4"


def test_ip_under_a_hop_count_still_reads_a_well_formed_entry():
    # What a hop count trusts: the entry's shape, not who wrote it.
    key = compile_key("ip", parse_trusted_proxies(1))
    request = rf.get("/", REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR=" ::ffff:1.2.3.4")
    assert key.get(request) == "1.2.3.4"


def test_ipv6_clients_in_one_64_share_an_ip_key_on_request_and_scope():
    key = compile_key("ip")
    a = key.get(rf.get("/", REMOTE_ADDR="2001:db8:1:2::a"))
    b = key.from_scope(scope(client=("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 1)))
    other = key.get(rf.get("/", REMOTE_ADDR="2001:db8:1:3::a"))
    assert a == b == "2001:db8:1:2::/64"
    assert other == "2001:db8:1:3::/64"


def test_ipv6_prefix_setting_changes_the_grouping():
    key = compile_key("ip", parse_trusted_proxies(None, ipv6_prefix=48))
    assert key.get(rf.get("/", REMOTE_ADDR="2001:db8:1:2::a")) == "2001:db8:1::/48"
    exact = compile_key("ip", parse_trusted_proxies(["10.0.0.0/8"], ipv6_prefix=128))
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="2001:db8::7")
    assert exact.get(request) == "2001:db8::7"


def test_ipv4_mapped_peer_is_the_ipv4_client():
    key = compile_key("ip")
    assert key.get(rf.get("/", REMOTE_ADDR="::ffff:198.51.100.4")) == "198.51.100.4"
    assert key.from_scope(scope(client=("::ffff:198.51.100.4", 1))) == "198.51.100.4"


async def test_user_keys_with_a_huge_primary_key_are_bounded():
    for spec in ("user", "user_or_ip"):
        key = compile_key(spec)
        got = key.get(request_with("p" * 10_000))
        assert len(got) <= 64
        assert await key.aget(request_with("p" * 10_000)) == got
        assert key.get(request_with("q" * 10_000)) != got


def test_a_short_key_cannot_pose_as_the_digest_of_a_long_one():
    key = compile_key("header:X-Api-Key")
    digest = key.get(rf.get("/", HTTP_X_API_KEY="a" * 5000))
    assert digest.startswith("#")
    impostor = key.get(rf.get("/", HTTP_X_API_KEY=digest))
    assert impostor != digest and impostor.startswith("#") and len(impostor) == len(digest)


class Recording(LocalLimiter):
    """A local limiter that remembers the keys it was asked to store."""

    def __init__(self):
        super().__init__()
        self.keys = []

    def decide(self, checks, share=1.0):
        self.keys.extend(check.key for check in checks)
        return super().decide(checks, share)


@pytest.mark.parametrize(
    ("key", "request_"),
    [
        ("tests.limiting.test_keys.huge_key", lambda: request_with(None)),
        ("user", lambda: request_with("u" * 10_000)),
        ("user_or_ip", lambda: request_with("u" * 10_000)),
        ("header:X-Api-Key", lambda: rf.get("/", HTTP_X_API_KEY="h" * 10_000)),
        ("ip", lambda: rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1" * 10_000)),
    ],
)
def test_stored_keys_are_bounded_whatever_the_key_kind(key, request_):
    rules, errors = parse_limit_rules([{"name": "r", "key": key, "rate": "3/m"}])
    assert not errors
    store = Recording()
    engine = LimitEngine(rules, store, trusted_proxies=parse_trusted_proxies(1))
    for _ in range(4):
        result = engine.decide("GET", "/", request_())
    assert not result.decision.allowed  # one client, one key: the 4th is refused
    assert store.keys and all(len(k) <= 64 for k in store.keys)
    assert len(set(store.keys)) == 1
