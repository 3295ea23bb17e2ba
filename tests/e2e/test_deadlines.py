"""Deadlines over real HTTP against a real uvicorn."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, uvicorn_server

pytestmark = pytest.mark.e2e

CONFIG = {"DEADLINE": {"DEFAULT": "30s", "ROUTES": {"/slow/": "300ms"}}}


@pytest.fixture(
    scope="module", params=["tests.e2e.asgi:application", "tests.e2e.asgi_fastpath:application"]
)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with uvicorn_server(CONFIG, app=request.param) as srv:
        yield srv


# One client for the module: httpx.get() would build a fresh client (and SSL context) inside
# the timed window, tens of milliseconds on a loaded CI machine that are not the server's.
_CLIENT = httpx.Client(timeout=5.0)


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    # Left open, its kept-alive connection is an unclosed socket at the suite's exit.
    yield
    _CLIENT.close()


def _timed_get(url: str, **kwargs: object) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = _CLIENT.get(url, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - start


def test_async_view_past_route_budget_gets_504_on_time(server: Server) -> None:
    response, elapsed = _timed_get(server.url + "/slow/async/?s=2")
    assert response.status_code == 504
    assert elapsed < 0.5
    assert elapsed >= 0.29


def test_sync_view_past_route_budget_gets_504_on_time_and_stops_at_next_query(
    server: Server, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    response, elapsed = _timed_get(server.url + f"/slow/sync/?s=0.8&marker={marker}")
    assert response.status_code == 504
    assert elapsed < 0.5
    # The abandoned thread wakes at 0.8 s, reaches its query, and is stopped there.
    for _ in range(40):
        if marker.exists():
            break
        time.sleep(0.05)
    assert marker.read_text() == "stopped-at-query"


def test_sync_view_within_budget_runs_its_query(server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    response, _ = _timed_get(server.url + f"/slow/sync/?s=0&marker={marker}")
    assert response.status_code == 200
    assert marker.read_text() == "query-ran"


def test_grpc_timeout_header_shortens_the_budget(server: Server) -> None:
    response, elapsed = _timed_get(server.url + "/budget/", headers={"grpc-timeout": "100m"})
    assert response.status_code == 200
    assert 0 < response.json()["remaining"] <= 0.1
    response, elapsed = _timed_get(
        server.url + "/slow/async/?s=2", headers={"grpc-timeout": "100m"}
    )
    assert response.status_code == 504
    assert elapsed < 0.4  # a 2 s view cut at 100 ms; the margin is for a loaded CI machine


def test_x_timeout_ms_header_shortens_the_budget(server: Server) -> None:
    response, _ = _timed_get(server.url + "/async-budget/", headers={"X-Timeout-Ms": "150"})
    assert 0 < response.json()["remaining"] <= 0.15
    response, elapsed = _timed_get(server.url + "/slow/async/?s=2", headers={"X-Timeout-Ms": "150"})
    assert response.status_code == 504
    assert elapsed < 0.45  # a 2 s view cut at 150 ms; the margin is for a loaded CI machine


def test_looser_header_does_not_extend_the_route_budget(server: Server) -> None:
    response, elapsed = _timed_get(
        server.url + "/slow/async/?s=2", headers={"X-Timeout-Ms": "5000"}
    )
    assert response.status_code == 504
    assert elapsed < 0.5


def test_malformed_header_is_ignored_not_a_500(server: Server) -> None:
    response, _ = _timed_get(server.url + "/budget/", headers={"grpc-timeout": "12 parsecs"})
    assert response.status_code == 200
    assert response.json()["remaining"] > 29


def test_spent_budget_never_runs_the_view(server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    response, _ = _timed_get(
        server.url + f"/marker/?marker={marker}", headers={"X-Timeout-Ms": "0"}
    )
    assert response.status_code == 504
    assert not marker.exists()
    response, _ = _timed_get(server.url + f"/marker/?marker={marker}")
    assert response.status_code == 200
    assert marker.exists()


def test_504_body_is_json_for_json_clients_and_text_otherwise(server: Server) -> None:
    response, _ = _timed_get(
        server.url + "/slow/async/?s=2", headers={"Accept": "application/json"}
    )
    assert response.status_code == 504
    assert response.json()["error"] == "deadline_exceeded"
    response, _ = _timed_get(server.url + "/slow/async/?s=2", headers={"Accept": "text/html"})
    assert response.headers["content-type"].startswith("text/plain")


class _EchoTimeout(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"x-timeout-ms": self.headers.get("X-Timeout-Ms")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def downstream() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EchoTimeout)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("view", ["/outbound/", "/async-outbound/"])
def test_outbound_httpx_call_carries_x_timeout_ms_below_the_budget(
    server: Server, downstream: str, view: str
) -> None:
    response, _ = _timed_get(
        server.url + view, params={"url": downstream}, headers={"X-Timeout-Ms": "2000"}
    )
    assert response.status_code == 200
    sent = json.loads(response.json()["body"])["x-timeout-ms"]
    assert sent is not None
    assert 0 < int(sent) < 2000
