"""The test fabric the JITR executions rely on behaves like AWS where moto does not:
tests/support/faithful_iot.py (IoT registry) and tests/support/sfn_adapter.py (Choice paths,
result casing). Each test also shows plain moto differs, so the fabric is what matters."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.support.certificates import issue
from tests.support.faithful_iot import faithful_iot
from tests.support.sfn_adapter import SfnAdapter

REGION = "eu-west-1"


@pytest.fixture
def iot(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws(config={"iot": {"use_valid_cert": True}}):
        yield boto3.client("iot", region_name=REGION)


def certificate(iot: Any, status: str = "ACTIVE", with_ca: bool = True) -> tuple[str, str, str]:
    """(certificate id, ARN, CA id) of a device certificate, registered under a new CA
    (CA id "" when with_ca=False: registered without one)."""
    ca = issue("Fabric CA", ca=True)
    device = issue("fabric-device", ca)
    if not with_ca:
        found = iot.register_certificate_without_ca(certificatePem=device.pem, status=status)
        return found["certificateId"], found["certificateArn"], ""
    ca_id = iot.register_ca_certificate(caCertificate=ca.pem, setAsActive=True)["certificateId"]
    found = iot.register_certificate(certificatePem=device.pem, caCertificatePem=ca.pem,
                                     status=status)
    return found["certificateId"], found["certificateArn"], ca_id


def error_code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return str(caught.value.response["Error"]["Code"])


def test_revoked_is_final(iot: Any) -> None:
    cert_id, _, _ = certificate(iot)
    iot.update_certificate(certificateId=cert_id, newStatus="REVOKED")
    with faithful_iot():
        for status in ("ACTIVE", "INACTIVE"):
            assert error_code(iot.update_certificate, certificateId=cert_id,
                              newStatus=status) == "CertificateStateException"
        iot.update_certificate(certificateId=cert_id, newStatus="REVOKED")
        assert iot.describe_certificate(
            certificateId=cert_id)["certificateDescription"]["status"] == "REVOKED"
    iot.update_certificate(certificateId=cert_id, newStatus="ACTIVE")  # plain moto allows it
    assert iot.describe_certificate(
        certificateId=cert_id)["certificateDescription"]["status"] == "ACTIVE"


def test_internal_statuses_cannot_be_set(iot: Any) -> None:
    cert_id, _, _ = certificate(iot)
    with faithful_iot():
        for status in ("PENDING_ACTIVATION", "PENDING_TRANSFER"):
            assert error_code(iot.update_certificate, certificateId=cert_id,
                              newStatus=status) == "InvalidRequestException"


def test_exclusive_thing_means_one_thing_per_principal(iot: Any) -> None:
    _, arn, _ = certificate(iot)
    for name in ("thing-a", "thing-b"):
        iot.create_thing(thingName=name)
    with faithful_iot():
        iot.attach_thing_principal(thingName="thing-a", principal=arn,
                                   thingPrincipalType="EXCLUSIVE_THING")
        iot.attach_thing_principal(thingName="thing-a", principal=arn,
                                   thingPrincipalType="EXCLUSIVE_THING")  # idempotent
        for principal_type in ("EXCLUSIVE_THING", "NON_EXCLUSIVE_THING"):
            assert error_code(iot.attach_thing_principal, thingName="thing-b", principal=arn,
                              thingPrincipalType=principal_type) == "InvalidRequestException"
        iot.detach_thing_principal(thingName="thing-a", principal=arn)
        iot.attach_thing_principal(thingName="thing-b", principal=arn)  # non-exclusive
        assert error_code(iot.attach_thing_principal, thingName="thing-a", principal=arn,
                          thingPrincipalType="EXCLUSIVE_THING") == "InvalidRequestException"
        assert iot.list_principal_things(principal=arn)["things"] == ["thing-b"]


def test_create_thing_succeeds_only_with_the_same_configuration(iot: Any) -> None:
    first = iot.create_thing(thingName="thing-c", attributePayload={"attributes": {"k": "1"}})
    with faithful_iot():
        again = iot.create_thing(thingName="thing-c", attributePayload={"attributes": {"k": "1"}})
        assert again["thingId"] == first["thingId"]
        assert error_code(iot.create_thing, thingName="thing-c", attributePayload={
            "attributes": {"k": "2"}}) == "ResourceAlreadyExistsException"
        assert error_code(iot.create_thing,
                          thingName="thing-c") == "ResourceAlreadyExistsException"
        assert iot.describe_thing(thingName="thing-c")["attributes"] == {"k": "1"}
    replaced = iot.create_thing(thingName="thing-c")  # plain moto replaces the thing
    assert replaced["thingId"] != first["thingId"]


def test_delete_thing_checks_the_expected_version(iot: Any) -> None:
    iot.create_thing(thingName="thing-d")
    version = iot.describe_thing(thingName="thing-d")["version"]
    with faithful_iot():
        assert error_code(iot.delete_thing, thingName="thing-d",
                          expectedVersion=version + 1) == "VersionConflictException"
        iot.delete_thing(thingName="thing-d", expectedVersion=version)
    assert iot.list_things()["things"] == []


def test_describe_certificate_names_the_ca(iot: Any) -> None:
    with_ca, _, ca_id = certificate(iot)
    without_ca, _, _ = certificate(iot, with_ca=False)
    described = iot.describe_certificate(certificateId=with_ca)["certificateDescription"]
    assert "caCertificateId" not in described  # plain moto omits it
    with faithful_iot():
        described = iot.describe_certificate(certificateId=with_ca)["certificateDescription"]
        assert described["caCertificateId"] == ca_id
        described = iot.describe_certificate(certificateId=without_ca)["certificateDescription"]
        assert "caCertificateId" not in described


def _execute(definition: dict[str, Any], execution_input: dict[str, Any]) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(name=f"fabric-{time.monotonic_ns()}",
                                   definition=json.dumps(definition),
                                   roleArn="arn:aws:iam::123456789012:role/fabric")["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name="fabric",
                                    input=json.dumps(execution_input))["executionArn"]
    for _ in range(1500):
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.02)
    raise AssertionError("still running")


CHOICE_ON_A_MISSING_PATH = {"StartAt": "Decide", "States": {
    "Decide": {"Type": "Choice",
               "Choices": [{"Variable": "$.missing", "StringEquals": "x", "Next": "Done"}],
               "Default": "Done"},
    "Done": {"Type": "Succeed"}}}


def test_a_choice_reading_a_missing_path_fails_as_on_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        assert _execute(CHOICE_ON_A_MISSING_PATH, {})["status"] == "SUCCEEDED"  # plain moto
        with SfnAdapter().active():
            failed = _execute(CHOICE_ON_A_MISSING_PATH, {})
            guarded = _execute(CHOICE_ON_A_MISSING_PATH, {"missing": "y"})
    assert (failed["status"], failed["error"]) == ("FAILED", "States.Runtime")
    assert "Invalid path '$.missing'" in failed["cause"]
    assert guarded["status"] == "SUCCEEDED"


def test_results_keep_map_keys_and_interrupts_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    definition = {"StartAt": "Create", "States": {
        "Create": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:iot:createThing",
                   "Parameters": {"ThingName.$": "$.name",
                                  "AttributePayload": {"Attributes": {"ownerToken": "t"}}},
                   "ResultPath": None, "Next": "Describe"},
        "Describe": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:iot:describeThing",
                     "Parameters": {"ThingName.$": "$.name"}, "ResultPath": "$.thing",
                     "End": True}}}
    config = {"stepfunctions": {"execute_state_machine": True}}
    with mock_aws(config=config), faithful_iot():  # type: ignore[call-overload]
        adapter = SfnAdapter()
        with adapter.active():
            done = _execute(definition, {"name": "thing-e"})
            adapter.interrupt("iot", "createThing")
            stopped = _execute(definition, {"name": "thing-f"})
        things = sorted(t["thingName"] for t in boto3.client(
            "iot", region_name=REGION).list_things()["things"])
    output = json.loads(done["output"])
    assert output["thing"]["Attributes"] == {"ownerToken": "t"}  # member capitalised, key kept
    assert stopped["status"] == "ABORTED"
    assert things == ["thing-e", "thing-f"]  # the interrupted call took effect
    assert [c.action for c in adapter.calls] == ["createThing", "describeThing", "createThing"]
