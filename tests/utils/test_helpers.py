"""The helpers' own promises that the tests rely on: a port chosen free is free only until
another process takes it."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.e2e import server as e2e_server
from tests.services import free_port
from tests.utils.redis_server import cluster_port


def test_cluster_ports_and_bus_ports_lie_below_the_ephemeral_range() -> None:
    # Chosen long before the cluster starts: a port the kernel may give an outgoing
    # connection in the meantime would make redis-server fail to bind.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        port = cluster_port()
        assert port >= 1024 and port + 10_000 < low


@pytest.mark.e2e
def test_uvicorn_server_chooses_another_port_when_its_first_was_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1], free_port()])
        monkeypatch.setattr(e2e_server, "free_port", lambda: next(ports))
        with e2e_server.uvicorn_server({}) as server:
            assert httpx.get(server.url + "/ready/", timeout=10).status_code == 200
