"""The local moto server: 127.0.0.1, a free port, stopped and closed whatever happens.

It runs in this process (moto's ThreadedMotoServer), so the Step Functions adapter's
patches of moto's interpreter apply to it. moto's interpreter reaches the server through
`MOTO_PORT`; moto's own config (execute state machines, AWS's certificate ids) is patched
for the server's lifetime only, and every backend is reset on start and stop, so runs in
one process (the tests) never see each other's state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.request
from collections.abc import Iterator, Mapping
from unittest import mock

HOST = "127.0.0.1"

MOTO_CONFIG = {
    # Run the declared ASL for real instead of returning canned results.
    "stepfunctions": {"execute_state_machine": True},
    # Certificate ids as AWS computes them (SHA-256 of the DER), not of the PEM text.
    "iot": {"use_valid_cert": True},
}

# moto settings read from the environment: Cognito checks TOTP codes (as Cognito does) only
# with this set.
MOTO_ENVIRONMENT = {"MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP": "true"}

# The report says what happened; these would print a line per request / handled ASL error.
QUIET_LOGGERS = {"werkzeug": logging.ERROR, "moto.stepfunctions.parser": logging.CRITICAL}


@contextlib.contextmanager
def scoped_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, restoring what was there before."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _reset(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our server)
        response.read()


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Yields the endpoint URL of a running moto server; stops and closes it on exit."""
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    with contextlib.ExitStack() as stack:
        for name, level in QUIET_LOGGERS.items():
            logger = logging.getLogger(name)
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(level)
        stack.enter_context(mock.patch.dict(default_user_config, MOTO_CONFIG))
        server.start()
        stack.callback(_stop, server)
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        stack.enter_context(scoped_environ({"MOTO_PORT": str(port), **MOTO_ENVIRONMENT}))
        _reset(endpoint)
        stack.callback(_reset_quietly, endpoint)
        yield endpoint


def _reset_quietly(endpoint: str) -> None:
    with contextlib.suppress(OSError):
        _reset(endpoint)


def _stop(server: object) -> None:
    server.stop()  # type: ignore[attr-defined]
    inner = getattr(server, "_server", None)
    if inner is not None:
        inner.server_close()  # ThreadedMotoServer.stop leaves the socket open
