"""CVM: devices without a certificate register over HTTPS with their token.

In the first region of the run that has the CVM, the factory's side first: the manufacturer
tool (`tools/manufacturer.py`, its own code against the local server) adds the batches with
the salt the firmware carries (the salts secret of every region) and imports the device
records from a CSV holding the tokens the devices compute. Then the devices: each sends
`POST https://<provisioning domain>/registration` to the API Gateway emulation, which
serves what the stack declares (custom domain -> stage -> route, the request validator
with the route's JSON-schema model, the AWS_PROXY integration, the function's permission)
and runs the declared function in-process with its declared environment.

* CSR path: the device keeps its key; the certificate certifies the CSR's key.
* Legacy path: a device of a batch the stack lists in `cvm.legacyBatches` sends no CSR and
  gets a key pair. The run adds a batch there when the stack lists none (reported).

Each device ends ACTIVE with its thing and the region's device policy, can connect, is in
the inventory (CVM, AMAZON, version 1) and its record is REGISTERED; the row replicates to
the other regions, where the device is usable once the replication capability exists.

Wire this journey proves: the CVM function gets another table.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lambdas.cvm_registration.logic.tokens import device_token
from tools import manufacturer
from tools.harness import RecordedResource, StackGraph
from tools.local.emulation.api_gateway import ApiGateway, HttpResponse
from tools.local.emulation.device_gateway import DeviceGateway
from tools.local.graph_edit import of_capability, with_inputs
from tools.local.journeys import (
    JourneyRun,
    journey,
    plain_item,
    run_config,
    short,
    wire,
)
from tools.local.journeys.elsewhere import INVENTORY, inventory_row, known_elsewhere
from tools.local.system import LocalSystem

CAPABILITY = "cvm"
FUNCTION_TYPE = "aws:lambda/function:Function"
DOMAIN_TYPE = "aws:apigateway/domainName:DomainName"
SECRET_TYPE = "aws:secretsmanager/secret:Secret"
PROVISIONING = "cvm-provisioning"  # the program's export keys of the tables
REGISTRATION_PATH = "/registration"  # the device contract (components/cvm/README.md)
CSR_BATCH = "LOCAL-2026"
LEGACY_BATCH = "LOCAL-LEGACY"  # added to cvm.legacyBatches when the stack lists none


@run_config("cvm-legacy-batch")
def legacy_batch_for_the_run(config: Mapping[str, Any], project: str
                             ) -> tuple[dict[str, Any], str] | None:
    """The legacy path needs a batch the stack lists; add one only if it lists none."""
    section = config.get(f"{project}:cvm") or {}
    if isinstance(section, str):
        section = json.loads(section)
    if not isinstance(section, Mapping) or section.get("legacyBatches"):
        return None
    return ({"cvm": {**section, "legacyBatches": [LEGACY_BATCH]}},
            f"cvm.legacyBatches = [{LEGACY_BATCH}] (the stack lists no legacy batch; the CVM "
            "journey's legacy-path device needs one)")


@dataclass(frozen=True)
class Device:
    uid: str
    batch: str
    salt: str
    key: ec.EllipticCurvePrivateKey | None  # None: a legacy device (no key of its own)

    @property
    def token(self) -> str:
        return device_token(self.salt, self.uid)  # what the firmware computes

    def request(self) -> dict[str, str]:
        body = {"device_uid": self.uid, "device_token": self.token}
        if self.key is not None:
            csr = (x509.CertificateSigningRequestBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.uid)]))
                   .sign(self.key, hashes.SHA256()))
            body["csr"] = csr.public_bytes(serialization.Encoding.PEM).decode()
        return body


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo))


def _function(system: LocalSystem, region: str) -> RecordedResource:
    found = [f for f in of_capability(system.graph, CAPABILITY, FUNCTION_TYPE) if f.region == region]
    if len(found) != 1:
        raise LookupError(f"{len(found)} CVM functions declared in {region}")
    return found[0]


def _environment(system: LocalSystem, region: str) -> dict[str, str]:
    state = system.state(_function(system, region))
    return dict((state.get("environment") or {}).get("variables") or {})


def registration_url(system: LocalSystem, region: str) -> str:
    """The provisioning domain the stack declares in `region`, and the device contract's path."""
    domains = [d for d in of_capability(system.graph, CAPABILITY, DOMAIN_TYPE) if d.region == region]
    if len(domains) != 1:
        raise LookupError(f"{len(domains)} CVM custom domains declared in {region}")
    return f"https://{domains[0].inputs['domainName']}{REGISTRATION_PATH}"


