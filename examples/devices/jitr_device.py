"""A device onboarded by JITR (just-in-time registration): its certificate comes from our CA
at the factory; its first connection to a region is refused while AWS IoT registers the
certificate and the region's JITR machine activates it, so it retries until a CONNACK
accepts, then publishes.

    python -m examples.devices.jitr_device --endpoint iot.dev.example.com \\
        --ca root-ca.pem --cert device.pem --key device.key --thing my-device \\
        --topic dt/iotmr/my-device/status [--proxy 127.0.0.1:PORT]

(`python -m tools.local --keep` prints the endpoint, the proxy and the files to use.)
"""

from __future__ import annotations

import argparse
import sys

from examples.devices.mqtt import (
    Endpoint,
    Outcome,
    Refused,
    add_endpoint_arguments,
    connect_and_publish,
    connected,
    endpoint_from,
    readable_file,
)

ATTEMPTS, BACKOFF_SECONDS = 6, 0.5


def first_connection(endpoint: Endpoint, certificate_pem: str, key_pem: str, thing_name: str) -> str:
    """One connection attempt, as a freshly made device makes it: '' when accepted, else why
    it was refused (under JITR the first one is refused)."""
    try:
        with connected(endpoint, certificate_pem, key_pem, thing_name):
            return ""
    except Refused as refused:
        return str(refused)


def run(endpoint: Endpoint, certificate_pem: str, key_pem: str, thing_name: str, topic: str,
        *, attempts: int = ATTEMPTS, backoff_seconds: float = BACKOFF_SECONDS) -> Outcome:
    """Connect (retrying while JITR runs) and publish one status message (QoS 1)."""
    return connect_and_publish(endpoint, certificate_pem, key_pem, thing_name, topic,
                               {"thing": thing_name, "status": "online"}, attempts=attempts,
                               backoff_seconds=backoff_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_endpoint_arguments(parser)
    parser.add_argument("--cert", type=readable_file, required=True, help="the device certificate (PEM)")
    parser.add_argument("--key", type=readable_file, required=True, help="the device's private key (PEM)")
    parser.add_argument("--thing", required=True, help="thing name = MQTT client id")
    parser.add_argument("--topic", required=True, help="where to publish, e.g. dt/<app>/<thing>/status")
    args = parser.parse_args(argv)
    try:
        endpoint = endpoint_from(args)
        outcome = run(endpoint, args.cert.read_text(), args.key.read_text(), args.thing, args.topic)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for number, why in enumerate(outcome.refusals, 1):
        print(f"attempt {number}: refused ({why})")
    if not outcome.published:
        print(f"connected (attempt {outcome.attempt}), but the publish was refused" if outcome.attempt
              else f"not connected after {ATTEMPTS} attempts", file=sys.stderr)
        return 1
    print(f"attempt {outcome.attempt}: connected as {args.thing}, published to {outcome.published}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
