"""Helpers the tests use to start real services and to misbehave on purpose."""
