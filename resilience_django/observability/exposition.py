"""Render one scrape; Django-free, so the view stays a thin adapter."""

from __future__ import annotations

import os

__all__ = ["MultiprocDirUnreadable", "PrometheusMissing", "render"]


class PrometheusMissing(RuntimeError):
    """prometheus-client is not installed, so there is nothing to render."""


class MultiprocDirUnreadable(RuntimeError):
    """``PROMETHEUS_MULTIPROC_DIR`` is missing, not a directory, or a file there is unreadable."""


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
    encoder, content_type = choose_encoder(accept)
    if not path:
        return encoder(REGISTRY), content_type
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    try:  # ValueError: not a directory; OSError: a file there cannot be read
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        return encoder(registry), content_type
    except (ValueError, OSError) as exc:
        raise MultiprocDirUnreadable(f"{path!r} cannot be read ({exc})") from exc
