"""Render one scrape; Django-free, so the view stays a thin adapter."""

from __future__ import annotations

import os

__all__ = ["PrometheusMissing", "render"]


class PrometheusMissing(RuntimeError):
    """prometheus-client is not installed, so there is nothing to render."""


def render(accept: str = "") -> tuple[bytes, str]:
    """The exposition body and its content type, negotiated from ``accept`` (OpenMetrics
    carries exemplars).  In multiprocess mode, the whole server: every worker's files."""
    try:
        from prometheus_client import REGISTRY, CollectorRegistry
        from prometheus_client.exposition import choose_encoder
    except ImportError as exc:
        raise PrometheusMissing("prometheus-client is not installed") from exc

    # Register our collectors even if nothing has reported yet, so a scrape
    # right after start shows the families (with no samples) rather than nothing.
    from .. import metrics

    metrics.enabled()
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
