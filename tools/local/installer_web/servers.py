"""The local HTTP servers of the installer web app's backend (site, AWS gateway, device): one
way to start one on 127.0.0.1 in a daemon thread and to stop it, socket closed."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"


class QuietHandler(BaseHTTPRequestHandler):
    """The run's report says what happened; no line per request."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        pass


class LocalServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._server = ThreadingHTTPServer((HOST, 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name=name, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
