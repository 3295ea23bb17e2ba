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
* **The budget's own timeout.**  When the call ends in DEADLINE_EXCEEDED
  because the timeout the budget set ran out (the budget, not the caller's
  ``timeout=``, was the smaller one), the caller's budget is spent, not the
  dependency's patience: the breaker records no verdict and the call raises
  :class:`DeadlineExceededRpcError` (:class:`DeadlineExceededAioRpcError` on
  ``grpc.aio``), both a ``DeadlineExceeded`` (the middleware answers 504) and
  a ``grpc.RpcError`` whose ``code()`` is DEADLINE_EXCEEDED.  A timeout of the
  caller's own, or a DEADLINE_EXCEEDED the server sends before the timeout,
  still counts as a failure.

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
from ._outbound import cut_short_message, outbound_budget

__all__ = [
    "DEFAULT_FAILURE_CODES",
    "AsyncResilientClientInterceptor",
    "CircuitOpen",
    "DeadlineExceeded",
    "DeadlineExceededAioRpcError",
    "DeadlineExceededRpcError",
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


# grpc core may end a call a hair before its timeout by our clock (it rounds the
# deadline it keeps); a DEADLINE_EXCEEDED this close to the timeout is the timeout's.
_TIMEOUT_SLACK = 0.02


class DeadlineExceededRpcError(DeadlineExceeded, grpc.RpcError):  # type: ignore[misc]
    """A DEADLINE_EXCEEDED the request's budget caused; ``code()``, ``details()`` as grpc's."""

    def __init__(self, message: str, call: Any) -> None:
        super().__init__(message)
        self.call = call

    def code(self) -> Any:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str | None:
        details = getattr(self.call, "details", None)
        return details() if callable(details) else None

    def trailing_metadata(self) -> Any:
        metadata = getattr(self.call, "trailing_metadata", None)
        return metadata() if callable(metadata) else None


class DeadlineExceededAioRpcError(DeadlineExceeded, grpc.aio.AioRpcError):  # type: ignore[misc]
    """The ``grpc.aio`` twin: also a ``grpc.aio.AioRpcError``."""

    def __init__(self, message: str, *, details: str | None, initial: Any, trailing: Any) -> None:
        grpc.aio.AioRpcError.__init__(
            self, grpc.StatusCode.DEADLINE_EXCEEDED, initial, trailing, details or message
        )
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


def _bounded_timeout(caller: float | None, margin: float | None) -> tuple[float | None, bool]:
    """The caller's timeout capped by the request's budget, and whether the budget set it.

    Raises ``DeadlineExceeded`` when no budget is left.
    """
    budget = outbound_budget(margin)
    if budget is None:
        return caller, False
    seconds = budget[1] / 1000.0  # remaining minus the margin, as announced over HTTP
    if caller is None or seconds < caller:
        return seconds, True
    return caller, False


class _Cut:
    """Tells whether a finished call was ended by the timeout the budget set."""

    __slots__ = ("started", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.started = time.monotonic()

    def applies(self, code: Any) -> bool:
        return (
            code is grpc.StatusCode.DEADLINE_EXCEEDED
            and time.monotonic() - self.started >= self.timeout - _TIMEOUT_SLACK
        )

    def translate(self, exc: BaseException) -> BaseException:
        """Ours in place of grpc's error when the budget's timeout ended the call."""
        if isinstance(exc, DeadlineExceeded) or not isinstance(exc, grpc.RpcError):
            return exc
        code = getattr(exc, "code", None)
        if not callable(code) or not self.applies(code()):
            return exc
        ours = DeadlineExceededRpcError(cut_short_message(exc), exc)
        ours.__cause__ = exc
        return ours


class _BudgetCall(grpc.Call, grpc.Future):  # type: ignore[misc]
    """The call grpcio gave us, raising :class:`DeadlineExceededRpcError` where it would raise
    its own error for a call the budget's timeout ended; everything else is delegated."""

    def __init__(self, call: Any, cut: _Cut) -> None:
        self._call = call
        self._cut = cut

    # grpc.Future
    def result(self, timeout: float | None = None) -> Any:
        try:
            return self._call.result(timeout)
        except grpc.RpcError as exc:
            ours = self._cut.translate(exc)
            if ours is exc:
                raise
            raise ours from exc

    def exception(self, timeout: float | None = None) -> Any:
        exc = self._call.exception(timeout)
        return exc if exc is None else self._cut.translate(exc)

    def traceback(self, timeout: float | None = None) -> Any:
        return self._call.traceback(timeout)

    def add_done_callback(self, fn: Callable[[Any], Any]) -> None:
        self._call.add_done_callback(lambda _call: fn(self))

    def cancel(self) -> bool:
        return bool(self._call.cancel())

    def cancelled(self) -> bool:
        return bool(self._call.cancelled())

    def running(self) -> bool:
        return bool(self._call.running())

    def done(self) -> bool:
        return bool(self._call.done())

    # grpc.Call / grpc.RpcContext
    def initial_metadata(self) -> Any:
        return self._call.initial_metadata()

    def trailing_metadata(self) -> Any:
        return self._call.trailing_metadata()

    def code(self) -> Any:
        return self._call.code()

    def details(self) -> Any:
        return self._call.details()

    def is_active(self) -> bool:
        return bool(self._call.is_active())

    def time_remaining(self) -> Any:
        return self._call.time_remaining()

    def add_callback(self, callback: Callable[[], Any]) -> Any:
        return self._call.add_callback(callback)

    # a server-streaming call is also an iterator of responses
    def __iter__(self) -> _BudgetCall:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._call)
        except grpc.RpcError as exc:
            ours = self._cut.translate(exc)
            if ours is exc:
                raise
            raise ours from exc


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

    def _verdict(
        self, admitted: tuple[Breaker, Phase], code: Any, duration: float, cut: _Cut | None
    ) -> None:
        breaker, token = admitted
        if cut is not None and cut.applies(code):
            breaker.release(token)  # the caller's budget ran out: no word on the dependency
        elif code in self.failure_codes:
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
        timeout, capped = _bounded_timeout(details.timeout, self.margin)
        admitted = self._admit()
        if capped:
            details = _Details(
                details.method,
                timeout,
                details.metadata,
                details.credentials,
                getattr(details, "wait_for_ready", None),
                getattr(details, "compression", None),
            )
        cut = _Cut(timeout) if capped and timeout is not None else None
        if admitted is None:
            call = continuation(details, request)
            return call if cut is None else _BudgetCall(call, cut)
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
            self._verdict(admitted, finished.code(), time.monotonic() - started, cut)

        call.add_done_callback(done)
        return call if cut is None else _BudgetCall(call, cut)

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
        timeout, capped = _bounded_timeout(details.timeout, self.margin)
        admitted = self._admit()
        if capped:
            # aio's ClientCallDetails is a namedtuple.
            details = details._replace(timeout=timeout)
        cut = _Cut(timeout) if capped and timeout is not None else None
        if admitted is None and cut is None:
            return await continuation(details, request)
        started = time.monotonic()
        try:
            call = await continuation(details, request)
            # aio's code() is a coroutine, so a done callback cannot read it;
            # the caller awaits this unary call's end anyway.
            code = await call.code()
        except BaseException as exc:
            if admitted is not None:
                breaker, token = admitted
                breaker.record_failure(token, time.monotonic() - started, exc=exc)
            raise
        if admitted is not None:
            self._verdict(admitted, code, time.monotonic() - started, cut)
        if cut is not None and cut.applies(code):
            raise DeadlineExceededAioRpcError(
                cut_short_message(str(code)),
                details=await call.details(),
                initial=await call.initial_metadata(),
                trailing=await call.trailing_metadata(),
            )
        return call
