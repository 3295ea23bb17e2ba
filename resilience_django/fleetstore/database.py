"""The fleet store in the project's database: works with nothing else shared (costs and
clean-up: docs/deployment.md; command numbering: docs/breakers.md, "Command ordering")."""

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

from ..models import FleetCommand, FleetProcess, FleetValue
from . import base
from .base import CommandBatch, FleetStore

__all__ = ["DatabaseStore"]

_VERSION = "admin-rules-version"
_COMMAND_LOCK = "command-lock"
_HOUSEKEEPING_EVERY = 60.0


def _open_key(breaker: str) -> str:
    key = f"open:{breaker}"
    return key if len(key) <= 255 else "open#" + sha256(breaker.encode()).hexdigest()


def _ago(seconds: float) -> Any:
    return Now() - timedelta(seconds=seconds)


class DatabaseStore(FleetStore):
    """Fleet state in Django models (``FleetProcess``, ``FleetCommand``, ``FleetValue``)."""

    # Bounded writes: one upsert per process every few seconds (less with a short TTL,
    # see fleet.start); a breaker transition still publishes at once.
    publish_every = 3.0

    def __init__(self) -> None:
        self._next_housekeeping = 0.0

    def version(self) -> str | None:
        # The token bump_version writes plus each rule table's latest ``updated_at``: an
        # edit that bypasses the signals (``QuerySet.update(updated_at=now())``) is seen too.
        from ..models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule

        rules: tuple[type[Model], ...] = (LimitRule, BreakerPolicy, RouteDeadline, SheddingRule)
        latest = {
            f"m{i}": Subquery(
                model._default_manager.order_by("-updated_at").values("updated_at")[:1]
            )
            for i, model in enumerate(rules)
        }
        rows = FleetValue.objects.filter(key=_VERSION).annotate(**latest)
        row = rows.values_list("value", *latest).first()
        return None if row is None else "|".join(str(v) for v in row)

    def bump_version(self, token: str) -> None:
        self._put(_VERSION, token)

    def publish(self, proc: str, data: Mapping[str, Any], ttl: float) -> None:
        _upsert(FleetProcess, {"process": proc}, report=json.dumps(data), updated_at=Now())
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + _HOUSEKEEPING_EVERY
            self.housekeeping(ttl)

    def processes(self, ttl: float) -> list[dict[str, Any]]:
        reports = FleetProcess.objects.filter(updated_at__gte=_ago(ttl)).order_by("process")
        loaded = [base.parse_json(r) for r in reports.values_list("report", flat=True)]
        return [r for r in loaded if isinstance(r, dict)]  # a corrupted one hides no other

    def housekeeping(self, ttl: float) -> None:
        """Delete dead processes, old commands (each breaker's latest stays), expired markers."""
        FleetProcess.objects.filter(updated_at__lt=_ago(ttl)).delete()
        old = FleetCommand.objects.filter(at__lt=time.time() - base.COMMAND_TTL)
        old.exclude(id__in=Subquery(_latest_ids())).delete()
        FleetValue.objects.filter(expires_at__lt=Now()).delete()

    def send_command(self, breaker: str, action: str) -> int:
        if action in base.CLOSING:
            self.clear_open_until(breaker)
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

    def read_commands(self, after: int | None, epoch: str | None = None) -> CommandBatch:
        # Row ids never go back (a database does not lose committed rows): one epoch.
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

    def clear_open_until(self, breaker: str) -> None:
        FleetValue.objects.filter(key=_open_key(breaker)).delete()

    def open_until(self, breakers: Sequence[str]) -> dict[str, float]:
        keys = {_open_key(b): b for b in breakers}
        rows = FleetValue.objects.filter(key__in=list(keys), expires_at__gt=Now())
        return {keys[k]: base.number(v) for k, v in rows.values_list("key", "value")}

    def recover(self) -> None:
        # The connection may be the broken part (a restarted server, a dropped socket):
        # this thread opens a fresh one next round.
        connections[router.db_for_write(FleetProcess)].close()

    def _put(self, key: str, value: str, **fields: Any) -> None:
        _upsert(FleetValue, {"key": key}, value=value, **fields)


def _upsert(model: type[Model], key: dict[str, Any], **values: Any) -> None:
    """Update the row of ``key`` or create it: one ``UPDATE`` once it exists."""
    rows = model._default_manager.filter(**key)
    if rows.update(**values):
        return
    try:
        with transaction.atomic(using=router.db_for_write(model)):
            model._default_manager.create(**key, **values)
    except IntegrityError:  # created meanwhile by another process (or a fork of this one)
        rows.update(**values)


def _latest_ids() -> Any:
    return FleetCommand.objects.order_by().values("breaker").annotate(last=Max("id")).values("last")


def _command(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"seq": int(row["id"]), "breaker": row["breaker"], "action": row["action"],
            "at": float(row["at"])}  # fmt: skip
