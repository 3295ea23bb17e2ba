"""Read metrics back the way Prometheus does: exposition text through prometheus-client's parser."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families


def families(text: str | None = None) -> dict[str, object]:
    """Families by name (counters without their ``_total``), as the parser gives them."""
    if text is None:
        text = generate_latest(REGISTRY).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(sample: str, text: str | None = None, **labels: str) -> float:
    """The value of the sample named ``sample`` with exactly ``labels`` (0.0 when absent)."""
    if text is None:
        text = generate_latest(REGISTRY).decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    return 0.0