def _tool(system: LocalSystem, region: str) -> manufacturer.Manufacturer:
    stack = dataclasses.replace(manufacturer.Stack.load(system.stack, system.project_dir),
                                regions=tuple(system.regions))
    return manufacturer.Manufacturer(stack, region, system.session(), out=io.StringIO(),
                                     err=io.StringIO())


def post(system: LocalSystem, region: str, body: Mapping[str, Any]) -> HttpResponse:
    return system.emulation(ApiGateway).request(region, "POST", registration_url(system, region),
                                                json.dumps(body))


def _summary(response: HttpResponse) -> str:
    try:
        payload = response.json().get("payload") or {}
    except ValueError:
        payload = {"body": response.body[:120]}
    shown = {k: short(str(v), 64 if k == "message" else 24) for k, v in payload.items()
             if k in ("message", "field", "thing_name", "certificate_id")}
    return f"HTTP {response.status} from {response.answered_by}: {shown}"


def factory(run: JourneyRun, region: str, devices: list[Device]) -> manufacturer.Manufacturer:
    """The factory's steps for these devices (batches, record import); returns the tool."""
    with tempfile.TemporaryDirectory(prefix="local-run-cvm-") as directory:
        _factory(run, region, devices, Path(directory))
    return _tool(run.system, region)


def _factory(run: JourneyRun, region: str, devices: list[Device], workdir: Path) -> None:
    system = run.system
    tool = _tool(system, region)
    exported = system.graph.outputs["tables"]
    batches = sorted({d.batch for d in devices})
    with run.step(f"factory: the manufacturer tool adds batch(es) {', '.join(batches)} with the "
                  "firmware's salt, in every region's salts secret", region=region) as step:
        for batch in batches:
            salt_file = workdir / f"{batch}.salt"
            salt_file.write_text(next(d.salt for d in devices if d.batch == batch))
            tool.add_batch(batch, salt_file)
        found = {r: sorted(tool.salts.read(r)) for r in system.regions}
        # The tool derives the table names from the stack's config; the program exports them.
        same_names = (tool.stack.provisioning_table == exported[PROVISIONING]["name"]
                      and tool.stack.inventory_table == exported[INVENTORY]["name"])
        step.check(all(set(batches) <= set(b) for b in found.values()) and same_names,
                   "; ".join(f"{r}: {', '.join(b) or 'no batch'}" for r, b in found.items())
                   + f"; the tool's table names = the stack's exported tables: {same_names}")

    with run.step(f"factory: the tool imports {len(devices)} device record(s) from a CSV with the "
                  "devices' tokens (checked against the batch salt)", region=region) as step:
        imported = 0
        for batch in batches:
            path = workdir / f"{batch}.csv"
            with path.open("w", newline="") as stream:
                writer = csv.writer(stream)
                writer.writerow(["device_uid", "device_token"])
                writer.writerows([d.uid, d.token] for d in devices if d.batch == batch)
            report = tool.import_devices(batch, path, salt_file=None, salt_version=None,
                                         dry_run=False)
            imported += report.imported
        records = {d.uid: plain_item(system.client("dynamodb", region).get_item(
            TableName=tool.stack.provisioning_table, Key={"deviceUid": {"S": d.uid}},
            ConsistentRead=True).get("Item")) or {} for d in devices}
        step.check(imported == len(devices)
                   and all(r.get("registrationState") == "UNREGISTERED" for r in records.values()),
                   f"{imported} imported; " + ", ".join(
                       f"{uid} {r.get('registrationState')} batch {r.get('batch')}"
                       for uid, r in records.items()))


