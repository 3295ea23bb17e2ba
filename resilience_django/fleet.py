"""Every process's breakers, visible and steerable across the fleet (docs/breakers.md): a thread
per process publishes its report and applies operator commands and shared open-until markers
from the fleet store.  It starts when the process first uses a breaker or builds its runtime."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

from . import fleetstore
from .breakers.events import Transition, logger
from .breakers.registry import all_breakers, get_breaker, registry
from .breakers.state import OPEN, Breaker
from .clock import Clock, monotonic
from .conf import get_settings
from .fleetstore import FleetStore, command_seq
from .fleetstore.base import CLOCK_SKEW, CLOSING

__all__ = [
    "ACTIONS", "FleetPublisher", "breaker_rows", "fleet_processes", "fleet_snapshot", "get_store",
    "on_breaker_created", "process_report", "send_command", "start", "start_reporting",
]  # fmt: skip

ACTIONS = ("force_open", "force_close", "reset", "disable")
SHARED_REASON = "opened by another process"
MARKER_HORIZON = 86_400.0  # seconds: an open-until marker further ahead is ignored


@dataclass(eq=False)
class FleetPublisher:
    """The per-process fleet thread; :meth:`tick` is one round, for tests to drive."""

    store: FleetStore
    breakers: Callable[[], list[Breaker]]
    _: KW_ONLY
    ttl: float = 10.0
    interval: float = 1.0
    command_poll: float = 0.5
    clock: Clock = monotonic
    wall: Clock = time.time

    def __post_init__(self) -> None:
        self.host = socket.gethostname()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._dirty = True
        self._opened: list[str] = []
        # Commands: the number of the last one applied to each breaker, the latest
        # one for each breaker this process does not have yet, and the latest for
        # every breaker (saved back to a store whose standing map lags).
        self._applied: dict[str, int] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._standing: dict[str, dict[str, Any]] = {}
        self._cmd_seq: int | None = None
        self._cmd_epoch: str | None = None
        self._attached: dict[str, Breaker] = {}
        # send_command applies a command here before the log numbers it.  Meeting
        # it in the log, the fleet thread skips it only if it applied nothing to
        # that breaker in between (same epoch); else it applies it again, in order.
        self._epochs: dict[str, int] = {}
        self._sent_here: dict[int, tuple[str, int]] = {}
        self._next_publish = self._next_command = 0.0
        self._next_shared: dict[str, float] = {}
        self._error_logged = 0.0
        self._bad_markers: dict[str, str] = {}
        # The wall time of the last reset or force-close of each breaker: a marker from a trip
        # before it (ending before then + open_for) opens nothing, whenever it is read or written.
        self._closed: dict[str, float] = {}
        self.malformed_commands = 0  # store entries skipped (hand-edited, corrupted)

    def attach(self, breaker: Breaker) -> None:
        """Follow ``breaker``'s transitions (and hand it any command waiting for it)."""
        # All under the lock: two attaches of one breaker must leave one listener, and
        # the command waiting for it must land before any newer one _deliver meets.
        with self._lock:
            for listener in breaker._listeners:
                # A publisher from before a settings change or a fork no longer listens.
                if isinstance(getattr(listener, "__self__", None), FleetPublisher):
                    breaker.remove_listener(listener)
            breaker.add_listener(self._on_transition)
            self._attached[breaker.name] = breaker
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
                    kind = type(exc).__name__
                    logger.warning("breaker fleet store unavailable: %s: %s", kind, exc)
                with contextlib.suppress(Exception):
                    self.store.recover()
            due = min([self._next_publish, self._next_command, *self._next_shared.values()])
            self._wake.wait(min(max(due - self.clock(), 0.01), self.command_poll))
            self._wake.clear()

    def tick(self) -> None:
        """One round: commands, shared markers, the report.  A part that fails stops no other
        (a broken command log must not hide this process); the first failure is raised."""
        now = self.clock()
        breakers = self.breakers()
        for breaker in breakers:
            breaker.poll()
        failures: list[Exception] = []
        for part in (self._poll_commands, self._share, self._publish):
            try:
                part(breakers, now)
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    def _publish(self, breakers: list[Breaker], now: float) -> None:
        if self._dirty or now >= self._next_publish:
            self._dirty = False
            self._next_publish = now + self.interval
            report = process_report(breakers, host=self.host, wall=self.wall())
            self.store.publish(f"{self.host}:{report['pid']}", report, self.ttl)

    def _poll_commands(self, _breakers: list[Breaker], now: float) -> None:
        if now < self._next_command:
            return
        self._next_command = now + self.command_poll
        batch = self.store.read_commands(self._cmd_seq, self._cmd_epoch)
        if batch.epoch != self._cmd_epoch:
            if self._cmd_epoch is not None:
                # The store lost its data and numbers from 1 again: a number applied or
                # sent here before says nothing about the command that has it now.
                self._applied.clear()
                with self._lock:
                    self._sent_here.clear()
            self._cmd_epoch = batch.epoch
        if batch.standing is not None:
            self._standing = {n: c for n, c in batch.standing.items() if self._sound(c)}
            for name, command in self._standing.items():
                if self._applied.get(name) != command_seq(command):
                    self._deliver(name, command)
        for command in filter(self._sound, batch.log):
            self._standing[command["breaker"]] = command
            self._deliver(command["breaker"], command)
        self._cmd_seq = batch.seen
        if self._sent_here:
            with self._lock:  # marks for numbers already passed can never match now
                self._sent_here = {s: m for s, m in self._sent_here.items() if s > batch.seen}
        if batch.stale:
            self.store.save_standing(batch.seen, self._standing)

    def _sound(self, command: Any) -> bool:
        # A hand-edited or corrupted entry is skipped: it must not stall the ones after it.
        if (
            isinstance(command, Mapping)
            and isinstance(command.get("breaker"), str)
            and isinstance(command.get("action"), str)
            and command_seq(command) > 0
        ):
            return True
        self.malformed_commands += 1
        logger.warning("breaker fleet: skipped a malformed command in the store: %.200r", command)
        return False

    def _deliver(self, name: str, command: Mapping[str, Any]) -> None:
        seq = command_seq(command)
        with self._lock:
            if command["action"] in CLOSING:
                at, wall = command.get("at"), self.wall()  # NaN, inf, ahead: no sender's time
                self._closed[name] = at if isinstance(at, float | int) and at <= wall else wall
            epoch = self._epochs.get(name, 0)
            if self._sent_here.pop(seq, None) == (name, epoch):
                self._applied[name] = seq  # applied by send_command, and nothing since
                return
            self._epochs[name] = epoch + 1
            breaker = self._attached.get(name)
            if breaker is None:  # applied when this process first uses the breaker
                self._pending[name] = dict(command)
            else:  # under the lock, so in number order with attach's
                self._apply_command(breaker, command)

    def applying_here(self, breaker: str, action: str) -> int:
        """Called by :func:`send_command` before it applies a command in this process."""
        with self._lock:  # a new epoch: _share deletes a marker it was writing meanwhile
            if action in CLOSING:
                self._closed[breaker] = self.wall()
            epoch = self._epochs[breaker] = self._epochs.get(breaker, 0) + 1
            return epoch

    def sent_here(self, breaker: str, seq: int, epoch: int) -> None:
        """Called by :func:`send_command` once the store has numbered that command."""
        with self._lock:
            if self._epochs.get(breaker, 0) == epoch and (self._cmd_seq or 0) < seq:
                self._sent_here[seq] = (breaker, epoch)

    def _apply_command(self, breaker: Breaker, command: Mapping[str, Any]) -> None:
        self._applied[breaker.name] = command_seq(command)
        action = str(command.get("action"))
        if action in ACTIONS:  # a store holds what any version of any process wrote
            getattr(breaker, action)()
        self._dirty = True

    def _share(self, breakers: list[Breaker], now: float) -> None:
        with self._lock:
            opened, self._opened, epochs = self._opened, [], dict(self._epochs)
        shared = {b.name: b for b in breakers if b.policy.shared}
        wall = self.wall()
        for i, name in enumerate(opened):
            phase = shared[name]._phase if name in shared else None
            if phase is not None and phase.state is OPEN:
                try:
                    self.store.set_open_until(name, wall + (phase.until - now))
                except Exception:
                    with self._lock:  # the store is down: write them once it is back
                        self._opened[:0] = opened[i:]
                    raise
                if self._epochs.get(name) != epochs.get(name):  # a command here meanwhile: a
                    self.store.clear_open_until(name)  # marker from before it, maybe landed after
        due = [n for n, b in shared.items() if now >= self._next_shared.get(n, 0.0)]
        if not due:
            return
        for name in due:
            self._next_shared[name] = now + shared[name].policy.shared_poll
        markers = self.store.open_until(due)
        with self._lock:  # applying_here waits: no command lands here between check and open
            for name, until in markers.items():
                policy = shared[name].policy
                if until < self._closed.get(name, -math.inf) + policy.open_for:
                    continue  # a trip from before the last reset or force-close
                longest = policy.open_for_max or policy.open_for
                seconds = until - wall
                # inf, NaN, 1e308: no process wrote it.  Within a day (a clock ahead, a rolling
                # deploy's other policy): open, at most as long as ours says, again while it stands.
                if not seconds <= max(longest, MARKER_HORIZON) + CLOCK_SKEW:
                    if self._bad_markers.get(name) != repr(until):
                        self._bad_markers[name] = repr(until)
                        logger.warning("breaker %s: ignored open-until marker %r", name, until)
                elif seconds > 0:
                    shared[name].open_until(now + min(seconds, longest), SHARED_REASON)


