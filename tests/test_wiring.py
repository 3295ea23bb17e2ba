"""wiring.connect(): done only once every step succeeded, and only then for every thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from resilience_django import wiring
from resilience_django.breakers.registry import BreakerRegistry


class _Registry(BreakerRegistry):
    """A fresh registry whose first ``add_listener`` can fail or block."""

    def __init__(self, *, fail: bool = False, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.fail, self.gate, self.entered = fail, gate, threading.Event()
        self.wired = False

    def add_listener(self, listener: Any) -> None:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.fail:
            self.fail = False
            raise RuntimeError("wiring failed midway")
        super().add_listener(listener)

    def set_policy_source(self, policy: Any, names: Any = tuple) -> None:
        wiring.connect()  # the settings' first parse calls back: must return at once
        super().set_policy_source(policy, names)
        self.wired = True


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Any:
    def use(registry: _Registry) -> _Registry:
        monkeypatch.setattr(wiring, "registry", registry)
        monkeypatch.setattr(wiring, "_connected", False)
        return registry

    return use


def test_a_failure_midway_is_retried_by_the_next_call(fresh: Any) -> None:
    registry = fresh(_Registry(fail=True))
    with pytest.raises(RuntimeError):
        wiring.connect()
    assert not registry.wired
    wiring.connect()
    assert registry.wired


def test_a_concurrent_caller_returns_only_once_wiring_is_done(fresh: Any) -> None:
    gate = threading.Event()
    registry = fresh(_Registry(gate=gate))
    seen: list[bool] = []
    first = threading.Thread(target=wiring.connect)
    second = threading.Thread(target=lambda: (wiring.connect(), seen.append(registry.wired)))
    first.start()
    assert registry.entered.wait(10)  # the first call is inside the steps
    second.start()
    second.join(0.5)  # the old code let it return here, before the signals were connected
    gate.set()
    first.join(10)
    second.join(10)
    assert seen == [True]
