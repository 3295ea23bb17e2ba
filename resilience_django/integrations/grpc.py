"""grpcio client interceptors that carry the request's deadline downstream and feed a breaker.

>>> import grpc
>>> from resilience_django.integrations.grpc import ResilientClientInterceptor
>>> channel = grpc.intercept_channel(
...     grpc.insecure_channel("pricing.internal:50051"),
...     ResilientClientInterceptor(breaker="pricing"),
... )

For ``grpc.aio`` channels use :class:`AsyncResilientClientInterceptor` (unary
calls): ``grpc.aio.insecure_channel(target, interceptors=[...])``.

* **Deadline.**  Inside a request each call's timeout becomes the smaller of
  the caller's own ``timeout=`` and the remaining budget minus the outbound
  margin (``DEADLINE["OUTBOUND_MARGIN"]``, or ``margin=``).  grpcio turns
  that timeout into the ``grpc-timeout`` header, so the server sees the same
  deadline, and cancels the call locally when it passes.  With no budget left
  the call is refused with ``DeadlineExceeded`` before anything is sent.
* **Breaker.**  With ``breaker="name"`` a call that ends with a status in
  ``failure_codes`` (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN,
  RESOURCE_EXHAUSTED by default) counts as a failure; OK and the caller's own
  mistakes (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, ...) count as
  successes, since the dependency answered; CANCELLED gives no verdict.  An
  open breaker raises ``CircuitOpen`` without calling.

Where the refusal surfaces is grpcio's choice: a blocking unary call (``stub.M(req)``,
``.with_call``) raises it directly; ``.future()`` returns a failed future whose
``result()`` raises it; a server-streaming call returns an iterator that raises
it on the first ``next()``.  The verdict of a ``.future()`` or streaming call is
recorded when the call ends, from grpcio's done callback, so the interceptor
never blocks a call that the caller meant to run in the background.

Retries are left to grpcio's own retry policy (the channel's service config),
which already honours the deadline this interceptor sets.
"""

from __future__ import annotations

import time
from collections import namedtuple
from collections.abc import Callable, Iterable
from typing import Any

import grpc
import grpc.aio

from ..breakers.phase import CircuitOpen, Phase
from ..breakers.registry import get_breaker
from ..breakers.state import Breaker
from ..deadline import DeadlineExceeded
from ._outbound import outbound_budget

__all__ = [
    "DEFAULT_FAILURE_CODES",
    "AsyncResilientClientInterceptor",
    "CircuitOpen",
    "DeadlineExceeded",
    "ResilientClientInterceptor",
]

#: Status codes that say the dependency is unwell, as opposed to the request being wrong.
DEFAULT_FAILURE_CODES: frozenset[Any] = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

_DetailsFields = namedtuple(  # grpc reads these fields by name
    "_DetailsFields",
    ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
)


class _Details(_DetailsFields, grpc.ClientCallDetails):  # type: ignore[misc]
    """The caller's call details with our timeout; grpc wants a ``ClientCallDetails``."""


def _bounded_timeout(caller: float | None, margin: float | None) -> float | None:
    """The caller's timeout capped by the request's budget; raises ``DeadlineExceeded``."""
    budget = outbound_budget(margin)
    if budget is None:
        return caller
    seconds = budget[1] / 1000.0  # remaining minus the margin, as announced over HTTP
    return seconds if caller is None else min(caller, seconds)


class _Base:
    __slots__ = ("breaker", "failure_codes", "margin")

    def __init__(
        self,
        breaker: str | None = None,
        margin: float | None = None,
        *,
        failure_codes: Iterable[Any] = DEFAULT_FAILURE_CODES,
    ) -> None:
        self.breaker = breaker
        self.margin = margin
        self.failure_codes = frozenset(failure_codes)

    def _admit(self) -> tuple[Breaker, Phase] | None:
        # Callers read the deadline first: a call refused for a spent budget
        # must not have taken a half-open trial slot it would never use.
        if self.breaker is None:
            return None
        breaker = get_breaker(self.breaker)
        return breaker, breaker.acquire()  # raises CircuitOpen without calling

    def _verdict(self, admitted: tuple[Breaker, Phase], code: Any, duration: float) -> None:
        breaker, token = admitted
        if code in self.failure_codes:
            breaker.record_failure(token, duration)
        elif code is grpc.StatusCode.CANCELLED or code is None:
            breaker.release(token)  # cancelled by the caller: no word on the dependency
        else:
            breaker.record_success(token, duration)


class ResilientClientInterceptor(
    _Base,
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    """Bounds each unary and server-streaming call by the request's budget; feeds a breaker.

    ``breaker`` names the breaker (``RESILIENCE["BREAKERS"]`` configures it),
    ``margin`` overrides ``DEADLINE["OUTBOUND_MARGIN"]`` (seconds), and
    ``failure_codes`` replaces :data:`DEFAULT_FAILURE_CODES`.
    """

    __slots__ = ()

    def _intercept(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        timeout = _bounded_timeout(details.timeout, self.margin)
        admitted = self._admit()
        if timeout is not details.timeout:
            details = _Details(
                details.method,
                timeout,
                details.metadata,
                details.credentials,
                getattr(details, "wait_for_ready", None),
                getattr(details, "compression", None),
            )
        if admitted is None:
            return continuation(details, request)
        started = time.monotonic()
        try:
            call = continuation(details, request)
        except BaseException as exc:
            breaker, token = admitted
            breaker.record_failure(token, time.monotonic() - started, exc=exc)
            raise

        def done(finished: Any) -> None:
            # Runs at once for a finished blocking call, or on grpc's thread
            # when a future or stream ends.
            self._verdict(admitted, finished.code(), time.monotonic() - started)

        call.add_done_callback(done)
        return call

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        """Called by grpcio for each unary-unary call."""
        return self._intercept(continuation, client_call_details, request)

    def intercept_unary_stream(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        """Called by grpcio for each unary-stream call."""
        return self._intercept(continuation, client_call_details, request)


class AsyncResilientClientInterceptor(
    _Base,
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
):
    """The ``grpc.aio`` twin of :class:`ResilientClientInterceptor`, for unary-unary calls.

    Refusals (``DeadlineExceeded``, ``CircuitOpen``) are raised when the call
    is awaited.
    """

    __slots__ = ()

    async def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        """Called by grpcio for each unary-unary call on an aio channel."""
        details = client_call_details
        timeout = _bounded_timeout(details.timeout, self.margin)
        admitted = self._admit()
        if timeout is not details.timeout:
            # aio's ClientCallDetails is a namedtuple.
            details = details._replace(timeout=timeout)
        if admitted is None:
            return await continuation(details, request)
        started = time.monotonic()
        try:
            call = await continuation(details, request)
            # aio's code() is a coroutine, so a done callback cannot read it;
            # the caller awaits this unary call's end anyway.
            code = await call.code()
        except BaseException as exc:
            breaker, token = admitted
            breaker.record_failure(token, time.monotonic() - started, exc=exc)
            raise
        self._verdict(admitted, code, time.monotonic() - started)
        return call
