"""Adapters that carry the request's deadline into outbound calls and queries."""
