"""Every process's breakers, visible and steerable across the fleet.

A daemon thread per process (never the request path):

* publishes a snapshot of this process's breakers at most once a second and
  right after every transition;
* polls the command version about twice a second and applies operator commands
  (``force_open``, ``force_close``, ``reset``, ``disable``);
* for breakers in shared mode, writes an open-until marker when this process
  opens one, and reads the markers every ``shared_poll`` so every process opens
  together.

The store is Redis when ``RESILIENCE["FLEET"]["URL"]`` (or ``REDIS.URL``) is set,
else the Django cache ``FLEET.CACHE`` (default ``"default"``).  A process that
stops publishing disappears after ``FLEET.TTL`` seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..clock import Clock, monotonic
from .events import Transition
from .registry import all_breakers, get_breaker, on_create, registry
from .settings import fleet_settings, on_change
from .state import OPEN, Breaker
from .store import CacheStore, FleetStore, RedisStore

__all__ = ["ACTIONS", "FleetPublisher", "fleet_snapshot", "get_store", "send_command", "start"]

logger = logging.getLogger("resilience_django.breakers")
ACTIONS = ("force_open", "force_close", "reset", "disable")
SHARED_REASON = "opened by another process"


def _apply(breaker: Breaker, action: str) -> None:
    if action == "force_open":
        breaker.force_open()
    elif action == "force_close":
        breaker.force_close()
    elif action == "reset":
        breaker.reset()
    elif action == "disable":
        breaker.disable()


class FleetPublisher:
    """The per-process fleet thread; :meth:`tick` is one round, for tests to drive."""

    def __init__(
        self,
        store: FleetStore,
        breakers: Callable[[], list[Breaker]],
        *,
        ttl: float = 10.0,
        interval: float = 1.0,
        command_poll: float = 0.5,
        clock: Clock = monotonic,
        wall: Clock = time.time,
    ) -> None:
        self.store = store
        self.breakers = breakers
        self.ttl = ttl
        self.interval = interval
        self.command_poll = command_poll
        self.clock = clock
        self.wall = wall
        self.host = socket.gethostname()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._dirty = True
        self._opened: list[str] = []
        self._applied: dict[str, int] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._cmd_version = -1
        self._next_publish = self._next_command = 0.0
        self._next_shared: dict[str, float] = {}
        self._error_logged = 0.0

    # -- wiring ------------------------------------------------------------------

    def attach(self, breaker: Breaker) -> None:
        """Follow ``breaker``'s transitions (and hand it any command waiting for it)."""
        for listener in breaker._listeners:
            # A publisher from before a settings change or a fork no longer listens.
            if isinstance(getattr(listener, "__self__", None), FleetPublisher):
                breaker.remove_listener(listener)
        breaker.add_listener(self._on_transition)
        with self._lock:
            command = self._pending.pop(breaker.name, None)
        if command is not None:
            self._apply_command(breaker, command)
        self._dirty = True
        self._wake.set()

    def _on_transition(self, transition: Transition) -> None:
        # Runs on the events thread: only note it down and wake the fleet thread.
        if transition.to_state == OPEN and transition.reason != SHARED_REASON:
            with self._lock:
                self._opened.append(transition.breaker)
        self._dirty = True
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="resilience-fleet", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # the store is down or slow: keep trying, log rarely
                now = self.clock()
                if now - self._error_logged > 60:
                    self._error_logged = now
                    logger.warning("breaker fleet store unavailable: %r", exc)
            self._wake.wait(self._sleep_time())
            self._wake.clear()

    def _sleep_time(self) -> float:
        now = self.clock()
        due = min([self._next_publish, self._next_command, *self._next_shared.values()])
        return min(max(due - now, 0.01), self.command_poll)

    # -- one round -------------------------------------------------------------

    def tick(self) -> None:
        now = self.clock()
        breakers = self.breakers()
        for breaker in breakers:
            breaker.poll()
        if now >= self._next_command:
            self._next_command = now + self.command_poll
            self._poll_commands(breakers)
        self._share(breakers, now)
        if self._dirty or now >= self._next_publish:
            self._dirty = False
            self._next_publish = now + self.interval
            self.publish(breakers)

    def publish(self, breakers: list[Breaker]) -> None:
        pid = os.getpid()
        self.store.publish(
            f"{self.host}:{pid}",
            {
                "host": self.host,
                "pid": pid,
                "time": self.wall(),
                "breakers": [b.snapshot() for b in breakers],
            },
            self.ttl,
        )

    def _poll_commands(self, breakers: list[Breaker]) -> None:
        version = self.store.command_version()
        if version == self._cmd_version:
            return
        self._cmd_version = version
        by_name = {b.name: b for b in breakers}
        for name, command in self.store.commands().items():
            if self._applied.get(name) == command.get("version"):
                continue
            breaker = by_name.get(name)
            if breaker is None:
                with self._lock:  # applied when this process first uses the breaker
                    self._pending[name] = command
            else:
                self._apply_command(breaker, command)

    def _apply_command(self, breaker: Breaker, command: Mapping[str, Any]) -> None:
        self._applied[breaker.name] = int(command.get("version", 0))
        _apply(breaker, str(command.get("action")))
        self._dirty = True

    def _share(self, breakers: list[Breaker], now: float) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        shared = {b.name: b for b in breakers if b.policy.shared}
        wall = self.wall()
        for name in opened:
            breaker = shared.get(name)
            phase = breaker._phase if breaker is not None else None
            if phase is not None and phase.state is OPEN:
                self.store.set_open_until(name, wall + (phase.until - now))
        due = [n for n, b in shared.items() if now >= self._next_shared.get(n, 0.0)]
        if not due:
            return
        for name in due:
            self._next_shared[name] = now + shared[name].policy.shared_poll
        for name, until in self.store.open_until(due).items():
            if until > wall:
                shared[name].open_until(now + (until - wall), SHARED_REASON)


