"""docs/metrics.md and the Grafana dashboard stay in step with the metrics actually registered."""

from __future__ import annotations

import json
import re
from pathlib import Path

from resilience_django import metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def registered_samples() -> set[str]:
    names = set()
    for kind, name, *_ in metrics._SPECS.values():
        if kind == "Counter":
            names.add(name + "_total")
        elif kind == "Histogram":
            names.update(name + s for s in ("_bucket", "_count", "_sum"))
        else:
            names.add(name)
    return names


def test_every_metric_is_documented_with_its_labels():
    text = (DOCS / "metrics.md").read_text()
    for kind, name, _doc, labels, _extra in metrics._SPECS.values():
        full = name + "_total" if kind == "Counter" else name
        row = next((line for line in text.splitlines() if line.startswith(f"| `{full}`")), None)
        assert row is not None, full
        for label in labels:
            assert f"`{label}`" in row, (full, label)


def test_every_gauge_mode_is_documented():
    text = (DOCS / "metrics.md").read_text()
    for kind, name, _doc, _labels, extra in metrics._SPECS.values():
        if kind == "Gauge":
            assert f"| `{name}` | `{extra['multiprocess_mode']}` |" in text, name


def test_the_dashboard_queries_only_metrics_that_exist():
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"resilience_[a-z_]+", e)}
    assert used <= registered_samples(), used - registered_samples()
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("breaker states", "rejections by rule", "deadline", "redis", "fallback"):
        assert topic in titles, topic
