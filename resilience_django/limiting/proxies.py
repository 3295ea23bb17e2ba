"""Which peers may tell us the client's address: ``RESILIENCE["TRUSTED_PROXIES"]``
(``resilience.E010``, ``resilience.W010``) and ``IPV6_PREFIX`` (``resilience.E016``).

How the header is read, what a bad entry does and how addresses are normalized and grouped:
docs/settings.md#trusted_proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .. import metrics
from ..exceptions import ConfigError
from ..units import safe_repr

__all__ = [
    "DEFAULT_IPV6_PREFIX",
    "TrustedProxies",
    "address_key",
    "parse_address",
    "parse_ipv6_prefix",
    "parse_trusted_proxies",
    "unmapped_networks",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_IPV6_PREFIX = 64
# An IP address is at most 45 characters (plus a zone id): longer text is not parsed at
# all, so a 10 KB header costs nothing and is never cached.
_MAX_ADDRESS_TEXT = 64
# At most this many entries of a trusted chain are parsed: no deployment has more proxies.
_MAX_WALK = 32
# The two caches hold short strings only: about 2.5 MB together at most (measured full of
# IPv6 addresses); they spare a parse per request (3 µs for IPv6, 7 µs with the prefix).
_CACHE_SIZE = 4096
_HEADER = "x-forwarded-for"
# HTTP's optional whitespace (RFC 9110 OWS): str.strip() would also take \xa0, \x85 and
# other Unicode spaces, which a latin-1 header value can carry.
_OWS = " \t"


@lru_cache(maxsize=_CACHE_SIZE)
def _parse(text: str) -> Address | None:
    try:
        ip: Address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # ::ffff:a.b.c.d (an IPv4 peer on a dual-stack socket) is a.b.c.d, in IPv4 networks too.
        return ip.ipv4_mapped
    return ip


def parse_address(text: str) -> Address | None:
    """The IP address in ``text`` (spaces and tabs around it allowed), or ``None``;
    IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``) come back as IPv4."""
    text = text.strip(_OWS)
    return _parse(text) if text and len(text) <= _MAX_ADDRESS_TEXT else None


@lru_cache(maxsize=_CACHE_SIZE)
def _key(text: str, ipv6_prefix: int) -> str | None:
    ip = _parse(text)
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    # Through the integer, which also drops a zone id (fe80::1%eth0).
    shift = 128 - ipv6_prefix
    network = ipaddress.IPv6Address(int(ip) >> shift << shift)
    return str(network) if ipv6_prefix == 128 else f"{network}/{ipv6_prefix}"


def address_key(text: str, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> str | None:
    """The ``ip`` key of the address in ``text``, or ``None`` if it is not an IP address:
    IPv4 normalized, IPv6 the network of its first ``ipv6_prefix`` bits (``2001:db8::/64``;
    the bare address for 128)."""
    text = text.strip(_OWS)
    return _key(text, ipv6_prefix) if text and len(text) <= _MAX_ADDRESS_TEXT else None


def peer_key(remote: str, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> str:
    """The ``ip`` key of the peer the server reports (``REMOTE_ADDR``, the ASGI client): a
    dotted IPv4 address as is, without a parse (the hot path); anything else normalized, and
    a peer that is no IP address at all (a Unix socket) as the server said."""
    if len(remote) <= 15 and ":" not in remote:
        return remote
    return address_key(remote, ipv6_prefix) or remote


@dataclass(slots=True, eq=False)
class TrustedProxies:
    """How far to trust ``X-Forwarded-For``: ``hops`` proxies append to it, or the peers
    inside ``networks`` (docs/settings.md#trusted_proxies); ``ipv6_prefix`` is how many
    leading bits of an IPv6 client make its key."""

    hops: int = 0
    networks: tuple[Network, ...] = ()
    ipv6_prefix: int = DEFAULT_IPV6_PREFIX

    @property
    def reads_forwarded_for(self) -> bool:
        """False when no proxy is trusted: the peer is always the client."""
        return bool(self.hops or self.networks)

    def _trusted(self, ip: Address) -> bool:
        return any(ip in net for net in self.networks)

    def _forwarded(self, remote: str, forwarded_for: str) -> str | None:
        """The header's entry that names the client, or ``None`` for the peer (also when
        that entry is not an IP address: checked here, so a bad entry is counted once)."""
        if self.hops:
            # Only the last `hops` entries matter: the rest of a long header stays one piece.
            parts = forwarded_for.rsplit(",", self.hops)
            # A chain shorter than the hop count: its leftmost entry is the best we know.
            entry = parts[1] if len(parts) > self.hops else parts[0]
            valid = parse_address(entry) is not None
        else:
            peer = parse_address(remote)
            if peer is None or not self._trusted(peer):
                return None
            entry, valid = "", False
            for candidate in reversed(forwarded_for.rsplit(",", _MAX_WALK)[-_MAX_WALK:]):
                if candidate.strip(_OWS):
                    entry = candidate
                    ip = parse_address(candidate)
                    valid = ip is not None
                    if ip is None or not self._trusted(ip):
                        break
            if not entry:
                return None
        if not valid:
            metrics.bad_header(_HEADER)
            return None
        return entry

    def client_key(self, remote: str | None, forwarded_for: str | None) -> str | None:
        """The ``ip`` key: the client's address, IPv6 grouped by ``ipv6_prefix``; with a hop
        count, also when the server reports no peer (a Unix socket behind the proxy)."""
        if forwarded_for and self.reads_forwarded_for:
            entry = self._forwarded(remote or "", forwarded_for)
            if entry is not None:
                return address_key(entry, self.ipv6_prefix)
        return peer_key(remote, self.ipv6_prefix) if remote else None


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def unmapped_networks(network: Network) -> tuple[Network, ...]:
    """``network`` as unmapped addresses (``::ffff:10.0.0.1`` is ``10.0.0.1``) are compared
    against it: the IPv4 part of an IPv6 network as the IPv4 network it covers."""
    if isinstance(network, ipaddress.IPv6Network):
        if network.subnet_of(_MAPPED):
            low = int(network.network_address) & 0xFFFFFFFF
            return (ipaddress.IPv4Network((low, network.prefixlen - 96)),)
        if network.supernet_of(_MAPPED):  # ::/0 and the like
            return (network, ipaddress.IPv4Network("0.0.0.0/0"))
    return (network,)


def parse_ipv6_prefix(value: Any) -> int:
    """Parse ``RESILIENCE["IPV6_PREFIX"]``: an integer from 1 to 128."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 128:
        raise ConfigError(
            f"RESILIENCE['IPV6_PREFIX'] = {safe_repr(value)} is not a prefix length from 1 to 128",
            check_id="resilience.E016",
            hint="How many leading bits of an IPv6 client's address make its 'ip' key: "
            "64 (the default) counts one subnet as one client, 128 each address.",
        )
    return value


