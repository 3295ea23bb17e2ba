"""grpcio client interceptors: the request's deadline downstream, a breaker (docs/retries.md)."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc
import grpc.aio

from ..breakers.phase import CircuitOpen
from ..deadline import DeadlineExceeded
from ._outbound import Admitted, cut_short_message, outbound_budget

__all__ = [
    "DEFAULT_FAILURE_CODES",
    "AsyncResilientClientInterceptor",
    "CircuitOpen",
    "DeadlineExceeded",
    "DeadlineExceededAioRpcError",
    "DeadlineExceededRpcError",
    "ResilientClientInterceptor",
]

_S = grpc.StatusCode
#: Status codes that say the dependency is unwell, as opposed to the request being wrong.
DEFAULT_FAILURE_CODES: frozenset[Any] = frozenset(
    (_S.UNAVAILABLE, _S.DEADLINE_EXCEEDED, _S.INTERNAL, _S.UNKNOWN, _S.RESOURCE_EXHAUSTED)
)


class _Details(grpc.ClientCallDetails):  # type: ignore[misc]
    """The caller's call details with our timeout (grpc reads the fields by name)."""

    def __init__(self, details: Any, timeout: float) -> None:
        self.method, self.metadata = details.method, details.metadata
        self.credentials, self.timeout = details.credentials, timeout
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


# grpc core rounds its deadline: a DEADLINE_EXCEEDED this close to our timeout is the timeout's.
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


class _Call(Admitted):
    """One call: its breaker token, and the timeout the budget set (``None``: the caller's)."""

    __slots__ = ("codes", "timeout")

    def __init__(self, interceptor: _Base, timeout: float | None) -> None:
        self.codes, self.timeout = interceptor.failure_codes, timeout
        super().__init__(interceptor.breaker)

    def cut(self, code: Any) -> bool:
        """Whether the timeout the budget set ended the call."""
        return (
            self.timeout is not None
            and code is grpc.StatusCode.DEADLINE_EXCEEDED
            and time.monotonic() - self.started >= self.timeout - _TIMEOUT_SLACK
        )

    def ended(self, code: Any) -> None:
        # No word on the dependency when the caller's budget ran out or the caller cancelled.
        cancelled = code is grpc.StatusCode.CANCELLED or code is None
        if self.cut(code) or (cancelled and code not in self.codes):
            self.verdict(None)
        else:
            self.verdict(code in self.codes)

    def translate(self, exc: BaseException) -> BaseException:
        """Ours in place of grpc's error when the budget's timeout ended the call."""
        if isinstance(exc, DeadlineExceeded) or not isinstance(exc, grpc.RpcError):
            return exc
        code = getattr(exc, "code", None)
        if not callable(code) or not self.cut(code()):
            return exc
        ours = DeadlineExceededRpcError(cut_short_message(exc), exc)
        ours.__cause__ = exc
        return ours

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None and (ours := self.translate(exc)) is not exc:
            raise ours


class _BudgetCall(grpc.Call, grpc.Future):  # type: ignore[misc]
    """The call grpcio gave us, raising :class:`DeadlineExceededRpcError` where it would raise
    its own error for a call the budget's timeout ended; everything else is delegated."""

    def __init__(self, call: Any, judge: _Call) -> None:
        self._call, self._judge = call, judge

    def result(self, timeout: float | None = None) -> Any:
        with self._judge:
            return self._call.result(timeout)

    def exception(self, timeout: float | None = None) -> Any:
        exc = self._call.exception(timeout)
        return exc if exc is None else self._judge.translate(exc)

    def add_done_callback(self, fn: Callable[[Any], Any]) -> None:
        self._call.add_done_callback(lambda _call: fn(self))

    # a server-streaming call is also an iterator of responses
    def __iter__(self) -> _BudgetCall:
        return self

    def __next__(self) -> Any:
        with self._judge:
            return next(self._call)


# grpc.Call and grpc.Future declare these abstract; _BudgetCall hands them to the call.
_DELEGATED = """traceback cancel cancelled running done initial_metadata trailing_metadata code
    details is_active time_remaining add_callback"""
for _name in _DELEGATED.split():
    setattr(_BudgetCall, _name, lambda self, *args, _n=_name: getattr(self._call, _n)(*args))
abc.update_abstractmethods(_BudgetCall)


class _Base:
    __slots__ = ("breaker", "failure_codes", "margin")

    def __init__(
        self,
        breaker: str | None = None,
        margin: float | None = None,
        *,
        failure_codes: Iterable[Any] = DEFAULT_FAILURE_CODES,
    ) -> None:
        self.breaker, self.margin, self.failure_codes = breaker, margin, frozenset(failure_codes)

    def _start(self, details: Any, replace: Callable[[Any, float], Any]) -> tuple[Any, _Call]:
        # The deadline first: a call refused for it must not take a half-open trial slot.
        budget = outbound_budget(self.margin)
        timeout = None
        if budget is not None:
            seconds = budget[1] / 1000.0  # remaining minus the margin, as announced over HTTP
            if details.timeout is None or seconds < details.timeout:
                timeout = seconds
                details = replace(details, seconds)
        return details, _Call(self, timeout)


class ResilientClientInterceptor(
    _Base,
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    """Bounds each unary and server-streaming call by the request's budget; feeds a breaker."""

    __slots__ = ()

    def _intercept(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        details, judge = self._start(client_call_details, _Details)
        try:
            call = continuation(details, request)
        except BaseException as exc:
            judge.verdict(True, exc)
            raise
        if judge.admitted is not None:
            # At once for a blocking call, on grpc's thread for a future or stream: never blocks.
            call.add_done_callback(lambda finished: judge.ended(finished.code()))
        return call if judge.timeout is None else _BudgetCall(call, judge)

    intercept_unary_unary = intercept_unary_stream = _intercept


class AsyncResilientClientInterceptor(
    _Base,
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
):
    """The ``grpc.aio`` twin of :class:`ResilientClientInterceptor`, for unary-unary calls;
    refusals (``DeadlineExceeded``, ``CircuitOpen``) are raised when the call is awaited."""

    __slots__ = ()

    async def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        details, judge = self._start(client_call_details, lambda d, t: d._replace(timeout=t))
        if judge.admitted is None and judge.timeout is None:
            return await continuation(details, request)
        try:
            call = await continuation(details, request)
            # aio's code() is a coroutine, which a done callback cannot await.
            code = await call.code()
        except BaseException as exc:
            judge.verdict(True, exc)
            raise
        judge.ended(code)
        if judge.cut(code):
            raise DeadlineExceededAioRpcError(
                cut_short_message(str(code)),
                details=await call.details(),
                initial=await call.initial_metadata(),
                trailing=await call.trailing_metadata(),
            )
        return call
