"""A device provisioned by fleet provisioning (by trusted user): it holds only the claim
certificate and key an installer handed over. It connects with the claim, gets its own
certificate over MQTT (`$aws/certificates/create/json`, or `create-from-csr/json` for a key
it keeps to itself), asks the template to register it (`$aws/provisioning-templates/<name>/
provision/json`, where the pre-provisioning hook decides), then connects as the thing the
template named and publishes. The MQTT API is the device SDK's `iotidentity` client.

    python -m examples.devices.fleet_device --endpoint iot.dev.example.com --ca root-ca.pem \\
        --claim-cert SN-0001.claim.pem.crt --claim-key SN-0001.claim.pem.key \\
        --template <template name> --serial SN-0001 --client-id <claim prefix>SN-0001 \\
        --topic-root dt/iotmr [--csr] [--out ./device] [--proxy 127.0.0.1:PORT]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awscrt import mqtt
from awsiot import iotidentity
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from examples.devices.mqtt import (
    TIMEOUT_SECONDS,
    Endpoint,
    Outcome,
    add_endpoint_arguments,
    connect_and_publish,
    connected,
    endpoint_from,
    readable_file,
)


class ProvisioningRejected(Exception):
    """A `/rejected` answer: statusCode, errorCode, errorMessage as AWS IoT sends them."""

    def __init__(self, status_code: Any, error_code: Any, message: Any) -> None:
        super().__init__(f"{status_code} {error_code}: {message}")
        self.status_code, self.error_code = status_code, error_code


@dataclass(frozen=True)
class Provisioned:
    thing_name: str
    certificate_id: str
    certificate_pem: str
    key_pem: str
    device_configuration: Mapping[str, str]


Subscribe = Callable[[Callable[[Any], None]], tuple[concurrent.futures.Future[Any], str]]


def _ask(subscribe_accepted: Subscribe, subscribe_rejected: Subscribe,
         publish: Callable[[], concurrent.futures.Future[Any]]) -> Any:
    """Subscribe to both answers first (the API page: answers to a request published before
    may be lost), publish, wait for one of them."""
    answer: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def accepted(response: Any) -> None:
        if not answer.done():
            answer.set_result(response)

    def rejected(error: Any) -> None:
        if not answer.done():
            answer.set_exception(ProvisioningRejected(error.status_code, error.error_code, error.error_message))

    for subscribe, callback in ((subscribe_accepted, accepted), (subscribe_rejected, rejected)):
        subscribed, _ = subscribe(callback)
        subscribed.result(TIMEOUT_SECONDS)
    publish().result(TIMEOUT_SECONDS)
    return answer.result(TIMEOUT_SECONDS)


def _csr(serial: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)])).sign(key, hashes.SHA256()))
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def provision(endpoint: Endpoint, claim_pem: str, claim_key_pem: str, client_id: str, template_name: str,
              parameters: Mapping[str, str], *, own_key: bool = False) -> Provisioned:
    """Over one claim connection: a certificate (new keys from AWS IoT, or a CSR for a key made
    here), then RegisterThing with `parameters`; raises ProvisioningRejected on a `/rejected`."""
    with connected(endpoint, claim_pem, claim_key_pem, client_id) as session:
        answers = _over_claim(session.connection, template_name, parameters, own_key)
    if isinstance(answers, BaseException):
        raise answers
    created, registered, key_pem = answers
    return Provisioned(registered.thing_name, created.certificate_id, created.certificate_pem, key_pem,
                       dict(registered.device_configuration or {}))


def _over_claim(connection: Any, template_name: str, parameters: Mapping[str, str],
                own_key: bool) -> tuple[Any, Any, str] | Exception:
    """The two requests; an error is returned without its traceback, so nothing here keeps
    the connection alive once the session ends (awscrt frees it when unreferenced)."""
    qos = mqtt.QoS.AT_LEAST_ONCE
    identity = iotidentity.IotIdentityClient(connection)
    try:
        if own_key:
            key, csr = _csr(parameters.get("SerialNumber", "device"))
            request = iotidentity.CreateCertificateFromCsrSubscriptionRequest()
            created = _ask(
                lambda cb: identity.subscribe_to_create_certificate_from_csr_accepted(request, qos, cb),
                lambda cb: identity.subscribe_to_create_certificate_from_csr_rejected(request, qos, cb),
                lambda: identity.publish_create_certificate_from_csr(
                    iotidentity.CreateCertificateFromCsrRequest(certificate_signing_request=csr), qos))
            key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
        else:
            keys = iotidentity.CreateKeysAndCertificateSubscriptionRequest()
            created = _ask(
                lambda cb: identity.subscribe_to_create_keys_and_certificate_accepted(keys, qos, cb),
                lambda cb: identity.subscribe_to_create_keys_and_certificate_rejected(keys, qos, cb),
                lambda: identity.publish_create_keys_and_certificate(
                    iotidentity.CreateKeysAndCertificateRequest(), qos))
            key_pem = created.private_key
        register = iotidentity.RegisterThingSubscriptionRequest(template_name=template_name)
        registered = _ask(
            lambda cb: identity.subscribe_to_register_thing_accepted(register, qos, cb),
            lambda cb: identity.subscribe_to_register_thing_rejected(register, qos, cb),
            lambda: identity.publish_register_thing(iotidentity.RegisterThingRequest(
                template_name=template_name, certificate_ownership_token=created.certificate_ownership_token,
                parameters=dict(parameters)), qos))
        return created, registered, key_pem
    except Exception as error:  # a /rejected answer, a timeout, a refused subscription
        return error.with_traceback(None)


def run(endpoint: Endpoint, claim_pem: str, claim_key_pem: str, client_id: str, template_name: str,
        serial: str, topic_root: str, *, own_key: bool = False) -> tuple[Provisioned, Outcome]:
    """Provision with the claim, then connect as the named thing and publish to
    `<topic_root>/<thing>/status`."""
    made = provision(endpoint, claim_pem, claim_key_pem, client_id, template_name, {"SerialNumber": serial},
                     own_key=own_key)
    topic = f"{topic_root}/{made.thing_name}/status"
    outcome = connect_and_publish(endpoint, made.certificate_pem, made.key_pem, made.thing_name, topic,
                                  {"thing": made.thing_name, "status": "online"})
    return made, outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_endpoint_arguments(parser)
    parser.add_argument("--claim-cert", type=readable_file, required=True, help="the claim certificate (PEM)")
    parser.add_argument("--claim-key", type=readable_file, required=True, help="the claim's private key (PEM)")
    parser.add_argument("--template", required=True, help="the provisioning template's name")
    parser.add_argument("--serial", required=True, help="the device's serial (the template's SerialNumber)")
    parser.add_argument("--client-id", required=True, help="the claim connection's client id: the stack's "
                                                           "claim prefix followed by the serial")
    parser.add_argument("--topic-root", required=True, help="e.g. dt/<app>: publishes to <root>/<thing>/status")
    parser.add_argument("--csr", action="store_true", help="keep the private key on the device (CSR)")
    parser.add_argument("--out", type=Path, help="write the new certificate and key here")
    args = parser.parse_args(argv)
    try:
        endpoint = endpoint_from(args)
        made, outcome = run(endpoint, args.claim_cert.read_text(), args.claim_key.read_text(), args.client_id,
                            args.template, args.serial, args.topic_root, own_key=args.csr)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{made.thing_name}.pem.crt").write_text(made.certificate_pem)
            key_file = args.out / f"{made.thing_name}.pem.key"
            key_file.touch(mode=0o600, exist_ok=False)
            key_file.write_text(made.key_pem)
    except ProvisioningRejected as rejected:
        print(f"provisioning rejected: {rejected}", file=sys.stderr)
        return 1
    except (OSError, concurrent.futures.TimeoutError, ValueError, RuntimeError) as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(f"provisioned as {made.thing_name} (certificate {made.certificate_id[:10]}…)")
    if not outcome.published:
        print(f"not connected as {made.thing_name}: {'; '.join(outcome.refusals)}", file=sys.stderr)
        return 1
    print(f"connected as {made.thing_name}, published to {outcome.published}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
