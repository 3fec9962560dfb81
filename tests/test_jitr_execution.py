"""The real JITR ASL, executed by moto's Step Functions interpreter against moto IoT and
DynamoDB (see tests/support/sfn_adapter.py for what the adapter makes behave like AWS).

Every scenario asserts the resulting IoT and inventory state, not only the execution status.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from components.jitr.component import state_machine_definition
from lambdas.jitr_certificate_check import app as check_app
from tests.support.certificates import NOW, Issued, issue
from tests.support.sfn_adapter import SfnAdapter

pytestmark = pytest.mark.slow

REGION = "eu-west-1"
ACCOUNT = "123456789012"
TABLE = "iotmr-test-device-inventory"
POLICY = "iotmr-test-device"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:iotmr-test-jitr-check"


# --- one region of AWS, in moto -----------------------------------------------------------

@dataclass
class Region:
    iot: Any
    dynamodb: Any
    sfn: Any
    adapter: SfnAdapter
    machine_arn: str
    ca: Issued
    ca_id: str
    _names: Iterator[int] = field(default_factory=itertools.count)

    def register(self, device: Issued, ca_pem: str | None = None) -> str:
        """What AWS IoT does on a device's first connection (JITR): PENDING_ACTIVATION."""
        if ca_pem is None:
            response = self.iot.register_certificate_without_ca(
                certificatePem=device.pem, status="PENDING_ACTIVATION")
        else:
            response = self.iot.register_certificate(
                certificatePem=device.pem, caCertificatePem=ca_pem, status="PENDING_ACTIVATION")
        return response["certificateId"]

    def event(self, certificate_id: str) -> dict[str, Any]:
        """The message AWS IoT publishes on $aws/events/certificates/registered/<caId>."""
        millis = int(time.time() * 1000)
        return {"certificateId": certificate_id, "caCertificateId": self.ca_id,
                "timestamp": millis, "certificateStatus": "PENDING_ACTIVATION",
                "awsAccountId": ACCOUNT, "certificateRegistrationTimestamp": str(millis)}

    def run(self, certificate_id: str) -> dict[str, Any]:
        execution = self.sfn.start_execution(
            stateMachineArn=self.machine_arn, name=f"jitr-test-{next(self._names)}",
            input=json.dumps(self.event(certificate_id)))["executionArn"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.02)
        raise AssertionError(f"{execution} still running after 30 s")

    def cert_arn(self, certificate_id: str) -> str:
        return f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/{certificate_id}"

    def status(self, certificate_id: str) -> str:
        return self.iot.describe_certificate(
            certificateId=certificate_id)["certificateDescription"]["status"]

    def thing_exists(self, name: str) -> bool:
        return any(t["thingName"] == name for t in self.iot.list_things()["things"])

    def things_of(self, certificate_id: str) -> list[str]:
        return self.iot.list_principal_things(principal=self.cert_arn(certificate_id))["things"]

    def policies_of(self, certificate_id: str) -> list[str]:
        attached = self.iot.list_attached_policies(target=self.cert_arn(certificate_id))
        return [p["policyName"] for p in attached["policies"]]

    def row(self, thing_name: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(TableName=TABLE, Key={"thingName": {"S": thing_name}},
                                      ConsistentRead=True).get("Item")
        return None if item is None else {k: next(iter(v.values())) for k, v in item.items()}

    def put_row(self, thing_name: str, certificate: Issued, certificate_id: str, *,
                status: str = "ACTIVE", origin: str = "us-west-2") -> dict[str, Any]:
        item = {"thingName": {"S": thing_name}, "certificateId": {"S": certificate_id},
                "certificatePem": {"S": certificate.pem}, "caCertificateId": {"S": "ca-in-" + origin},
                "originRegion": {"S": origin}, "status": {"S": status}, "onboarding": {"S": "JITR"},
                "notAfter": {"S": "2030-01-01T00:00:00Z"}, "version": {"N": "3"},
                "updatedAt": {"S": "2026-01-01T00:00:00Z"}}
        self.dynamodb.put_item(TableName=TABLE, Item=item)
        row = self.row(thing_name)
        assert row is not None
        return row

    def assert_registered(self, thing_name: str, certificate_id: str) -> None:
        assert self.status(certificate_id) == "ACTIVE"
        assert self.thing_exists(thing_name)
        assert self.things_of(certificate_id) == [thing_name]
        assert self.policies_of(certificate_id) == [POLICY]

    def assert_nothing_usable(self, thing_name: str, certificate_id: str) -> None:
        """Full rollback: no active cert, no attachment, no thing, no row."""
        assert self.status(certificate_id) != "ACTIVE"
        assert self.things_of(certificate_id) == []
        assert self.policies_of(certificate_id) == []
        assert not self.thing_exists(thing_name)
        assert self.row(thing_name) is None


@pytest.fixture
def region(monkeypatch: pytest.MonkeyPatch) -> Iterator[Region]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION,
                       "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                       "POWERTOOLS_TRACE_DISABLED": "true",
                       "POWERTOOLS_METRICS_NAMESPACE": "test"}.items():
        monkeypatch.setenv(key, value)
    root = issue("Test Root CA", ca=True)
    ca = issue("Test Device Issuing CA", root, ca=True)
    monkeypatch.setenv("CA_CERTIFICATE_PEM", ca.pem)
    config = {"stepfunctions": {"execute_state_machine": True}, "iot": {"use_valid_cert": True}}
    with mock_aws(config=config):  # type: ignore[call-overload]
        iot = boto3.client("iot", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        ca_id = iot.register_ca_certificate(caCertificate=ca.pem, setAsActive=True,
                                            allowAutoRegistration=True)["certificateId"]
        iot.create_policy(policyName=POLICY, policyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
                           "Resource": f"arn:aws:iot:{REGION}:{ACCOUNT}:client/${{iot:Connection.Thing.ThingName}}"}]}))
        dynamodb.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "thingName", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "thingName", "AttributeType": "S"}])
        definition = state_machine_definition(
            region=REGION, check_function_arn=FUNCTION_ARN, table_name=TABLE,
            device_policy_name=POLICY, retry_interval_seconds=1, retry_max_attempts=2)
        adapter = SfnAdapter({FUNCTION_ARN: check_app.handler})
        with adapter.active():
            machine_arn = sfn.create_state_machine(
                name="iotmr-test-jitr", definition=definition, type="STANDARD",
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/iotmr-test-jitr-sfn")["stateMachineArn"]
            yield Region(iot, dynamodb, sfn, adapter, machine_arn, ca, ca_id)


# --- scenarios ------------------------------------------------------------------------------

def test_happy_path_registers_the_device(region: Region) -> None:
    device = issue("sensor-001", region.ca)
    cert_id = region.register(device, region.ca.pem)

    result = region.run(cert_id)

    assert result["status"] == "SUCCEEDED", result
    region.assert_registered("sensor-001", cert_id)
    row = region.row("sensor-001")
    assert row is not None
    assert row["certificateId"] == cert_id
    assert row["certificatePem"] == device.pem
    assert row["caCertificateId"] == region.ca_id
    assert row["originRegion"] == REGION
    assert row["status"] == "ACTIVE"
    assert row["onboarding"] == "JITR"
    assert row["version"] == "1"
    assert row["notAfter"] == device.cert.not_valid_after_utc.isoformat().replace("+00:00", "Z")
    assert dt.datetime.fromisoformat(row["updatedAt"].replace("Z", "+00:00")) > NOW
    attach = region.adapter.calls_to("iot", "attachThingPrincipal")
    assert [c.parameters["ThingPrincipalType"] for c in attach] == ["EXCLUSIVE_THING"]


def test_the_same_event_twice_converges_without_duplicates(region: Region) -> None:
    cert_id = region.register(issue("sensor-twice", region.ca), region.ca.pem)
    assert region.run(cert_id)["status"] == "SUCCEEDED"
    first_row = region.row("sensor-twice")

    second = region.run(cert_id)

    assert second["status"] == "SUCCEEDED", second
    region.assert_registered("sensor-twice", cert_id)
    assert region.row("sensor-twice") == first_row
    assert len(region.dynamodb.scan(TableName=TABLE)["Items"]) == 1
    assert len(region.adapter.calls_to("dynamodb", "putItem")) == 1  # second run never wrote
    assert len(region.adapter.calls_to("iot", "createThing")) == 1


def test_device_already_in_inventory_becomes_usable_here(region: Region) -> None:
    """Registered first in another region; the row replicated before the device came here."""
    device = issue("sensor-roaming", region.ca)
    cert_id = region.register(device, region.ca.pem)
    row_before = region.put_row("sensor-roaming", device, cert_id)

    result = region.run(cert_id)

    assert result["status"] == "SUCCEEDED", result
    region.assert_registered("sensor-roaming", cert_id)
    assert region.row("sensor-roaming") == row_before
    assert region.adapter.calls_to("dynamodb", "putItem") == []


def test_certificate_from_a_foreign_ca_is_revoked(region: Region) -> None:
    stranger_ca = issue("Someone Else's CA", ca=True)
    cert_id = region.register(issue("sensor-foreign", stranger_ca), ca_pem=None)

    result = region.run(cert_id)

    assert result["status"] == "FAILED"
    assert result["error"] == "Jitr.CertificateRejected"
    assert "not issued by our CA" in result["cause"]
    assert region.status(cert_id) == "REVOKED"
    assert not region.thing_exists("sensor-foreign")
    assert region.things_of(cert_id) == [] and region.policies_of(cert_id) == []
    assert region.row("sensor-foreign") is None


@pytest.mark.parametrize("cn", ["bad name!", "x" * 129, "sensor/1"])
def test_certificate_whose_cn_is_no_thing_name_is_revoked(region: Region, cn: str) -> None:
    cert_id = region.register(issue(cn, region.ca), region.ca.pem)

    result = region.run(cert_id)

    assert result["status"] == "FAILED"
    assert result["error"] == "Jitr.CertificateRejected"
    assert region.status(cert_id) == "REVOKED"
    assert region.iot.list_things()["things"] == []
    assert region.dynamodb.scan(TableName=TABLE)["Items"] == []


def test_expired_certificate_is_revoked(region: Region) -> None:
    old = issue("sensor-old", region.ca, not_before=NOW - dt.timedelta(days=30), days=10)
    cert_id = region.register(old, region.ca.pem)

    result = region.run(cert_id)

    assert result["error"] == "Jitr.CertificateRejected"
    assert "expired" in result["cause"]
    assert region.status(cert_id) == "REVOKED"
    assert not region.thing_exists("sensor-old")


def test_revoked_device_is_never_activated(region: Region) -> None:
    device = issue("sensor-revoked", region.ca)
    cert_id = region.register(device, region.ca.pem)
    row_before = region.put_row("sensor-revoked", device, cert_id, status="REVOKED")

    result = region.run(cert_id)

    assert result["status"] == "FAILED"
    assert result["error"] == "Jitr.DeviceRevoked"
    assert region.status(cert_id) == "REVOKED"
    assert not region.thing_exists("sensor-revoked")
    assert region.things_of(cert_id) == [] and region.policies_of(cert_id) == []
    assert region.row("sensor-revoked") == row_before


def test_different_certificate_for_a_known_thing_stays_inactive(region: Region) -> None:
    known = issue("sensor-clone", region.ca)
    region.put_row("sensor-clone", known, "f" * 64)
    row_before = region.row("sensor-clone")
    cert_id = region.register(issue("sensor-clone", region.ca), region.ca.pem)

    result = region.run(cert_id)

    assert result["status"] == "FAILED"
    assert result["error"] == "Jitr.CertificateConflict"
    assert region.status(cert_id) == "INACTIVE"
    assert not region.thing_exists("sensor-clone")
    assert region.things_of(cert_id) == [] and region.policies_of(cert_id) == []
    assert region.row("sensor-clone") == row_before


def test_throttling_is_retried(region: Region) -> None:
    cert_id = region.register(issue("sensor-throttled", region.ca), region.ca.pem)
    region.adapter.fail("iot", "attachPolicy", "ThrottlingException")

    result = region.run(cert_id)

    assert result["status"] == "SUCCEEDED", result
    assert len(region.adapter.calls_to("iot", "attachPolicy")) == 2
    region.assert_registered("sensor-throttled", cert_id)


def _activation(parameters: dict[str, Any]) -> bool:
    return parameters.get("NewStatus") == "ACTIVE"


# (service, action, AWS error code, which calls) -> one non-retryable failure at that step.
STEP_FAILURES: list[tuple[str, str, str, Callable[[dict[str, Any]], bool] | None]] = [
    ("iot", "describeCertificate", "InvalidRequestException", None),
    ("lambda", "invoke", "ResourceNotFoundException", None),
    ("dynamodb", "getItem", "ValidationException", None),
    ("iot", "describeThing", "InvalidRequestException", None),
    ("iot", "createThing", "InvalidRequestException", None),
    ("iot", "attachThingPrincipal", "InvalidRequestException", None),
    ("iot", "attachPolicy", "InvalidRequestException", None),
    ("iot", "updateCertificate", "InvalidRequestException", _activation),
    ("dynamodb", "putItem", "ValidationException", None),
]


@pytest.mark.parametrize("service, action, code, when", STEP_FAILURES,
                         ids=[f"{s}:{a}" for s, a, _, _ in STEP_FAILURES])
def test_failure_at_any_step_rolls_back_and_a_rerun_succeeds(
        region: Region, service: str, action: str, code: str,
        when: Callable[[dict[str, Any]], bool] | None) -> None:
    cert_id = region.register(issue("sensor-flaky", region.ca), region.ca.pem)
    fault = region.adapter.fail(service, action, code, when=when)

    failed = region.run(cert_id)

    assert fault.fired == 1
    assert failed["status"] == "FAILED"
    assert failed["error"] != "Jitr.RollbackIncomplete", failed
    region.assert_nothing_usable("sensor-flaky", cert_id)
    if action != "describeCertificate":  # later failures leave it INACTIVE, not PENDING
        assert region.status(cert_id) == "INACTIVE"

    rerun = region.run(cert_id)

    assert rerun["status"] == "SUCCEEDED", rerun
    region.assert_registered("sensor-flaky", cert_id)
    assert region.row("sensor-flaky") is not None


def test_rollback_keeps_a_thing_it_did_not_create(region: Region) -> None:
    region.iot.create_thing(thingName="sensor-pre-existing")
    cert_id = region.register(issue("sensor-pre-existing", region.ca), region.ca.pem)
    region.adapter.fail("iot", "attachPolicy", "InvalidRequestException")

    result = region.run(cert_id)

    assert result["status"] == "FAILED"
    assert region.thing_exists("sensor-pre-existing")
    assert region.things_of(cert_id) == []
    assert region.status(cert_id) == "INACTIVE"


def test_row_written_meanwhile_by_another_region_converges(region: Region) -> None:
    device = issue("sensor-race", region.ca)
    cert_id = region.register(device, region.ca.pem)
    written: dict[str, Any] = {}

    def other_region_writes_first(parameters: dict[str, Any]) -> bool:
        if not written:
            written.update(region.put_row("sensor-race", device, cert_id))
        return False  # no fault: the conditional write itself must fail

    region.adapter.fail("dynamodb", "putItem", "unused", when=other_region_writes_first)

    result = region.run(cert_id)

    assert result["status"] == "SUCCEEDED", result
    region.assert_registered("sensor-race", cert_id)
    assert region.row("sensor-race") == written


def test_check_lambda_bad_event_is_a_clear_error_not_a_revocation(region: Region) -> None:
    cert_id = region.register(issue("sensor-misconfigured", region.ca), region.ca.pem)
    region.adapter.lambda_handlers[FUNCTION_ARN] = lambda event, context: check_app.handler(
        {"unexpected": True}, context)

    result = region.run(cert_id)

    assert result["status"] == "FAILED"
    assert result["error"] == "Jitr.CheckInvalidEvent"
    assert region.status(cert_id) == "INACTIVE"
    region.assert_nothing_usable("sensor-misconfigured", cert_id)