_publisher: FleetPublisher | None = None
_publisher_lock = threading.Lock()


_store: tuple[FleetStore | None] | None = None


def get_store() -> FleetStore | None:
    """The configured store (built once per settings), or ``None`` when the fleet is off."""
    global _store
    if _store is None:
        _store = (_build_store(),)
    return _store[0]


def _build_store() -> FleetStore | None:
    conf = fleet_settings()
    if not conf.get("ENABLED", True):
        return None
    prefix = str(conf.get("PREFIX", "resilience:fleet"))
    url = conf.get("URL")
    if url:
        import redis

        client = redis.Redis.from_url(str(url), socket_timeout=1.0, socket_connect_timeout=1.0)
        return RedisStore(client, prefix)
    from django.core.cache import caches

    return CacheStore(caches[str(conf.get("CACHE", "default"))], prefix)


def _ttl() -> float:
    return float(fleet_settings().get("TTL", 10.0))


def start() -> FleetPublisher | None:
    """Start this process's fleet thread (idempotent); ``None`` when the fleet is off."""
    global _publisher
    with _publisher_lock:
        if _publisher is None:
            store = get_store()
            if store is None:
                return None
            _publisher = FleetPublisher(
                store, lambda: sorted(registry._breakers.values(), key=lambda b: b.name), ttl=_ttl()
            )
            for breaker in list(registry._breakers.values()):
                _publisher.attach(breaker)
        _publisher.start()
        return _publisher


def stop() -> None:
    """Stop the fleet thread (settings changed, tests); the next breaker restarts it."""
    global _publisher, _store
    with _publisher_lock:
        publisher, _publisher = _publisher, None
        _store = None
    if publisher is not None:
        publisher.stop()


def _on_breaker_created(breaker: Breaker) -> None:
    publisher = _publisher
    if publisher is None:
        start()  # attaches every breaker the registry holds, this one included
    else:
        publisher.attach(breaker)


def fleet_snapshot() -> list[dict[str, Any]]:
    """One row per breaker per live process: the breaker's snapshot plus host, pid, time.

    Without a fleet store, the rows describe this process only.
    """
    store = get_store()
    procs: list[dict[str, Any]]
    if store is None:
        procs = [
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "time": time.time(),
                "breakers": [b.snapshot() for b in all_breakers()],
            }
        ]
    else:
        procs = store.processes(_ttl())
    rows = []
    for proc in procs:
        for snap in proc.get("breakers", []):
            rows.append(
                {**snap, "host": proc.get("host"), "pid": proc.get("pid"), "time": proc.get("time")}
            )
    return sorted(rows, key=lambda r: (str(r.get("name")), str(r.get("host")), r.get("pid") or 0))


def send_command(breaker: str, action: str) -> int:
    """Tell every process to ``force_open``, ``force_close``, ``reset`` or ``disable``.

    Applied at once in this process, and within about a second everywhere else.
    Returns the command's version (0 when the shared store could not be reached:
    then only this process has it).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown breaker action {action!r}; use one of {ACTIONS}")
    # This process first: an operator acting during a store outage (when it
    # matters most) still gets the breaker here, and the outage is logged.
    local = get_breaker(breaker)
    _apply(local, action)
    store = get_store()
    version = 0
    if store is not None:
        try:
            version = store.send_command(breaker, action)
        except Exception:
            logger.exception(
                "breaker %s: %s applied here but not sent to the fleet (store unreachable)",
                breaker, action, extra={"breaker": breaker, "action": action},
            )  # fmt: skip
    if _publisher is not None:
        _publisher._applied[breaker] = version
    return version


def _after_fork() -> None:
    # The fleet thread does not survive fork.  A worker forked after breakers were
    # made (gunicorn --preload) needs its own publisher at once: it is a new process
    # with a new pid to report.  The lock is replaced in case fork caught it held.
    global _publisher, _publisher_lock, _store
    had_publisher = _publisher is not None
    _publisher, _store = None, None
    _publisher_lock = threading.Lock()
    if had_publisher:
        try:
            start()
        except Exception:  # never let a fork handler break the new worker
            logger.exception("breaker fleet: could not restart after fork")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
on_create(_on_breaker_created)
on_change(stop)
