"""The MQTT side every example device shares: a connection over mutual TLS built with
`awsiot.mqtt_connection_builder.mtls_from_bytes`, on its own awscrt event loop that is shut
down (and waited for) when the session ends, so nothing keeps running after the device.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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


@contextlib.contextmanager
def connected(endpoint: Endpoint, certificate_pem: str, key_pem: str, client_id: str) -> Iterator[mqtt.Connection]:
    """An MQTT connection after its CONNACK; disconnected and its event loop gone on exit."""
    loop_group = io.EventLoopGroup(1)
    resolver = io.DefaultHostResolver(loop_group)
    bootstrap = io.ClientBootstrap(loop_group, resolver)
    proxy = HttpProxyOptions(*endpoint.proxy) if endpoint.proxy else None
    connection = mqtt_connection_builder.mtls_from_bytes(
        endpoint=endpoint.host_name, port=endpoint.port, cert_bytes=certificate_pem.encode(),
        pri_key_bytes=key_pem.encode(), ca_bytes=endpoint.ca_pem.encode(), client_id=client_id,
        client_bootstrap=bootstrap, http_proxy_options=proxy, clean_session=True, keep_alive_secs=30,
        tcp_connect_timeout_ms=TIMEOUT_SECONDS * 1000, protocol_operation_timeout_ms=TIMEOUT_SECONDS * 1000,
        reconnect_min_timeout_secs=1, reconnect_max_timeout_secs=1, enable_metrics_collection=False)
    try:
        try:
            connection.connect().result(TIMEOUT_SECONDS)
        except Exception as error:  # awscrt.exceptions.AwsCrtError: TLS, CONNACK, timeout
            raise Refused(f"{type(error).__name__}: {getattr(error, 'name', '')} {error}".strip()) from None
        try:
            yield connection
        finally:
            with contextlib.suppress(Exception):
                connection.disconnect().result(TIMEOUT_SECONDS)
    finally:
        del connection, bootstrap, resolver
        shutdown = loop_group.shutdown_event
        del loop_group
        shutdown.wait(TIMEOUT_SECONDS)  # the event loop's thread has ended


def publish(connection: mqtt.Connection, topic: str, message: Mapping[str, Any]) -> None:
    """QoS 1: returns once the endpoint acknowledged (PUBACK), raises if it did not."""
    future, _ = connection.publish(topic=topic, payload=json.dumps(message), qos=mqtt.QoS.AT_LEAST_ONCE)
    future.result(TIMEOUT_SECONDS)


def connect_with_retries(endpoint: Endpoint, certificate_pem: str, key_pem: str, client_id: str,
                         *, attempts: int = 5, backoff_seconds: float = 0.5) -> tuple[int, list[str]]:
    """Connect until a CONNACK accepts (then disconnect): (attempt that connected, why each
    earlier one was refused). What a JITR device does on its first boot."""
    refusals: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            with connected(endpoint, certificate_pem, key_pem, client_id):
                return attempt, refusals
        except Refused as refused:
            refusals.append(str(refused))
            time.sleep(backoff_seconds * attempt)
    raise Refused(f"not connected after {attempts} attempts: {'; '.join(refusals)}")
