"""The device side of AWS IoT in each region (moto has no data plane), which the device endpoint
calls: `auto_register` (JITR of an unknown certificate of a registered CA, its registered event to
the rules engine by `publish_registered`) and `authorize` / `authorize_connect` (an ACTIVE
certificate's attached policies, with the thing policy variables). Behaviours and AWS pages:
docs/emulation.md, "IoT rules engine and data plane" and "Device endpoint".
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from lambdas.contracts.certificates import certificate_id as contract_certificate_id

from tools.local.emulation import emulation
from tools.local.emulation.policy import allows
from tools.local.emulation.rules_engine import Delivery, RulesEngine
from tools.local.world import World

CA_TYPE = "aws:iot/caCertificate:CaCertificate"


class ConnectionRefused(Exception):
    pass


certificate_id = contract_certificate_id  # AWS IoT's id: SHA-256 of the DER (one derivation)


def _issued_by(certificate: x509.Certificate, ca_pem: str) -> bool:
    try:
        certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem.encode()))
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class Registration:
    region: str
    certificate_id: str
    certificate_arn: str
    ca_certificate_id: str
    registered_at_ms: int

    @property
    def topic(self) -> str:
        return f"$aws/events/certificates/registered/{self.ca_certificate_id}"

    def event(self) -> dict[str, Any]:
        """The message IoT publishes for a JITR registration."""
        return {"certificateId": self.certificate_id, "caCertificateId": self.ca_certificate_id,
                "timestamp": self.registered_at_ms, "certificateStatus": "PENDING_ACTIVATION",
                "awsAccountId": self.certificate_arn.split(":")[4],
                "certificateRegistrationTimestamp": str(self.registered_at_ms)}


class IotData:
    def __init__(self, world: World) -> None:
        self._world = world

    def auto_register(self, region: str, certificate_pem: str) -> Registration:
        iot = self._world.client("iot", region)
        try:
            status = iot.describe_certificate(
                certificateId=certificate_id(certificate_pem))["certificateDescription"]["status"]
            raise ConnectionRefused(f"certificate already registered in {region} ({status}): "
                                    "IoT does not auto-register it again")
        except iot.exceptions.ResourceNotFoundException:
            pass
        device = x509.load_pem_x509_certificate(certificate_pem.encode())
        for resource in self._world.declared(CA_TYPE, region):
            declared = self._world.state(resource)  # moto does not keep auto-registration
            ca_pem, ca_id = declared["caCertificatePem"], self._world.resolver(resource.id)
            if not _issued_by(device, ca_pem):
                continue
            status = iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]["status"]
            if status != "ACTIVE" or not declared.get("allowAutoRegistration"):
                raise ConnectionRefused(f"issuing CA {ca_id} in {region}: {status}, auto-registration "
                                        f"{'on' if declared.get('allowAutoRegistration') else 'off'}")
            registered = iot.register_certificate(certificatePem=certificate_pem,
                                                  caCertificatePem=ca_pem, status="PENDING_ACTIVATION")
            return Registration(region, registered["certificateId"], registered["certificateArn"],
                                ca_id, int(time.time() * 1000))
        raise ConnectionRefused(f"no CA registered in {region} issued this certificate")

    def publish_registered(self, registration: Registration) -> list[Delivery]:
        return self._world.emulation(RulesEngine).publish(
            registration.region, registration.topic, registration.event())

    def authorize(self, region: str, certificate_pem: str, client_id: str, action: str,
                  resource: str) -> tuple[bool, str]:
        """Would IoT in `region` let this device, connected as `client_id`, do `action` on
        `resource` (e.g. "client/<id>")? (ok, why)"""
        iot = self._world.client("iot", region)
        claimed = self.claim_allows(region, certificate_pem, action, resource)
        if claimed is not None:
            return claimed
        try:
            description = iot.describe_certificate(
                certificateId=certificate_id(certificate_pem))["certificateDescription"]
        except ClientError:
            return False, "certificate unknown in this region"
        if description["status"] != "ACTIVE":
            return False, f"certificate {description['status']}"
        arn = description["certificateArn"]
        things = iot.list_principal_things(principal=arn)["things"]
        context: Mapping[str, str] = {
            "iot:ClientId": client_id,
            "iot:Connection.Thing.IsAttached": "true" if client_id in things else "false",
            **({"iot:Connection.Thing.ThingName": client_id} if client_id in things else {})}
        names = [p["policyName"] for p in iot.list_attached_policies(target=arn)["policies"]]
        documents = [iot.get_policy(policyName=n)["policyDocument"] for n in names]
        target = f"arn:aws:iot:{region}:{arn.split(':')[4]}:{resource}"
        if allows(documents, action, target, context=context):
            return True, f"ACTIVE, thing {client_id} attached, policy {', '.join(names)} allows {action}"
        return False, (f"no attached policy ({', '.join(names) or 'none'}) allows {action} on "
                       f"{resource} as {client_id} (things attached: {', '.join(things) or 'none'})")

    def claim_allows(self, region: str, certificate_pem: str, action: str,
                     resource: str) -> tuple[bool, str] | None:
        """A fleet provisioning claim's rights (its claim policy, the same evaluator), or None
        when the certificate is no claim of the region's template."""
        from tools.local.emulation.fleet_provisioning import FleetProvisioning

        if FleetProvisioning not in self._world.emulations:
            return None
        return self._world.emulation(FleetProvisioning).claim_allows(
            region, certificate_id(certificate_pem), action, resource)

    def authorize_connect(self, region: str, certificate_pem: str, client_id: str) -> tuple[bool, str]:
        return self.authorize(region, certificate_pem, client_id, "iot:Connect", f"client/{client_id}")

    def describe(self) -> str:
        return "IoT data plane: JITR auto-registration, policy-checked connect/publish/subscribe"

    def stop(self) -> None:
        pass


@emulation("iot_data")
def start(world: World) -> IotData | None:
    return IotData(world) if world.declared(CA_TYPE) else None
