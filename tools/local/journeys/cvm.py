"""CVM: devices without a certificate register over HTTPS with their token.

Steps: `factory` (the manufacturer tool adds the batches with the firmware's salt to every
region's salts secret and imports the device records from a CSV of the devices' tokens),
`register` (the device's POST to `https://<provisioning domain>/registration`, served by the
API Gateway emulation from what the stack declares, the function in-process). The legacy
path needs a batch in `cvm.legacyBatches`: the run adds one when the stack lists none.
Wire: the function writes the inventory into another table.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from components.edge.device_policy import telemetry_topic
from lambdas.contracts.cvm_device import Attr as Record
from lambdas.contracts.cvm_device import State
from lambdas.cvm_registration.logic.tokens import device_token
from tools import manufacturer
from tools.harness import RecordedResource, StackGraph
from tools.local.emulation.api_gateway import ApiGateway, HttpResponse
from tools.local.graph_edit import of_capability, with_each
from tools.local.journeys import JourneyRun, journey, run_config, short, shown, wire
from tools.local.journeys import registry as seen
from tools.local.journeys.jitr import app_name
from tools.local.world import World

CAPABILITY = "cvm"
REGISTRATION_PATH = "/registration"  # the device contract (components/cvm/README.md)
CSR_BATCH, LEGACY_BATCH = "LOCAL-2026", "LOCAL-LEGACY"


@run_config("cvm-legacy-batch")
def legacy_batch_for_the_run(config: Mapping[str, Any], project: str
                             ) -> tuple[dict[str, Any], str] | None:
    enabled = config.get(f"{project}:capabilities")
    enabled = json.loads(enabled) if isinstance(enabled, str) else enabled
    if isinstance(enabled, list) and CAPABILITY not in enabled:
        return None  # a stack without the CVM: a cvm section would be refused as unused
    section = config.get(f"{project}:cvm") or {}
    section = json.loads(section) if isinstance(section, str) else section
    if not isinstance(section, Mapping) or section.get("legacyBatches"):
        return None
    return ({"cvm": {**section, "legacyBatches": [LEGACY_BATCH]}},
            f"cvm.legacyBatches = [{LEGACY_BATCH}] (the stack lists no legacy batch; the CVM "
            "journey's legacy-path device needs one)")


@dataclass(frozen=True)
class Device:
    uid: str
    batch: str = CSR_BATCH
    salt: str = "local-salt-csr-batch"
    legacy: bool = False  # no key of its own: the CVM returns a key pair
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def token(self) -> str:
        return device_token(self.salt, self.uid)  # what the firmware computes

    def request(self) -> dict[str, str]:
        from examples.devices import cvm_device  # the device SDK: only when a device runs

        return cvm_device.registration_request(self.uid, self.token, None if self.legacy else self.key)


def function(world: World, region: str) -> RecordedResource:
    [found] = [f for f in of_capability(world.graph, CAPABILITY, "aws:lambda/function:Function")
               if f.region == region]
    return found


def registration_url(world: World, region: str, path: str = REGISTRATION_PATH) -> str:
    [domain] = [d for d in of_capability(world.graph, CAPABILITY, "aws:apigateway/domainName:DomainName")
                if d.region == region]
    return f"https://{domain.inputs['domainName']}{path}"


def tool(world: World, region: str) -> manufacturer.Manufacturer:
    stack = dataclasses.replace(manufacturer.Stack.load(world.stack, world.project_dir),
                                regions=tuple(world.regions))
    return manufacturer.Manufacturer(stack, region, world.session(), out=io.StringIO(), err=io.StringIO())


def factory(world: World, region: str, devices: Sequence[Device]) -> manufacturer.Manufacturer:
    """The factory's side: batches with their salt (every region), records from a CSV."""
    made = tool(world, region)
    with tempfile.TemporaryDirectory(prefix="local-cvm-") as directory:
        for batch in sorted({d.batch for d in devices}):
            mine = [d for d in devices if d.batch == batch]
            salt_file, csv_file = Path(directory) / f"{batch}.salt", Path(directory) / f"{batch}.csv"
            salt_file.write_text(mine[0].salt)
            made.add_batch(batch, salt_file)
            with csv_file.open("w", newline="") as stream:
                csv.writer(stream).writerows([["device_uid", "device_token"],
                                              *[[d.uid, d.token] for d in mine]])
            made.import_devices(batch, csv_file, salt_file=None, salt_version=None, dry_run=False)
    return made


def post(world: World, region: str, body: Mapping[str, Any], path: str = REGISTRATION_PATH) -> HttpResponse:
    return world.emulation(ApiGateway).request(region, "POST", registration_url(world, region, path),
                                               json.dumps(body))


def summary(response: HttpResponse) -> str:
    try:
        payload = response.json().get("payload") or {}
    except ValueError:
        payload = {"body": response.body[:120]}
    found = {k: short(str(v), 64 if k == "message" else 24) for k, v in payload.items()
             if k in ("message", "field", "thing_name", "certificate_id")}
    return f"HTTP {response.status} from {response.answered_by}: {shown(found)}"


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def certified_key_matches(device: Device, payload: Mapping[str, Any]) -> bool:
    """The certificate certifies the device's own key (CSR) or the returned key pair's."""
    pem = (payload.get("certificates") or {}).get("device_certificate")
    if not pem:
        return False
    key = (serialization.load_pem_private_key(payload["keyPair"]["privateKey"].encode(), None)
           if device.legacy else device.key)
    return _spki(x509.load_pem_x509_certificate(pem.encode()).public_key()) == _spki(key.public_key())


