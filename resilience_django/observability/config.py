"""``RESILIENCE["METRICS"]``: who may read the metrics view (docs/settings.md).  Anything
unparseable falls back to the closed default: a bad setting must never open the endpoint."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigError
from ..limiting.proxies import unmapped_networks
from ..units import safe_repr

__all__ = ["MIN_TOKEN_LENGTH", "MetricsSettings", "deploy_warnings", "parse_metrics"]

KNOWN_KEYS = frozenset({"ENABLED", "ALLOWED_NETWORKS", "BEARER_TOKEN", "ALLOW_STAFF"})
MIN_TOKEN_LENGTH = 16
_WHERE = "RESILIENCE['METRICS']"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_LOOPBACK = {4: ipaddress.ip_network("127.0.0.0/8"), 6: ipaddress.ip_network("::1")}


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """The parsed metrics view settings; the default is off."""

    enabled: bool = False
    allowed_networks: tuple[Network, ...] = ()
    bearer_token: str | None = None
    allow_staff: bool = True


def _networks(value: Any, errors: list[ConfigError]) -> tuple[Network, ...]:
    where = f"{_WHERE}['ALLOWED_NETWORKS']"
    if value is None:
        return ()
    if not isinstance(value, list | tuple):  # a string too
        hint = "For example ['10.0.0.5/32'] (your Prometheus servers)."
        message = f"{where} must be a list of networks, not {safe_repr(value)}"
        errors.append(ConfigError(message, check_id="resilience.E093", hint=hint))
        return ()
    networks: list[Network] = []
    for entry in value:
        try:
            if not isinstance(entry, str):  # ipaddress raises IndexError on some tuples
                raise TypeError(entry)
            # Peers are unmapped (::ffff:10.0.0.1 is 10.0.0.1): so are the networks.
            networks.extend(unmapped_networks(ipaddress.ip_network(entry, strict=False)))
        except (TypeError, ValueError):
            hint = "Use CIDR notation such as '10.0.0.0/8' or a single address."
            message = f"{where} has {safe_repr(entry)}, which is not an IP network"
            errors.append(ConfigError(message, check_id="resilience.E094", hint=hint))
    return tuple(networks)


def _token(value: Any, errors: list[ConfigError]) -> str | None:
    if value is None or (isinstance(value, str) and len(value) >= MIN_TOKEN_LENGTH):
        return value
    where = f"{_WHERE}['BEARER_TOKEN']"
    if not isinstance(value, str) or not value:
        hint = "Read it from the environment, e.g. os.environ['METRICS_TOKEN']."
        message, id_ = f"{where} must be a non-empty string", "resilience.E095"
    else:
        hint = "Use a random token, e.g. from secrets.token_urlsafe()."
        message, id_ = f"{where} is shorter than {MIN_TOKEN_LENGTH} characters", "resilience.E096"
    errors.append(ConfigError(message, check_id=id_, hint=hint))
    return None


def parse_metrics(raw: Any, errors: list[ConfigError]) -> MetricsSettings:
    """Parse ``RESILIENCE["METRICS"]`` (``None`` means absent); append problems to ``errors``."""
    from ..conf import _checked, _mapping, _unknown_keys  # conf imports this module

    hint = "For example {'ENABLED': True, 'ALLOWED_NETWORKS': ['10.0.0.5/32']}."
    if raw is None or (raw := _mapping(errors, raw, _WHERE, "resilience.E090", hint)) is None:
        return MetricsSettings()
    _unknown_keys(errors, raw, sorted(KNOWN_KEYS), _WHERE, "resilience.E091")
    must, is_bool = "must be True or False", (lambda v: isinstance(v, bool))
    for key, default, id_ in [
        ("ENABLED", False, "resilience.E092"),
        ("ALLOW_STAFF", True, "resilience.E097"),
    ]:
        _checked(errors, raw, _WHERE, key, default, is_bool, id_, must, f"Use {key}: {default}.")
    settings = MetricsSettings(
        # A typo closes rather than opens: never an open endpoint, "false" lets no staff in.
        enabled=raw.get("ENABLED") is True,
        allowed_networks=_networks(raw.get("ALLOWED_NETWORKS"), errors),
        bearer_token=_token(raw.get("BEARER_TOKEN"), errors),
        allow_staff=raw.get("ALLOW_STAFF", True) is True,
    )
    if settings.enabled:
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            hint = "pip install prometheus-client, or set ENABLED to False."
            message = f"{_WHERE} is enabled but prometheus-client is not installed"
            errors.append(ConfigError(message, check_id="resilience.E098", hint=hint))
    return settings


def deploy_warnings(settings: MetricsSettings) -> list[ConfigError]:
    """Deploy-time concerns: the view open to any address (``resilience.W090``), or to loopback,
    which behind a reverse proxy on the same host is everyone the proxy serves (``W092``)."""
    networks = settings.allowed_networks if settings.enabled else ()
    where = f"{_WHERE}['ALLOWED_NETWORKS']"
    if not all(n.prefixlen for n in networks):
        hint = "Restrict it to your Prometheus servers' networks, or use BEARER_TOKEN."
        return [ConfigError(f"{where} admits every address", check_id="resilience.W090", hint=hint)]
    if any(n.overlaps(_LOOPBACK[n.version]) for n in networks):
        hint = "List the Prometheus server's own address instead, or use BEARER_TOKEN."
        message = f"{where} admits loopback: behind a proxy on this host, everyone it serves"
        return [ConfigError(message, check_id="resilience.W092", hint=hint)]
    return []