_publisher: FleetPublisher | None = None
_publisher_lock = threading.Lock()


def get_store() -> FleetStore | None:
    """The fleet store for the current settings, or ``None`` when the fleet is off."""
    return fleetstore.get_store() if get_settings().fleet.enabled else None


def start() -> FleetPublisher | None:
    """Start this process's fleet thread (idempotent); ``None`` when the fleet is off."""
    global _publisher
    with _publisher_lock:
        if _publisher is None:
            store = get_store()
            if store is None:
                return None
            ttl = get_settings().fleet.ttl
            # Three reports per TTL at least, so one lost report never drops a process.
            interval = min(store.publish_every, ttl / 3)
            _publisher = FleetPublisher(store, registry.created, ttl=ttl, interval=interval)
            for breaker in registry.created():
                _publisher.attach(breaker)
        _publisher.start()
        return _publisher


_reporting_failed = False


def start_reporting() -> None:
    """Start the fleet thread if the fleet is on, even before any breaker; never raises."""
    global _reporting_failed
    if _publisher is not None:
        return
    try:
        start()
    except Exception:
        if not _reporting_failed:  # once per process: this runs on every runtime build
            _reporting_failed = True
            logger.exception("breaker fleet: cannot report this process; it works alone")


def stop() -> None:
    """Stop the fleet thread (settings changed, tests); the next breaker restarts it."""
    global _publisher
    with _publisher_lock:
        publisher, _publisher = _publisher, None
    fleetstore.reset()
    if publisher is not None:
        publisher.stop()


