"""Which peers may tell us the client's address: ``RESILIENCE["TRUSTED_PROXIES"]``.

``X-Forwarded-For`` is written by whoever sends the request, so it is only
read when the peer is a proxy we trust; a bad setting is ``resilience.E010``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from ..exceptions import ConfigError

__all__ = ["TrustedProxies", "parse_trusted_proxies"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrustedProxies:
    """How far to trust ``X-Forwarded-For``.

    ``hops=n``: exactly ``n`` proxies append to the header before us; the
    client is the address ``n`` places left of ``REMOTE_ADDR`` in the chain
    ``X-Forwarded-For + [REMOTE_ADDR]``.  ``networks``: walk that chain from
    the right, skipping addresses inside the trusted networks; the first
    address outside them is the client.  Either way, a peer that is not a
    trusted proxy is itself the client, whatever header it sends.
    """

    __slots__ = ("hops", "networks")

    def __init__(self, hops: int = 0, networks: tuple[Network, ...] = ()) -> None:
        self.hops = hops
        self.networks = networks

    def _trusted(self, address: str) -> bool:
        try:
            ip: Address = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def client_ip(self, remote: str | None, forwarded_for: str | None) -> str | None:
        if not remote:
            return None
        if self.hops:
            if not forwarded_for:
                return remote
            chain = [*(a.strip() for a in forwarded_for.split(",")), remote]
            # A chain shorter than the hop count was not built by our proxies;
            # its leftmost entry is the best we know.
            return chain[-(self.hops + 1)] if len(chain) > self.hops else chain[0]
        if not self.networks or not self._trusted(remote):
            return remote
        client = remote
        if forwarded_for:
            for address in reversed([a.strip() for a in forwarded_for.split(",")]):
                if not address:
                    continue
                client = address
                if not self._trusted(address):
                    break
        return client


def parse_trusted_proxies(value: Any) -> TrustedProxies | None:
    """Parse ``RESILIENCE["TRUSTED_PROXIES"]``: ``None``, a hop count or a list of CIDRs."""
    if value is None or value == 0 or value == [] or value == ():
        return None
    hint = "Use a hop count such as 1, or a list of networks such as ['10.0.0.0/8']."
    if isinstance(value, bool):
        raise ConfigError(
            f"RESILIENCE['TRUSTED_PROXIES'] = {value!r} is not a hop count or a list",
            check_id="resilience.E010",
            hint=hint,
        )
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(
                "RESILIENCE['TRUSTED_PROXIES'] must not be negative",
                check_id="resilience.E010",
                hint=hint,
            )
        return TrustedProxies(hops=value)
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(
            f"RESILIENCE['TRUSTED_PROXIES'] = {value!r} is not a hop count or a list",
            check_id="resilience.E010",
            hint=hint,
        )
    networks: list[Network] = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"RESILIENCE['TRUSTED_PROXIES'] entry {item!r} is not a network ({exc})",
                check_id="resilience.E010",
                hint=hint,
            ) from exc
    return TrustedProxies(networks=tuple(networks))
