"""OpenTelemetry linkage, metrics settings and exposition, log fields: no Django at module
level, and prometheus-client or OpenTelemetry imported only when needed."""
