"""A real, healthy but slow downstream HTTP service on 127.0.0.1, for the outbound e2e tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Downstream:
    """Answers ``ok`` after ``?s=`` seconds (300 ms by default); counts the requests it got."""

    def __init__(self) -> None:
        self.arrivals = 0
        self._lock = threading.Lock()
        downstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with downstream._lock:
                    downstream.arrivals += 1
                query = parse_qs(urlsplit(self.path).query)
                time.sleep(float(query.get("s", ["0.3"])[0]))
                body = b"ok"
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the caller gave up first: expected here

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"


@contextmanager
def slow_downstream() -> Iterator[Downstream]:
    downstream = Downstream()
    httpd = downstream.httpd
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        yield downstream
    finally:
        httpd.shutdown()
        httpd.server_close()
