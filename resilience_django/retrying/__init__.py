"""Retries for outbound calls: full-jitter backoff, deadlines, budgets, client-side throttling.

``retry`` is re-exported as ``resilience_django.retry``.  The documented
order around an outbound call is deadline -> retry -> breaker -> bulkhead ->
call: the deadline bounds everything, retries wrap the breaker so an open
circuit stops them, and each attempt takes its own bulkhead slot.
"""

from __future__ import annotations

from .backoff import RETRY_STATUSES, full_jitter, parse_retry_after, retry_after_of
from .budget import RetryBudget, budget_for
from .policy import RetryPolicy, default_retry_on, default_retry_on_result, retry
from .throttle import AdaptiveThrottle, LocallyThrottled, throttle_for

__all__ = ["RETRY_STATUSES", "AdaptiveThrottle", "LocallyThrottled", "RetryBudget",
           "RetryPolicy", "budget_for", "default_retry_on",
           "default_retry_on_result", "full_jitter", "parse_retry_after", "retry",
           "retry_after_of", "throttle_for"]  # fmt: skip
