"""What a region's IoT registry and inventory say about a device: the observations every
journey and test asserts (one set of them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from cryptography import x509

from tools.harness import ACCOUNT_ID, RecordedResource
from tools.local.emulation.iot_data import CA_TYPE
from tools.local.world import World, plain

T = TypeVar("T")
INVENTORY = "device-inventory"  # the program's export keys of the tables
PROVISIONING = "cvm-provisioning"


def cert_arn(region: str, certificate_id: str) -> str:
    return f"arn:aws:iot:{region}:{ACCOUNT_ID}:cert/{certificate_id}"


def status(world: World, region: str, certificate_id: str) -> str | None:
    iot = world.client("iot", region)
    try:
        return str(iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"])
    except iot.exceptions.ResourceNotFoundException:
        return None


def things_of(world: World, region: str, certificate_id: str) -> list[str]:
    return sorted(world.client("iot", region).list_principal_things(
        principal=cert_arn(region, certificate_id))["things"])


def policies_of(world: World, region: str, certificate_id: str) -> list[str]:
    return sorted(p["policyName"] for p in world.client("iot", region).list_attached_policies(
        target=cert_arn(region, certificate_id))["policies"])


def same_certificate(pem: object, certificate: x509.Certificate) -> bool:
    try:
        return isinstance(pem, str) and x509.load_pem_x509_certificate(pem.encode()) == certificate
    except ValueError:
        return False


def device_ca_registrations(world: World, region: str) -> list[RecordedResource]:
    """The region's declared registrations of the CA the run's devices are issued under, the
    PKI's intermediate (a stack in CA rotation also declares the next one)."""
    return [ca for ca in world.declared(CA_TYPE, region)
            if same_certificate(plain(dict(ca.inputs)).get("caCertificatePem"), world.pki.intermediate.cert)]


def device_ca(world: World, region: str) -> tuple[str, str]:
    """(runtime id, PEM) of the region's one registration of the devices' CA."""
    found = device_ca_registrations(world, region)
    if len(found) != 1:
        raise LookupError(f"{region} declares {len(found)} registrations of the run's intermediate CA, not one")
    return str(world.resolver(found[0].id)), str(world.state(found[0])["caCertificatePem"])


def thing_exists(world: World, region: str, thing: str) -> bool:
    iot = world.client("iot", region)
    try:
        iot.describe_thing(thingName=thing)
        return True
    except iot.exceptions.ResourceNotFoundException:
        return False


def certificates_of(world: World, region: str, thing: str) -> dict[str, str | None]:
    """Certificate id -> status, for every principal attached to the thing."""
    iot = world.client("iot", region)
    try:
        principals = iot.list_thing_principals(thingName=thing)["principals"]
    except iot.exceptions.ResourceNotFoundException:
        return {}
    return {p.rsplit("/", 1)[-1]: status(world, region, p.rsplit("/", 1)[-1]) for p in principals}


def active_certificates(world: World, region: str, thing: str) -> list[str]:
    return sorted(c for c, s in certificates_of(world, region, thing).items() if s == "ACTIVE")


def device_policy(world: World, region: str) -> str:
    return str(world.graph.outputs["regions"][region]["devicePolicyName"])


def usable(world: World, region: str, thing: str, certificate_id: str) -> bool:
    """ACTIVE, the thing's only ACTIVE certificate, attached to it alone, the device policy."""
    return (status(world, region, certificate_id) == "ACTIVE"
            and things_of(world, region, certificate_id) == [thing]
            and policies_of(world, region, certificate_id) == [device_policy(world, region)]
            and active_certificates(world, region, thing) == [certificate_id])


def plain_item(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """A DynamoDB item without its type tags."""
    return None if item is None else {k: next(iter(v.values())) for k, v in item.items()}


def row(world: World, region: str, thing: str) -> dict[str, Any] | None:
    return plain_item(world.client("dynamodb", region).get_item(
        TableName=world.table(INVENTORY), Key={"thingName": {"S": thing}},
        ConsistentRead=True).get("Item"))


def record(world: World, region: str, uid: str) -> dict[str, Any] | None:
    """The provisioning table's item (a CVM record, or a fleet allow-list entry)."""
    return plain_item(world.client("dynamodb", region).get_item(
        TableName=world.table(PROVISIONING), Key={"deviceUid": {"S": uid}},
        ConsistentRead=True).get("Item"))


def wait_for(probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float,
             interval: float = 0.05, world: World | None = None) -> T:
    """Probe until `done(value)` or the timeout (stepping the world's streams when they have
    no thread of their own); returns the last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        if world is not None and not world.background:
            world.settle()
        value = probe()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def converged(world: World, thing: str) -> tuple[bool, str]:
    """One inventory item everywhere, and in every region exactly one ACTIVE certificate for
    the thing: the item's. (ok, what was found)"""
    items = {r: row(world, r, thing) or {} for r in world.regions}
    wanted = {str(i.get("certificateId")) for i in items.values()}
    found = {r: certificates_of(world, r, thing) for r in world.regions}  # one snapshot
    ok = len(wanted) == 1 and all(sorted(c for c, s in found[r].items() if s == "ACTIVE")
                                  == sorted(wanted) for r in world.regions)
    return ok, "; ".join(
        f"{r}: item {str(items[r].get('certificateId'))[:10]} (written in "
        f"{items[r].get('writerRegion')}), "
        + (", ".join(f"{c[:10]} {s}" for c, s in sorted(found[r].items())) or "no certificate")
        for r in world.regions)
