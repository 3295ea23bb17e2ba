"""Observability helpers: OpenTelemetry linkage, metrics settings and exposition, log fields.

Nothing here imports Django at module level except where noted, and nothing
imports prometheus-client or OpenTelemetry before it is needed.
"""
