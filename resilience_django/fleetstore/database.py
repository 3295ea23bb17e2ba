"""The fleet store in the project's database: works with nothing else shared.

What it costs per process is in docs/deployment.md; a clean-up once a minute
drops dead processes, commands older than :data:`COMMAND_TTL` (but each
breaker's latest) and expired open markers.

**Command order.**  A command's number is its row id.  Ids are handed out at
insert but become visible at commit, so two senders could commit 12 before
11 and a reader that saw 12 would skip 11 for good.  Senders therefore take a
row lock (``SELECT ... FOR UPDATE`` on one :class:`FleetValue` row) before
inserting and keep it until their commit: ids then become visible in order.
SQLite needs no lock: it has one writer at a time, and the id is taken inside
that writer's transaction.

**The version** is the token :meth:`bump_version` writes (on every committed
admin save or delete) together with the latest ``updated_at`` of each rule
table, read in one query: an edit that bypasses the signals
(``QuerySet.update(..., updated_at=now())``) is seen too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from hashlib import sha256
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.models import Max, Model, Subquery
from django.db.models.functions import Now

from . import base
from .base import CommandBatch, FleetStore

__all__ = ["DatabaseStore"]

_VERSION = "admin-rules-version"
_COMMAND_LOCK = "command-lock"
_HOUSEKEEPING_EVERY = 60.0


def _open_key(breaker: str) -> str:
    key = f"open:{breaker}"
    if len(key) <= 255:
        return key
    return "open#" + sha256(breaker.encode()).hexdigest()


def _ago(seconds: float) -> Any:
    return Now() - timedelta(seconds=seconds)


class DatabaseStore(FleetStore):
    """Fleet state in Django models (``FleetProcess``, ``FleetCommand``, ``FleetValue``)."""

    kind = "database"
    # Bounded writes: one upsert per process every few seconds (less with a short TTL,
    # see fleet.start); a breaker transition still publishes at once.
    publish_every = 3.0

    def __init__(self) -> None:
        self._next_housekeeping = 0.0

    def version(self) -> str | None:
        from ..models import BreakerPolicy, FleetValue, LimitRule, RouteDeadline, SheddingRule

        rules: tuple[type[Model], ...] = (LimitRule, BreakerPolicy, RouteDeadline, SheddingRule)
        latest = {
            f"m{i}": Subquery(
                model._default_manager.order_by("-updated_at").values("updated_at")[:1]
            )
            for i, model in enumerate(rules)
        }
        row = (
            FleetValue.objects.filter(key=_VERSION)
            .annotate(**latest)
            .values_list("value", *latest)
            .first()
        )
        return None if row is None else "|".join(str(v) for v in row)

    def bump_version(self, token: str) -> None:
        self._put(_VERSION, token)

    def publish(self, proc: str, data: Mapping[str, Any], ttl: float) -> None:
        from ..models import FleetProcess

        report = json.dumps(data)
        rows = FleetProcess.objects.filter(process=proc)
        if not rows.update(report=report, updated_at=Now()):
            try:
                with transaction.atomic(using=router.db_for_write(FleetProcess)):
                    FleetProcess.objects.create(process=proc, report=report, updated_at=Now())
            except IntegrityError:  # a fork of this process raced us with its first report
                rows.update(report=report, updated_at=Now())
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + _HOUSEKEEPING_EVERY
            self.housekeeping(ttl)

    def processes(self, ttl: float) -> list[dict[str, Any]]:
        from ..models import FleetProcess

        reports = FleetProcess.objects.filter(updated_at__gte=_ago(ttl)).order_by("process")
        return [json.loads(r) for r in reports.values_list("report", flat=True)]

    def housekeeping(self, ttl: float) -> None:
        """Delete dead processes, old commands (each breaker's latest stays), expired markers."""
        from ..models import FleetCommand, FleetProcess, FleetValue

        FleetProcess.objects.filter(updated_at__lt=_ago(ttl)).delete()
        (
            FleetCommand.objects.filter(at__lt=time.time() - base.COMMAND_TTL)
            .exclude(id__in=Subquery(_latest_ids()))
            .delete()
        )
        FleetValue.objects.filter(expires_at__lt=Now()).delete()

    def send_command(self, breaker: str, action: str) -> int:
        from ..models import FleetCommand, FleetValue

        using = router.db_for_write(FleetCommand)
        with transaction.atomic(using=using):
            if connections[using].vendor != "sqlite":
                # Held until the commit: ids become visible in the order they were taken.
                lock = FleetValue.objects.select_for_update().filter(key=_COMMAND_LOCK)
                if not list(lock.values_list("key")):
                    self._put(_COMMAND_LOCK, "")  # the migration made it; a flush removed it
                    list(lock.values_list("key"))
            command = FleetCommand.objects.create(breaker=breaker, action=action, at=time.time())
        return int(command.pk)

    def read_commands(self, after: int | None) -> CommandBatch:
        from ..models import FleetCommand

        fields = ("id", "breaker", "action", "at")
        if after is None:
            # Each breaker's latest command; the highest of them is the head, so the
            # standing map and the number it stands for come from one snapshot.
            rows = FleetCommand.objects.filter(id__in=Subquery(_latest_ids())).values(*fields)
            standing = {r["breaker"]: _command(r) for r in rows}
            return CommandBatch(standing, [], max((c["seq"] for c in standing.values()), default=0))
        # A reader that fell more than COMMAND_TTL behind still ends where everyone
        # else does: each breaker's latest command is never deleted.
        rows = FleetCommand.objects.filter(id__gt=after).order_by("id").values(*fields)
        log = [_command(r) for r in rows[: base.READ_BATCH]]
        return CommandBatch(None, log, log[-1]["seq"] if log else after)

    def set_open_until(self, breaker: str, until: float) -> None:
        seconds = until - time.time()
        if seconds > 0:
            self._put(
                _open_key(breaker), repr(until), expires_at=Now() + timedelta(seconds=seconds)
            )

    def open_until(self, breakers: Sequence[str]) -> dict[str, float]:
        from ..models import FleetValue

        if not breakers:
            return {}
        keys = {_open_key(b): b for b in breakers}
        rows = FleetValue.objects.filter(key__in=list(keys), expires_at__gt=Now())
        return {keys[k]: float(v) for k, v in rows.values_list("key", "value")}

    def recover(self) -> None:
        # The connection may be the broken part (a restarted server, a dropped socket):
        # this thread opens a fresh one next round.
        from ..models import FleetProcess

        connections[router.db_for_write(FleetProcess)].close()

    def _put(self, key: str, value: str, **fields: Any) -> None:
        from ..models import FleetValue

        rows = FleetValue.objects.filter(key=key)
        if rows.update(value=value, **fields):
            return
        try:
            with transaction.atomic(using=router.db_for_write(FleetValue)):
                FleetValue.objects.create(key=key, value=value, **fields)
        except IntegrityError:  # created meanwhile by another process
            rows.update(value=value, **fields)


def _latest_ids() -> Any:
    from ..models import FleetCommand

    return FleetCommand.objects.order_by().values("breaker").annotate(last=Max("id")).values("last")


def _command(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"seq": int(row["id"]), "breaker": row["breaker"], "action": row["action"],
            "at": float(row["at"])}  # fmt: skip