def on_breaker_created(breaker: Breaker) -> None:
    """The registry's ``on_create`` hook (``wiring.py``): the new breaker joins the fleet."""
    with _publisher_lock:  # not a publisher that stop() is replacing
        if _publisher is not None:
            _publisher.attach(breaker)
            return
    start()  # attaches every breaker the registry holds, this one included


def process_report(
    breakers: list[Breaker], *, host: str | None = None, wall: float | None = None
) -> dict[str, Any]:
    """What this process publishes: breakers, limiter health, rejections, deadline misses."""
    from .limiting.health import health
    from .observability import recent

    try:
        backend = get_settings().backend
    except Exception:  # bad settings: the checks say so; the report goes on
        backend = None
    return {
        "host": host or socket.gethostname(),
        "pid": os.getpid(),
        "time": time.time() if wall is None else wall,
        "backend": backend,
        "limiter": health(),
        "breakers": [b.snapshot() for b in breakers],
        "rejections": recent.rejections.report(),
        "deadlines": recent.deadlines.report(),
    }


def fleet_processes(*, fresh_counts: bool = True) -> list[dict[str, Any]]:
    """Every live process's latest report (without a fleet store: this one's); raises when
    the store is unreachable.  ``fresh_counts``: this process's own counters read now."""
    from .observability import recent

    store = get_store()
    if store is None:
        return [process_report(all_breakers())]
    procs = [dict(p) for p in store.processes(get_settings().fleet.ttl) if isinstance(p, Mapping)]
    if not fresh_counts:
        return procs
    host, pid = socket.gethostname(), os.getpid()
    mine = next((p for p in procs if p.get("host") == host and p.get("pid") == pid), None)
    rejections, deadlines = recent.rejections.report(), recent.deadlines.report()
    if mine is not None:
        mine["rejections"], mine["deadlines"] = rejections, deadlines
    elif rejections or deadlines:
        procs.append(
            {"host": host, "pid": pid, "time": time.time(), "breakers": [],
             "rejections": rejections, "deadlines": deadlines}
        )  # fmt: skip
    return procs