def _registers(run: JourneyRun, region: str, device: Device) -> None:
    world = run.world
    with run.step(f"{'legacy' if device.legacy else 'CSR'} path: device {device.uid} registers at "
                  f"{registration_url(world, region)}", region=region) as step:
        response = post(world, region, device.request())
        payload = (response.json().get("payload") or {}) if response.status == 200 else {}
        own_key = certified_key_matches(device, payload)
        step.check(response.status == 200 and own_key and ("keyPair" in payload) == device.legacy,
                   f"{summary(response)}; certificate certifies the device's key: {own_key}")
    thing, certificate_id = payload["thing_name"], payload["certificate_id"]
    pem = payload["certificates"]["device_certificate"]

    from examples.devices import cvm_device
    from examples.devices.mqtt import connect_and_publish
    from tools.local.emulation.device_endpoint import DeviceEndpoints

    endpoints = world.emulation(DeviceEndpoints)
    topic = f"{telemetry_topic(app_name(world), thing)}/status"
    with run.step("certificate ACTIVE, thing attached, device policy; the device connects with the SDK "
                  "(CONNACK) and its publish arrives; inventory item (CVM, AMAZON, version 1); record "
                  "REGISTERED", region=region) as step:
        made = cvm_device.credentials(payload, None if device.legacy else device.key)
        outcome = connect_and_publish(endpoints.endpoint(region), made.certificate_pem, made.key_pem, thing,
                                      topic, {"thing": thing, "status": "online"})
        allowed = outcome.published != "" and endpoints.wait_for_message(region, thing, topic) is not None
        why = (f"connected, publish to {topic} arrived" if allowed else
               f"not connected or not published: {'; '.join(outcome.refusals)} "
               f"{'; '.join(endpoints.log(region).refusals[-1:])}")
        row, record = seen.row(world, region, thing) or {}, seen.record(world, region, device.uid) or {}
        expected = {"certificateId": certificate_id, "status": "ACTIVE", "onboarding": "CVM",
                    "issuer": "AMAZON", "originRegion": region, "writerRegion": region,
                    "version": "1", "certificatePem": pem}
        wrong = sorted(k for k, v in expected.items() if row.get(k) != v)
        step.check(seen.usable(world, region, thing, certificate_id) and allowed and not wrong
                   and record.get(Record.STATE) == State.REGISTERED,
                   f"connect: {why}; row {thing}: " + ", ".join(
                       f"{k}={short(str(row.get(k)), 16)}" for k in expected if k != "certificatePem")
                   + f"; record {record.get(Record.STATE)}",
                   f"unexpected: {', '.join(wrong)}" if wrong else "not usable or not REGISTERED")

    if device.legacy:
        with run.step("the same token again is a conflict (409): one certificate per device",
                      region=region) as step:
            again = post(world, region, device.request())
            step.check(again.status == 409, summary(again))
    else:
        with run.step("the same token and key again (a lost answer) get the same certificate; "
                      "another key is a conflict (409)", region=region) as step:
            again = post(world, region, device.request())
            same = again.status == 200 and (again.json().get("payload") or {}).get(
                "certificate_id") == certificate_id
            other = post(world, region, Device(device.uid, device.batch, device.salt).request())
            step.check(same and other.status == 409,
                       f"{summary(again)}; another key: HTTP {other.status}")
    run.known_elsewhere(region, thing, row, pem, without="registering there")


@journey("cvm", "CVM: devices register with their token (CSR and legacy path); then known "
         "everywhere", capability=CAPABILITY, order=20, uses=("replication",),
         beside_background=True)
def cvm(run: JourneyRun) -> None:
    world = run.world
    regions = run.regions_with(CAPABILITY, "CVM registration")
    if not regions:
        return
    region = regions[0]
    legacy = [b for b in world.state(function(world, region))["environment"]["variables"]
              .get("LEGACY_BATCHES", "").split(",") if b]
    devices = [Device(f"CVM-CSR-{region}")]
    devices += [Device(f"CVM-LEGACY-{region}", legacy[0], "local-salt-legacy-batch", True)] if legacy else []
    with run.step(f"factory: the manufacturer tool adds the batches to every region's salts "
                  f"secret and imports {len(devices)} device record(s) from a CSV", region=region) as step:
        made = factory(world, region, devices)
        exported = (made.stack.provisioning_table, made.stack.inventory_table) == (
            world.table(seen.PROVISIONING), world.table(seen.INVENTORY))
        batches = {r: sorted(made.salts.read(r)) for r in world.regions}
        records = {d.uid: (seen.record(world, region, d.uid) or {}).get(Record.STATE)
                   for d in devices}
        step.check(exported and all({d.batch for d in devices} <= set(b) for b in batches.values())
                   and set(records.values()) == {"UNREGISTERED"},
                   f"batches {shown(batches)}; records {shown(records)}; the tool's tables are the stack's: {exported}",
                   "expected every device's batch exported and every record UNREGISTERED")

    with run.step("the gateway refuses a body its model rejects (400), before the function",
                  region=region) as step:
        response = post(world, region, {"device_uid": devices[0].uid})
        step.check(response.status == 400 and response.answered_by.startswith("gateway")
                   and response.json()["status"] == "ERROR", summary(response))
    for device in devices:
        _registers(run, region, device)
    if not legacy:
        run.skipped("legacy path", region=region, reason="the CVM lists no legacy batch")


@wire("cvm-lambda-uses-another-table", journey="cvm",
      description="the CVM registration function writes the inventory into another table")
def lambda_uses_another_table(graph: StackGraph) -> StackGraph:
    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        inputs["environment"]["variables"]["INVENTORY_TABLE_NAME"] += "-old"
        return inputs
    return with_each(graph, of_capability(graph, CAPABILITY, "aws:lambda/function:Function"), change,
                     f"function in capability {CAPABILITY}")