def _registers(run: JourneyRun, region: str, device: Device) -> None:
    system = run.system
    iot = system.client("iot", region)
    path = "CSR" if device.key is not None else "legacy"
    with run.step(f"{path} path: device {device.uid} registers at "
                  f"{registration_url(system, region)}", region=region) as step:
        response = post(system, region, device.request())
        payload = response.json().get("payload") or {} if response.status == 200 else {}
        certificate_pem = (payload.get("certificates") or {}).get("device_certificate", "")
        own_key = False
        if certificate_pem:
            certified = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
            device_key = device.key.public_key() if device.key is not None else \
                serialization.load_pem_private_key(
                    payload["keyPair"]["privateKey"].encode(), None).public_key()
            own_key = _spki(certified) == _spki(device_key)
        key_pair = "keyPair" in payload
        step.check(response.status == 200 and response.answered_by.startswith("function")
                   and own_key and key_pair == (device.key is None),
                   _summary(response) + f"; certificate certifies the "
                   f"{'CSR' if device.key is not None else 'returned key pair'}'s key: {own_key}"
                   f"; key pair in the answer: {key_pair}")
    thing, certificate_id = payload["thing_name"], payload["certificate_id"]

    with run.step("certificate ACTIVE, thing attached, the region's device policy attached",
                  region=region) as step:
        described = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
        things = iot.list_principal_things(principal=described["certificateArn"])["things"]
        policies = sorted(p["policyName"] for p in iot.list_attached_policies(
            target=described["certificateArn"])["policies"])
        device_policy = system.graph.outputs["regions"][region]["devicePolicyName"]
        step.check(described["status"] == "ACTIVE" and things == [thing]
                   and policies == [device_policy],
                   f"certificate {short(certificate_id)} {described['status']}, things {things}, "
                   f"policies {policies}")

    with run.step(f"{thing} can connect as its thing", region=region) as step:
        allowed, why = system.emulation(DeviceGateway).authorize_connect(region, certificate_pem,
                                                                          thing)
        step.check(allowed, why)

    with run.step("inventory item (CVM, AMAZON, version 1) and record REGISTERED",
                  region=region) as step:
        row = inventory_row(system, region, thing) or {}
        tool = _tool(system, region)
        record = plain_item(system.client("dynamodb", region).get_item(
            TableName=tool.stack.provisioning_table, Key={"deviceUid": {"S": device.uid}},
            ConsistentRead=True).get("Item")) or {}
        expected = {"certificateId": certificate_id, "status": "ACTIVE", "onboarding": "CVM",
                    "issuer": "AMAZON", "originRegion": region, "writerRegion": region,
                    "version": "1", "certificatePem": certificate_pem}
        wrong = sorted(k for k, v in expected.items() if row.get(k) != v)
        step.check(not wrong and record.get("registrationState") == "REGISTERED",
                   f"row {thing}: " + ", ".join(f"{k}={short(str(row.get(k)), 16)}"
                                                for k in expected if k != "certificatePem")
                   + f"; record {record.get('registrationState')}",
                   f"unexpected: {', '.join(wrong)}" if wrong else "record not REGISTERED")

    with run.step("the same token again is a conflict (409): one certificate per device",
                  region=region) as step:
        again = post(system, region, device.request())
        step.check(again.status == 409, _summary(again))

    known_elsewhere(run, region, thing, row, certificate_pem, without="registering there")


@journey("cvm", "CVM: devices register with their token (CSR and legacy path); then known "
         "everywhere", capability=CAPABILITY, order=20)
def cvm(run: JourneyRun) -> None:
    system = run.system
    regions = run.regions_with(CAPABILITY, "CVM registration")
    if not regions:
        return
    region = regions[0]
    legacy = [b for b in _environment(system, region).get("LEGACY_BATCHES", "").split(",") if b]
    devices = [Device(f"CVM-CSR-{region}", CSR_BATCH, "local-salt-csr-batch",
                      ec.generate_private_key(ec.SECP256R1()))]
    if legacy:
        devices.append(Device(f"CVM-LEGACY-{region}", legacy[0], "local-salt-legacy-batch", None))
    factory(run, region, devices)

    with run.step("the gateway refuses a body its model rejects (400 naming the field), "
                  "before the function", region=region) as step:
        response = post(system, region, {"device_uid": devices[0].uid})
        message = str((response.json().get("payload") or {}).get("message", ""))
        step.check(response.status == 400 and response.answered_by.startswith("gateway")
                   and "device_token" in message, _summary(response))

    for device in devices:
        _registers(run, region, device)
    if not legacy:
        run.skipped("legacy path", region=region,
                    reason="the CVM function lists no legacy batch (LEGACY_BATCHES)")


# --- wires this journey proves ----------------------------------------------------------------

@wire("cvm-lambda-uses-another-table", journey="cvm",
      description="the CVM registration function writes the inventory into another table")
def lambda_uses_another_table(graph: StackGraph) -> StackGraph:
    functions = of_capability(graph, CAPABILITY, FUNCTION_TYPE)
    if not functions:
        raise LookupError(f"no {FUNCTION_TYPE} in capability {CAPABILITY}")

    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        variables = inputs["environment"]["variables"]
        variables["INVENTORY_TABLE_NAME"] = f"{variables['INVENTORY_TABLE_NAME']}-old"
        return inputs
    for function in functions:
        graph = with_inputs(graph, graph.named(function.name), change)
    return graph
