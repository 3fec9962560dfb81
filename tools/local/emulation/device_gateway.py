"""The device side of AWS IoT in each region: auto-registration and connect authorisation.

moto has no MQTT endpoint. This emulation does what IoT does when a device presents a
certificate in a region:

* unknown certificate issued by a CA registered there (active, auto-registration allowed,
  as declared): IoT registers it `PENDING_ACTIVATION`, drops the connection and publishes
  `$aws/events/certificates/registered/<caCertificateId>` (`auto_register`, then
  `publish_registered` into the rules-engine emulation);
* known certificate: the connection is allowed only if the certificate is ACTIVE and an
  attached policy grants `iot:Connect` on `client/<clientId>`, with the thing policy
  variables set when the client id is a thing attached to the certificate
  (`authorize_connect`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from tools.local.emulation import emulation
from tools.local.emulation.policy_eval import allows
from tools.local.emulation.rules_engine import Delivery, RulesEngine
from tools.local.system import LocalSystem

CA_TYPE = "aws:iot/caCertificate:CaCertificate"
REGISTERED_TOPIC = "$aws/events/certificates/registered/{ca_id}"


class ConnectionRefused(Exception):
    pass


def certificate_id(pem: str) -> str:
    """AWS IoT's certificate id: SHA-256 of the DER encoding."""
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _issued_by(certificate: x509.Certificate, ca_pem: str) -> bool:
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    try:
        certificate.verify_directly_issued_by(ca)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class Registration:
    region: str
    certificate_id: str
    certificate_arn: str
    ca_certificate_id: str
    account: str
    registered_at_ms: int

    @property
    def topic(self) -> str:
        return REGISTERED_TOPIC.format(ca_id=self.ca_certificate_id)

    def event(self) -> dict[str, Any]:
        """The message IoT publishes for a JITR registration."""
        return {"certificateId": self.certificate_id, "caCertificateId": self.ca_certificate_id,
                "timestamp": self.registered_at_ms, "certificateStatus": "PENDING_ACTIVATION",
                "awsAccountId": self.account,
                "certificateRegistrationTimestamp": str(self.registered_at_ms)}


class DeviceGateway:
    def __init__(self, system: LocalSystem) -> None:
        self._system = system

    def _cas(self, region: str) -> list[Mapping[str, Any]]:
        """Declared CA registrations of the region, with their runtime ids."""
        out: list[Mapping[str, Any]] = []
        for resource in self._system.declared(CA_TYPE, region):
            state = self._system.state(resource)
            out.append({**state, "runtimeId": self._system.resolver(resource.id)})
        return out

    def auto_register(self, region: str, certificate_pem: str) -> Registration:
        iot = self._system.client("iot", region)
        cert_id = certificate_id(certificate_pem)
        try:
            status = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"]
        except ClientError:
            status = None
        if status is not None:
            raise ConnectionRefused(f"certificate already registered in {region} ({status}): "
                                    "IoT does not auto-register it again")
        device = x509.load_pem_x509_certificate(certificate_pem.encode())
        for ca in self._cas(region):
            if not _issued_by(device, ca["caCertificatePem"]):
                continue
            described = iot.describe_ca_certificate(certificateId=ca["runtimeId"])
            if described["certificateDescription"]["status"] != "ACTIVE":
                raise ConnectionRefused(f"issuing CA {ca['runtimeId']} is not ACTIVE in {region}")
            if not ca.get("allowAutoRegistration"):
                raise ConnectionRefused(f"issuing CA {ca['runtimeId']} does not allow "
                                        f"auto-registration in {region}")
            registered = iot.register_certificate(
                certificatePem=certificate_pem, caCertificatePem=ca["caCertificatePem"],
                status="PENDING_ACTIVATION")
            return Registration(region, registered["certificateId"],
                                registered["certificateArn"], ca["runtimeId"],
                                registered["certificateArn"].split(":")[4],
                                int(time.time() * 1000))
        raise ConnectionRefused(f"no CA registered in {region} issued this certificate")

    def publish_registered(self, registration: Registration) -> list[Delivery]:
        return self._system.emulation(RulesEngine).publish(
            registration.region, registration.topic, registration.event())

    def authorize_connect(self, region: str, certificate_pem: str, client_id: str
                          ) -> tuple[bool, str]:
        """Would IoT in `region` accept this device connecting as `client_id`? (ok, why)"""
        iot = self._system.client("iot", region)
        cert_id = certificate_id(certificate_pem)
        try:
            description = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
        except ClientError:
            return False, "certificate unknown in this region"
        if description["status"] != "ACTIVE":
            return False, f"certificate {description['status']}"
        arn = description["certificateArn"]
        things = iot.list_principal_things(principal=arn)["things"]
        attached = client_id in things
        context = {"iot:ClientId": client_id,
                   "iot:Connection.Thing.IsAttached": "true" if attached else "false"}
        if attached:
            context["iot:Connection.Thing.ThingName"] = client_id
        names = [p["policyName"] for p in iot.list_attached_policies(target=arn)["policies"]]
        documents = [iot.get_policy(policyName=n)["policyDocument"] for n in names]
        resource = f"arn:aws:iot:{region}:{arn.split(':')[4]}:client/{client_id}"
        if allows(documents, "iot:Connect", resource, context=context):
            return True, (f"ACTIVE, thing {client_id} attached, policy {', '.join(names)} "
                          f"allows iot:Connect")
        return False, (f"no attached policy ({', '.join(names) or 'none'}) allows iot:Connect as "
                       f"{client_id} (things attached: {', '.join(things) or 'none'})")

    def describe(self) -> str:
        return "device gateway: JITR auto-registration from the declared CA registrations, connect authorisation"

    def stop(self) -> None:
        pass


@emulation("device-gateway")
def start(system: LocalSystem) -> DeviceGateway | None:
    if not any(system.declared(CA_TYPE, r) for r in system.regions):
        return None
    return DeviceGateway(system)
