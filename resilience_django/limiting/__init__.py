"""Admission control: rate-limit algorithms, stores, rules, keys and the engine that ties them."""