# More proxies than this in front of one service is a typo, not a deployment.
MAX_HOPS = 100


def parse_trusted_proxies(
    value: Any, ipv6_prefix: int = DEFAULT_IPV6_PREFIX
) -> TrustedProxies | None:
    """Parse ``RESILIENCE["TRUSTED_PROXIES"]``: ``None``, a hop count or a list of CIDRs
    (``None`` back when no proxy is trusted and the IPv6 prefix is the default)."""
    if value is None or value == 0 or value == [] or value == ():
        default = ipv6_prefix == DEFAULT_IPV6_PREFIX
        return None if default else TrustedProxies(ipv6_prefix=ipv6_prefix)

    def error(message: str) -> ConfigError:
        return ConfigError(
            f"RESILIENCE['TRUSTED_PROXIES'] {message}",
            check_id="resilience.E010",
            hint="Use a hop count such as 1, or a list of networks such as ['10.0.0.0/8'].",
        )

    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_HOPS:
            raise error(f"as a hop count must be from 0 to {MAX_HOPS}")
        return TrustedProxies(hops=value, ipv6_prefix=ipv6_prefix)
    if isinstance(value, str | bool) or not isinstance(value, Iterable):
        raise error(f"= {safe_repr(value)} is not a hop count or a list")
    networks: list[Network] = []
    for item in value:
        try:
            # Only text: ipaddress also takes ints, bools and tuples (raising or warning on some).
            if not isinstance(item, str):
                raise TypeError(f"a network is written as text, not {type(item).__name__}")
            network = ipaddress.ip_network(item, strict=False)
        except (TypeError, ValueError) as exc:
            raise error(f"entry {safe_repr(item)} is not a network ({exc})") from exc
        networks.extend(unmapped_networks(network))
    return TrustedProxies(networks=tuple(networks), ipv6_prefix=ipv6_prefix)
