"""``RESILIENCE["METRICS"]``: who may read the metrics view.

Parsing never raises: problems become ``ConfigError`` values (ids
``resilience.E090``-``E098``, deploy warning ``resilience.W090``) for the system
checks, and whatever did parse stays usable.  Anything unparseable falls back
to the closed default: a bad setting must never open the endpoint.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigError

__all__ = ["MIN_TOKEN_LENGTH", "MetricsSettings", "deploy_warnings", "parse_metrics"]

KNOWN_KEYS = frozenset({"ENABLED", "ALLOWED_NETWORKS", "BEARER_TOKEN", "ALLOW_STAFF"})
MIN_TOKEN_LENGTH = 16

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """The parsed metrics view settings; the default is off."""

    enabled: bool = False
    allowed_networks: tuple[Network, ...] = ()
    bearer_token: str | None = None
    allow_staff: bool = True


def _where(key: str) -> str:
    return f"RESILIENCE['METRICS']['{key}']"


def _bool(
    raw: Mapping[str, Any], key: str, default: bool, check_id: str, errors: list[ConfigError]
) -> bool:
    value = raw.get(key, default)
    if isinstance(value, bool):
        return value
    message = f"{_where(key)} must be True or False, not {value!r}"
    errors.append(ConfigError(message, check_id=check_id, hint=f"Use {key}: {default}."))
    # A typo must not switch the endpoint on: ENABLED falls back to off.
    return False if key == "ENABLED" else default


def _networks(value: Any, errors: list[ConfigError]) -> tuple[Network, ...]:
    where = _where("ALLOWED_NETWORKS")
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        hint = "For example ['127.0.0.1/32', '10.0.0.0/8']."
        message = f"{where} must be a list of networks, not {value!r}"
        errors.append(ConfigError(message, check_id="resilience.E093", hint=hint))
        return ()
    networks: list[Network] = []
    for entry in value:
        try:
            if not isinstance(entry, str):  # ipaddress raises IndexError on some tuples
                raise TypeError(entry)
            networks.append(ipaddress.ip_network(entry, strict=False))
        except (TypeError, ValueError):
            hint = "Use CIDR notation such as '10.0.0.0/8' or a single address."
            message = f"{where} has {entry!r}, which is not an IP network"
            errors.append(ConfigError(message, check_id="resilience.E094", hint=hint))
    return tuple(networks)


def _token(value: Any, errors: list[ConfigError]) -> str | None:
    where = _where("BEARER_TOKEN")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        hint = "Read it from the environment, e.g. os.environ['METRICS_TOKEN']."
        message = f"{where} must be a non-empty string"
        errors.append(ConfigError(message, check_id="resilience.E095", hint=hint))
        return None
    if len(value) < MIN_TOKEN_LENGTH:
        hint = "Use a random token, e.g. from secrets.token_urlsafe()."
        message = f"{where} is shorter than {MIN_TOKEN_LENGTH} characters"
        errors.append(ConfigError(message, check_id="resilience.E096", hint=hint))
        return None
    return value


def parse_metrics(raw: Any, errors: list[ConfigError]) -> MetricsSettings:
    """Parse ``RESILIENCE["METRICS"]`` (``None`` means absent); append problems to ``errors``."""
    if raw is None:
        return MetricsSettings()
    if not isinstance(raw, Mapping):
        hint = "For example {'ENABLED': True, 'ALLOWED_NETWORKS': ['127.0.0.1/32']}."
        message = f"RESILIENCE['METRICS'] must be a dict, not {type(raw).__name__}"
        errors.append(ConfigError(message, check_id="resilience.E090", hint=hint))
        return MetricsSettings()
    for key in raw:
        if key not in KNOWN_KEYS:
            hint = f"Known keys: {', '.join(sorted(KNOWN_KEYS))}."
            message = f"RESILIENCE['METRICS'] has an unknown key {key!r}"
            errors.append(ConfigError(message, check_id="resilience.E091", hint=hint))
    enabled = _bool(raw, "ENABLED", False, "resilience.E092", errors)
    allow_staff = _bool(raw, "ALLOW_STAFF", True, "resilience.E097", errors)
    settings = MetricsSettings(
        enabled=enabled,
        allowed_networks=_networks(raw.get("ALLOWED_NETWORKS"), errors),
        bearer_token=_token(raw.get("BEARER_TOKEN"), errors),
        allow_staff=allow_staff,
    )
    if settings.enabled:
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            hint = "pip install prometheus-client, or set ENABLED to False."
            message = "RESILIENCE['METRICS'] is enabled but prometheus-client is not installed"
            errors.append(ConfigError(message, check_id="resilience.E098", hint=hint))
    return settings


def deploy_warnings(settings: MetricsSettings) -> list[ConfigError]:
    """Deploy-time concerns (``resilience.W090``): the view open to any address."""
    if not settings.enabled or all(n.prefixlen for n in settings.allowed_networks):
        return []
    hint = "Restrict it to your Prometheus servers' networks, or use BEARER_TOKEN."
    message = "RESILIENCE['METRICS']['ALLOWED_NETWORKS'] admits every address"
    return [ConfigError(message, check_id="resilience.W090", hint=hint)]
