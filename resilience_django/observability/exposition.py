"""Render one scrape: this process's default registry, or the whole server in multiprocess mode.

Django-free, so the view stays a thin adapter and tests can render directly.
"""

from __future__ import annotations

import os

__all__ = ["PrometheusMissing", "render"]


class PrometheusMissing(RuntimeError):
    """prometheus-client is not installed, so there is nothing to render."""


def render(accept: str = "") -> tuple[bytes, str]:
    """The exposition body and its content type, negotiated from ``accept``.

    ``application/openmetrics-text`` in ``accept`` selects OpenMetrics, the only
    format that carries exemplars.  With ``PROMETHEUS_MULTIPROC_DIR`` set, a
    fresh registry reads every worker's files, so one scrape shows the server;
    the default registry would show only the worker that answered.
    """
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
