"""A throwaway ``redis-server`` on a free port, started and stopped by PID.

Tests that kill, slow down or flush Redis use one of these, never the shared
Redis.  ``kill()`` is ``kill -9``; ``start()`` again reuses the same port, so
clients configured with the old URL reconnect to the new process.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.services import free_port, require_binary

__all__ = ["RedisCluster", "RedisServer", "redis_cluster", "redis_server"]


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ephemeral_low() -> int:
    """The first port the kernel hands out to outgoing connections and ``bind(0)``."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too.

    Both below the kernel's ephemeral range: a cluster's ports are chosen long before
    it starts (tests build clients while it is down), and in between any outgoing
    connection on the machine could take a port from that range as its own.
    """
    top = _ephemeral_low() - 10_000 - 1
    for _ in range(200):
        port = random.randint(min(10_000, top), top)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("found no free port pair for a Redis Cluster node")


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"redis-server did not listen on port {port} within {timeout}s")


class RedisServer:
    """One redis-server process with no persistence, bound to 127.0.0.1."""

    def __init__(self, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.binary = require_binary("redis-server")
        self.port = port or free_port()
        self.extra = extra
        self.dir = tempfile.mkdtemp(prefix="rd-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.dir,
            *self.extra,
        ]  # fmt: skip
        log = Path(self.dir) / "redis.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, log)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """``kill -9`` the server and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def redis_server(extra: tuple[str, ...] = ()) -> Iterator[RedisServer]:
    server = RedisServer(extra=extra).start()
    try:
        yield server
    finally:
        server.stop()


class RedisCluster:
    """Cluster-enabled redis-servers joined with ``redis-cli --cluster create``.

    ``replicas=1`` gives every master a replica (6 processes for 3 masters),
    so a killed master fails over; the node timeout is short so that takes
    a few seconds.
    """

    def __init__(
        self,
        nodes: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 2000,
        full_coverage: bool = True,
    ) -> None:
        self.cli = require_binary("redis-cli")
        self.replicas = replicas
        self.servers: list[RedisServer] = []
        for _ in range(nodes * (1 + replicas)):
            server = RedisServer(port=cluster_port())
            conf = Path(server.dir) / "nodes.conf"
            server.extra = (
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(conf),
                "--cluster-node-timeout", str(node_timeout_ms),
                "--cluster-require-full-coverage", "yes" if full_coverage else "no",
                # A replica fails over only once it has synced: sync at once.
                "--repl-diskless-sync-delay", "0",
                "--cluster-replica-validity-factor", "0",
            )  # fmt: skip
            self.servers.append(server)

    @property
    def url(self) -> str:
        return self.servers[0].url

    def start(self) -> RedisCluster:
        for server in self.servers:
            server.start()
        addresses = [f"127.0.0.1:{s.port}" for s in self.servers]
        subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas",
             str(self.replicas), "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30,
        )  # fmt: skip
        self._wait_ok()
        return self

    def _wait_ok(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [s for s in self.servers if s.proc and s.proc.poll() is None]
            if all(self._ok(s) for s in running) and self._replicas_linked():
                return
            time.sleep(0.1)
        raise RuntimeError("the test Redis Cluster did not reach cluster_state:ok")

    def _ok(self, server: RedisServer) -> bool:
        out = subprocess.run(
            [self.cli, "-p", str(server.port), "cluster", "info"],
            capture_output=True, text=True, timeout=5,
        ).stdout  # fmt: skip
        return "cluster_state:ok" in out

    def _replicas_linked(self) -> bool:
        if not self.replicas:
            return True
        out = subprocess.run(
            [self.cli, "-p", str(self.servers[0].port), "cluster", "nodes"],
            capture_output=True, text=True, timeout=5,
        ).stdout  # fmt: skip
        slaves = [line for line in out.splitlines() if " slave " in line]
        if len(slaves) != len(self.servers) // (1 + self.replicas) * self.replicas:
            return False
        for line in slaves:  # and every replica has synced with its master
            port = line.split()[1].split("@")[0].rsplit(":", 1)[1]
            info = subprocess.run(
                [self.cli, "-p", port, "info", "replication"],
                capture_output=True, text=True, timeout=5,
            ).stdout  # fmt: skip
            if "master_link_status:up" not in info:
                return False
        return True

    def masters(self) -> dict[int, list[tuple[int, int]]]:
        """port -> slot ranges of every master that holds slots, as the cluster now says."""
        import redis as redis_py

        for server in self.servers:
            if server.proc is None or server.proc.poll() is not None:
                continue
            client = redis_py.Redis(port=server.port, socket_timeout=2)
            try:
                shards = client.execute_command("CLUSTER", "SLOTS")
            except redis_py.RedisError:
                continue
            finally:
                client.close()
            out: dict[int, list[tuple[int, int]]] = {}
            for start, end, master, *_ in shards:
                out.setdefault(int(master[1]), []).append((int(start), int(end)))
            return out
        raise RuntimeError("no cluster node answered CLUSTER SLOTS")

    def server_on(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node says ``cluster_state:ok`` (after a failover)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(s) for s in self.servers if s.proc and s.proc.poll() is None):
                return
            time.sleep(0.1)
        raise RuntimeError("the test Redis Cluster did not recover to cluster_state:ok")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@contextlib.contextmanager
def redis_cluster() -> Iterator[RedisCluster]:
    cluster = RedisCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


class RedisSentinel:
    """One primary and one sentinel watching it as service ``mymaster``."""

    def __init__(self, service: str = "mymaster") -> None:
        self.service = service
        self.primary = RedisServer()
        self.sentinel = RedisServer()

    def start(self) -> RedisSentinel:
        self.primary.start()
        conf = Path(self.sentinel.dir) / "sentinel.conf"
        conf.write_text(
            f"port {self.sentinel.port}\nbind 127.0.0.1\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
        )
        # A config file must come first; the sentinel rewrites it as it learns.
        self.sentinel.extra = ("--sentinel",)
        binary = self.sentinel.binary
        self.sentinel.binary = binary
        log = Path(self.sentinel.dir) / "redis.log"
        with log.open("ab") as out:
            self.sentinel.proc = subprocess.Popen(
                [binary, str(conf), "--sentinel"], stdout=out, stderr=subprocess.STDOUT
            )
        _wait_port(self.sentinel.port, self.sentinel.proc, log)
        return self

    def stop(self) -> None:
        self.sentinel.stop()
        self.primary.stop()
