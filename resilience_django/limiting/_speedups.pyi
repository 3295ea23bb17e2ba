# The C module built from _speedups.c; see speedups.py and algorithms.py.
from typing import Any

class Outcome:
    check: Any
    allowed: bool
    remaining: int
    reset_after: float
    retry_after: float
    def __init__(
        self, check: Any, allowed: bool, remaining: int, reset_after: float, retry_after: float
    ) -> None: ...

class Decision:
    allowed: bool
    outcomes: tuple[Any, ...]
    backend: str
    def __init__(self, allowed: bool, outcomes: tuple[Any, ...], backend: str = ...) -> None: ...

class SlidingWindow:
    limit: int
    period: float
    buckets: int
    width: float
    tag: str
    _zeros: tuple[int, ...]
    def __init__(self, limit: int, period: float, buckets: int = ...) -> None: ...
    def new_state(self, now: float) -> list[Any]: ...
    def acquire(self, state: list[Any], now: float, cost: int) -> bool: ...
    def outcome(self, state: list[Any], now: float, check: Any) -> Any: ...

class TokenBucket:
    limit: int
    period: float
    capacity: int
    rate: float
    tag: str
    def __init__(self, limit: int, period: float, capacity: int) -> None: ...
    def new_state(self, now: float) -> list[Any]: ...
    def acquire(self, state: list[Any], now: float, cost: int) -> bool: ...
    def outcome(self, state: list[Any], now: float, check: Any) -> Any: ...

class Gcra:
    limit: int
    period: float
    capacity: int
    interval: float
    tau: float
    slack: float
    tag: str
    def __init__(self, limit: int, period: float, capacity: int) -> None: ...
    def new_state(self, now: float) -> list[Any]: ...
    def acquire(self, state: list[Any], now: float, cost: int) -> bool: ...
    def outcome(self, state: list[Any], now: float, check: Any) -> Any: ...

def in_main_interpreter() -> bool: ...
def register(outcome_class: type[Outcome], decision_class: type[Decision]) -> None: ...
def decide_one(
    states: Any, capacity: int, key: tuple[str, str], kernel: Any, now: float, check: Any
) -> Any: ...
def admit_one(
    states: Any, capacity: int, key: tuple[str, str], kernel: Any, now: float, cost: int
) -> bool: ...
def decision(allowed: bool, outcomes: tuple[Any, ...], backend: str) -> Any: ...
def decide_single(
    shards: tuple[tuple[Any, int, Any], ...],
    mask: int,
    compiled: dict[Any, tuple[Any, Any, str]],
    check: Any,
    now: float,
    locked: bool,
) -> Any: ...

class ShardLock:
    def acquire(self) -> bool: ...
    def release(self) -> None: ...
    def locked(self) -> bool: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *exc: object) -> bool: ...

def decide_single_on_loop(
    shards: tuple[tuple[Any, int, Any], ...],
    mask: int,
    compiled: dict[Any, tuple[Any, Any, str]],
    check: Any,
    now: float,
    gate: HandOff,
) -> Any: ...

class HandOff:
    loop_thread: int
    locking: bool
    drained: bool
    busy: bool
