"""The local run's HTTP servers (the installer web app's site, AWS gateway and device; the API
Gateway's plain-HTTP listeners for `--keep`): one way to start one on 127.0.0.1 in a daemon
thread, answer, and stop it, socket closed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"
# How often serve_forever looks for a shutdown: stop() waits up to this (the default 0.5 s
# cost every test world a second at teardown).
SHUTDOWN_POLL_SECONDS = 0.02


def reply(request: BaseHTTPRequestHandler, status: int, body: bytes, headers: Mapping[str, str]) -> None:
    request.send_response(status)
    for name, value in {**headers, "Content-Length": str(len(body))}.items():
        request.send_header(name, value)
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(body)


class LocalServer:
    """`handle(request)` answers every method named in `methods`."""

    def __init__(self, name: str, handle: Callable[[BaseHTTPRequestHandler], None],
                 methods: tuple[str, ...] = ("GET", "POST", "OPTIONS")) -> None:
        def log_message(*_: Any) -> None:  # the run's report says what happened
            pass
        handler = type(name, (BaseHTTPRequestHandler,), {
            "log_message": log_message, **{f"do_{m}": lambda request: handle(request) for m in methods}})
        self._server = ThreadingHTTPServer((HOST, 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), name=name,
                         daemon=True).start()
        self.url = f"http://{HOST}:{self._server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
