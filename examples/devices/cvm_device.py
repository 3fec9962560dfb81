"""A device onboarded by the certificate vending machine (CVM): it has no certificate, only
its uid and the token the factory derived for it. It registers over HTTPS (with a CSR for
its own key, or, on a legacy batch, receiving a key pair), then connects over MQTT as the
thing the CVM named and publishes.

    python -m examples.devices.cvm_device --url https://provisioning.dev.example.com/registration \\
        --uid DEVICE-123 --token <token> --endpoint iot.dev.example.com --ca root-ca.pem \\
        --topic-root dt/iotmr [--legacy] [--proxy 127.0.0.1:PORT] [--out ./device]
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from examples.devices.mqtt import Endpoint, Outcome, add_endpoint_arguments, connect_and_publish, endpoint_from

# The registration contract (components/cvm/README.md): POST JSON, answer {status, payload}.
Post = Callable[[Mapping[str, Any]], tuple[int, Mapping[str, Any]]]


def registration_request(uid: str, token: str, key: ec.EllipticCurvePrivateKey | None) -> dict[str, str]:
    """The body a device sends: with its own key, a CSR for it (CN = uid); without, none
    (legacy batches: the CVM returns a key pair)."""
    body = {"device_uid": uid, "device_token": token}
    if key is not None:
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, uid)]))
               .sign(key, hashes.SHA256()))
        body["csr"] = csr.public_bytes(serialization.Encoding.PEM).decode()
    return body


@dataclass(frozen=True)
class Credentials:
    thing_name: str
    certificate_pem: str
    key_pem: str


def credentials(payload: Mapping[str, Any], key: ec.EllipticCurvePrivateKey | None) -> Credentials:
    """What the device keeps from a 200: its thing name, certificate and private key."""
    key_pem = (payload["keyPair"]["privateKey"] if key is None else key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
    return Credentials(payload["thing_name"], payload["certificates"]["device_certificate"], key_pem)


def https_post(url: str) -> Post:
    """POST over HTTPS with the system's trust store (the real path)."""
    def post(body: Mapping[str, Any]) -> tuple[int, Mapping[str, Any]]:
        request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
    return post


def run(post: Post, endpoint: Endpoint, uid: str, token: str, topic_root: str, *,
        legacy: bool = False) -> tuple[Credentials, Outcome]:
    """Register, then connect as the named thing and publish to `<topic_root>/<thing>/status`."""
    key = None if legacy else ec.generate_private_key(ec.SECP256R1())
    status, answer = post(registration_request(uid, token, key))
    if status != 200:
        raise RuntimeError(f"registration answered {status}: {(answer.get('payload') or {}).get('message')}")
    made = credentials(answer["payload"], key)
    topic = f"{topic_root}/{made.thing_name}/status"
    return made, connect_and_publish(endpoint, made.certificate_pem, made.key_pem, made.thing_name, topic,
                                     {"thing": made.thing_name, "status": "online"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the CVM's registration URL")
    parser.add_argument("--uid", required=True)
    parser.add_argument("--token", required=True, help="the device token the factory derived")
    parser.add_argument("--legacy", action="store_true", help="no key of its own: receive a key pair")
    add_endpoint_arguments(parser)
    parser.add_argument("--topic-root", required=True, help="e.g. dt/<app>: publishes to <root>/<thing>/status")
    parser.add_argument("--out", type=Path, help="directory to keep certificate.pem and private.key in")
    args = parser.parse_args(argv)
    try:
        endpoint = endpoint_from(args)
        made, outcome = run(https_post(args.url), endpoint, args.uid, args.token, args.topic_root,
                            legacy=args.legacy)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "certificate.pem").write_text(made.certificate_pem)
            (args.out / "private.key").write_text(made.key_pem)
            (args.out / "private.key").chmod(0o600)
    except (OSError, RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not outcome.published:
        print(f"registered as {made.thing_name}, but not connected: {'; '.join(outcome.refusals)}", file=sys.stderr)
        return 1
    print(f"registered as {made.thing_name}; connected, published to {outcome.published}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
