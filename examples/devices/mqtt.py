"""The MQTT side every example device shares: a connection over mutual TLS built with
`awsiot.mqtt_connection_builder.mtls_from_bytes`, on its own awscrt event loop that is shut
down (and waited for) when the session ends, so nothing keeps running after the device.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from awscrt import io, mqtt
from awscrt.http import HttpProxyOptions
from awsiot import mqtt_connection_builder

TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Endpoint:
    """Where the device connects: AWS IoT's (custom) device domain, port 8883, the CA that
    signed the server certificate; `proxy` (host, port) is an HTTP CONNECT proxy to reach it
    through (the local run's stand-in for DNS)."""
    host_name: str
    ca_pem: str
    port: int = 8883
    proxy: tuple[str, int] | None = None


class Refused(Exception):
    """The endpoint did not accept the connection (TLS or CONNACK)."""


class NotAcknowledged(Exception):
    """The endpoint did not acknowledge a QoS 1 publish: AWS IoT closes the connection instead
    when the device's policy denies it."""


class Session:
    """A connected device's MQTT connection, valid inside `connected(...)` only."""

    def __init__(self, connection: mqtt.Connection) -> None:
        self.connection: mqtt.Connection | None = connection
        self._interrupted: Future[str] = Future()  # resolved when the endpoint closes the connection

    def interrupted(self, reason: str) -> None:
        """The SDK's `on_connection_interrupted`: the endpoint closed the connection."""
        with contextlib.suppress(InvalidStateError):  # the first since the last publish counts
            self._interrupted.set_result(reason)

    def publish(self, topic: str, message: Mapping[str, Any]) -> None:
        """QoS 1: returns once the endpoint acknowledged (PUBACK); raises NotAcknowledged as soon
        as the endpoint closes the connection instead, or after TIMEOUT_SECONDS without an answer
        (the SDK would resend it after reconnecting: a refused publish, refused again)."""
        if self.connection is None:
            raise RuntimeError("the session has ended")
        if self._interrupted.done():  # an earlier interruption; the SDK has reconnected since
            self._interrupted = Future()
        future, _ = self.connection.publish(topic=topic, payload=json.dumps(message), qos=mqtt.QoS.AT_LEAST_ONCE)
        wait([future, self._interrupted], TIMEOUT_SECONDS, return_when=FIRST_COMPLETED)
        if future.done() and future.exception() is None:
            return
        if self._interrupted.done():
            why = f"the endpoint closed the connection ({self._interrupted.result()})"
        elif future.done():  # e.g. cancelled by the SDK when it reconnected with a clean session
            why = f"{type(future.exception()).__name__}: {future.exception()}"
        else:
            why = f"no answer within {TIMEOUT_SECONDS} s"
        raise NotAcknowledged(f"publish to {topic} not acknowledged: {why}")


@contextlib.contextmanager
def connected(endpoint: Endpoint, certificate_pem: str, key_pem: str, client_id: str) -> Iterator[Session]:
    """A session after the CONNACK accepted; on exit disconnected and its own event loop
    shut down (awscrt frees it once nothing refers to the connection: hence the session
    wrapper, emptied before the wait)."""
    loop_group = io.EventLoopGroup(1)
    shutdown = loop_group.shutdown_event
    bootstrap = io.ClientBootstrap(loop_group, io.DefaultHostResolver(loop_group))
    proxy = HttpProxyOptions(*endpoint.proxy) if endpoint.proxy else None

    def on_interrupted(connection: mqtt.Connection, error: Exception, **_: Any) -> None:
        session.interrupted(f"{type(error).__name__}: {error}")
    connection = mqtt_connection_builder.mtls_from_bytes(
        endpoint=endpoint.host_name, port=endpoint.port, cert_bytes=certificate_pem.encode(),
        pri_key_bytes=key_pem.encode(), ca_bytes=endpoint.ca_pem.encode(), client_id=client_id,
        client_bootstrap=bootstrap, http_proxy_options=proxy, clean_session=True, keep_alive_secs=30,
        tcp_connect_timeout_ms=TIMEOUT_SECONDS * 1000, protocol_operation_timeout_ms=TIMEOUT_SECONDS * 1000,
        reconnect_min_timeout_secs=1, reconnect_max_timeout_secs=1, enable_metrics_collection=False,
        on_connection_interrupted=on_interrupted)
    del loop_group, bootstrap
    session = Session(connection)  # before connecting: the interruption callback reports to it
    refused = ""
    try:
        connection.connect().result(TIMEOUT_SECONDS)
    except Exception as error:  # awscrt.exceptions.AwsCrtError: TLS, CONNACK, timeout
        refused = f"{type(error).__name__}: {error}"
    try:
        if not refused:
            yield session
    finally:
        if not refused:
            with contextlib.suppress(Exception):
                connection.disconnect().result(TIMEOUT_SECONDS)
        session.connection = None
        del connection
        if not shutdown.wait(TIMEOUT_SECONDS):
            raise RuntimeError("the device's event loop did not shut down")
    if refused:
        raise Refused(refused)


@dataclass
class Outcome:
    attempt: int = 0  # the attempt whose CONNACK accepted (0: none)
    # why each refused connection failed, then (if connected) why the publish was not acknowledged
    refusals: list[str] = field(default_factory=list)
    published: str = ""  # the topic of the acknowledged publish


def connect_and_publish(endpoint: Endpoint, certificate_pem: str, key_pem: str, client_id: str, topic: str,
                        message: Mapping[str, Any], *, attempts: int = 1, backoff_seconds: float = 0.5) -> Outcome:
    """Connect as `client_id` (retrying a refused connection up to `attempts` times) and
    publish `message` once (QoS 1)."""
    outcome = Outcome()
    for attempt in range(1, attempts + 1):
        try:
            with connected(endpoint, certificate_pem, key_pem, client_id) as session:
                outcome.attempt = attempt
                try:
                    session.publish(topic, {**message, "attempt": attempt})
                except NotAcknowledged as refused:  # the policy's verdict: retrying changes nothing
                    outcome.refusals.append(str(refused))
                    return outcome
                outcome.published = topic
                return outcome
        except Refused as refused:
            outcome.refusals.append(str(refused))
            if attempt < attempts:
                time.sleep(backoff_seconds * attempt)
    return outcome


def readable_file(value: str) -> Path:
    """An option's file, checked while the options are parsed: argparse then names the
    option in its one-line error."""
    try:
        with open(value, "rb"):  # opened, not read: the command reads it once, later
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {value}: {error.strerror or error}") from None
    return Path(value)


def proxy_address(value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    return value


def add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options every example device takes to reach the endpoint."""
    parser.add_argument("--endpoint", required=True, help="the device domain, e.g. iot.dev.example.com")
    parser.add_argument("--port", type=int, default=8883)
    parser.add_argument("--ca", type=readable_file, required=True, help="CA certificate that signed the server's")
    parser.add_argument("--proxy", type=proxy_address, help="HOST:PORT of an HTTP CONNECT proxy (the local run's)")


def endpoint_from(args: argparse.Namespace) -> Endpoint:
    """The Endpoint those options name (reads the CA file: OSError when it is missing)."""
    return Endpoint(args.endpoint, args.ca.read_text(), args.port, read_proxy(args.proxy))


def read_proxy(value: str | None) -> tuple[str, int] | None:
    """`HOST:PORT` of the command lines' --proxy."""
    if not value:
        return None
    host, _, port = value.rpartition(":")
    return host, int(port)
