"""Retries for outbound calls (docs/retries.md); ``retry`` is ``resilience_django.retry``."""

from __future__ import annotations

from .backoff import RETRY_STATUSES, full_jitter, parse_retry_after, retry_after_of
from .budget import RetryBudget, budget_for
from .policy import RetryPolicy, default_retry_on, default_retry_on_result, retry
from .throttle import AdaptiveThrottle, LocallyThrottled, throttle_for

__all__ = ["RETRY_STATUSES", "AdaptiveThrottle", "LocallyThrottled", "RetryBudget",
           "RetryPolicy", "budget_for", "default_retry_on",
           "default_retry_on_result", "full_jitter", "parse_retry_after", "retry",
           "retry_after_of", "throttle_for"]  # fmt: skip
