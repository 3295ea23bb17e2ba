"""Two operators save one rule at the same moment, on two real servers sharing PostgreSQL.

Both forms were opened on the same version of the row and both pass ``clean()``; the test holds
the row locked until both saves wait on it, so both are past ``clean()`` and inside the admin's
save.  One save wins; the other is refused with the form error, never saved over the first.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fleetstore.databases import _admin_connection, postgres_database
from tests.utils.waiting import wait_for

from .servers import add_through_admin, admin_login, csrf_token, servers

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

RULE = {"name": "api", "key": "ip", "rate": "1/s", "algorithm": "sliding_window",
        "scope": "local", "mode": "enforce", "enabled": "on"}  # fmt: skip
_SEEN = re.compile(r'name="seen_updated_at" value="([^"]*)"')


def _connect(database: dict[str, Any]) -> Any:
    import psycopg

    return psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"],
        password=database["PASSWORD"] or None, dbname=database["NAME"],
    )  # fmt: skip


def _waiting(name: str) -> list[str]:
    """What the database's sessions wait for on a lock."""
    with _admin_connection() as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            (name,),
        ).fetchall()
    return [row[0] for row in rows]


# A form posts the hidden updated_at it was opened with; a script may post only the fields.
ERRORS = {True: "someone else changed the limit rule", False: "saved at the same moment"}


@pytest.mark.parametrize("posts_seen", [True, False], ids=["form", "script"])
def test_two_saves_at_once_one_wins_and_the_other_is_a_form_error(
    tmp_path: Path, posts_seen: bool
) -> None:
    with postgres_database() as database, servers({}, tmp_path, 2, database=database) as pair:
        clients = [httpx.Client(base_url=s.url, timeout=60) for s in pair]
        for client in clients:
            admin_login(client)
        add_through_admin(clients[0], "limitrule", RULE)
        with _connect(database) as conn:
            pk = conn.execute("SELECT id FROM resilience_django_limitrule").fetchone()[0]
        url = f"/admin/resilience_django/limitrule/{pk}/change/"
        posts = []
        for client, rate in zip(clients, ("5/s", "7/s"), strict=True):
            page = client.get(url).text
            seen = _SEEN.search(page)
            assert seen is not None and seen.group(1)
            data = {**RULE, "rate": rate, "seen_updated_at": seen.group(1) if posts_seen else ""}
            posts.append({**data, "csrfmiddlewaretoken": csrf_token(page)})

        results: dict[str, httpx.Response] = {}

        def save(client: httpx.Client, data: dict[str, str]) -> None:
            results[data["rate"]] = client.post(url, data=data)

        # Another transaction holds the row: both saves read it, pass clean(), then wait.
        with _connect(database) as lock:
            lock.execute(
                "SELECT 1 FROM resilience_django_limitrule WHERE id = %s FOR UPDATE", (pk,)
            )
            threads = [
                threading.Thread(target=save, args=(c, d))
                for c, d in zip(clients, posts, strict=True)
            ]
            for thread in threads:
                thread.start()

            def both_wait() -> bool:
                waiting = _waiting(database["NAME"])
                return sum("resilience_django_limitrule" in q for q in waiting) == 2

            def done() -> bool:
                return both_wait() or not all(t.is_alive() for t in threads)

            wait_for(done, 120, "both saves waiting, or one answered")
            assert both_wait(), (_waiting(database["NAME"]), results)
            lock.rollback()
        for thread in threads:
            thread.join(120)

        codes = sorted(r.status_code for r in results.values())
        assert codes == [200, 302], {rate: r.status_code for rate, r in results.items()}
        (winner,) = (rate for rate, r in results.items() if r.status_code == 302)
        (loser,) = (r for r in results.values() if r.status_code == 200)
        assert ERRORS[posts_seen] in loser.text and ERRORS[not posts_seen] not in loser.text
        with _connect(database) as conn:
            rate = conn.execute("SELECT rate FROM resilience_django_limitrule").fetchone()[0]
        assert rate == winner  # the loser's value was not saved over it
        for client in clients:
            client.close()