def breaker_rows(procs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per breaker per process: the breaker's snapshot plus host, pid, time."""
    rows = [
        {**snap, "host": proc.get("host"), "pid": proc.get("pid"), "time": proc.get("time")}
        for proc in procs
        if isinstance(proc.get("breakers"), list)
        for snap in proc["breakers"]
        if isinstance(snap, Mapping)  # a corrupted report hides no other row
    ]
    return sorted(rows, key=_row_order)


def _row_order(row: Mapping[str, Any]) -> tuple[str, str, int]:
    pid = row.get("pid")
    return str(row.get("name")), str(row.get("host")), pid if isinstance(pid, int) else 0


def fleet_snapshot() -> list[dict[str, Any]]:
    """:func:`breaker_rows` of every live process (without a fleet store: this one)."""
    return breaker_rows(fleet_processes())


def send_command(breaker: str, action: str) -> int:
    """Tell every process to ``force_open``, ``force_close``, ``reset`` or ``disable``: at
    once here, within about a second everywhere else (docs/breakers.md).  Returns the
    command's number in the fleet's sequence, or 0 when the store could not be reached
    (then only this process has it)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown breaker action {action!r}; use one of {ACTIONS}")
    # This process first: an operator acting during a store outage (when it
    # matters most) still gets the breaker here, and the outage is logged.
    local = get_breaker(breaker)
    publisher = _publisher
    epoch = publisher.applying_here(breaker, action) if publisher is not None else 0
    getattr(local, action)()
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
    if publisher is not None and version:
        publisher.sent_here(breaker, version, epoch)
    return version


def _after_fork() -> None:
    # The fleet thread does not survive fork, and a worker forked after breakers were made
    # (gunicorn --preload) has a new pid to report.  Fork may have caught the lock held.
    global _publisher, _publisher_lock
    had_publisher = _publisher is not None
    _publisher = None
    fleetstore.reset()  # a Redis client's connections belong to the parent
    _publisher_lock = threading.Lock()
    if had_publisher:
        try:
            start()
        except Exception:  # never let a fork handler break the new worker
            logger.exception("breaker fleet: could not restart after fork")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
