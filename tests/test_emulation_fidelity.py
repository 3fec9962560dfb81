"""One test per row of the fidelity tables in docs/emulation.md: each behaviour the emulation
adds to (or tightens in) moto, checked in a world of the dev stack (both regions, every
capability) or, where a world adds nothing, on the emulation's function itself. What plain
moto does is not pinned here: only what AWS does."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from awscrt import mqtt
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from components.edge.device_policy import device_policy_document
from components.fleet_provisioning.component import ALLOW_LIST_ADMINS_GROUP, INSTALLERS_GROUP
from components.iam import service_trust_policy
from examples.devices import fleet_device, jitr_device
from lambdas.contracts import inventory
from examples.devices.mqtt import NotAcknowledged, Refused, connected
from tests.support.certificates import issue
from tests.support.cvm import new_csr
from tools import installer
from tools.harness import ACCOUNT_ID, StackGraph
from tools.local.calls import RegionDown
from tools.local.emulation import fleet_provisioning as fleet_module
from tools.local.emulation import lambdas as lambdas_module
from tools.local.emulation.api_gateway import ApiGateway
from tools.local.emulation.fleet_provisioning import FleetProvisioning, Rejected, declared, role_for
from tools.local.emulation.device_endpoint import PAYLOAD_LIMIT_BYTES, DeviceEndpoints
from tools.local.moto_fidelity import amazon_issuer_pem
from tools.local.emulation.iot_data import ConnectionRefused, IotData, certificate_id
from tools.local.emulation.lambdas import FunctionTimeout, InvokeDenied, LambdaRuntime
from tools.local.emulation.policy import AccessDenied, allows, permits, role_policies
from tools.local.emulation.rules_engine import RulesEngine, UnsupportedSql, evaluate, topic_filter, topic_matches
from tools.local.emulation.streams import Streams, TargetFailed, _pipe, deliver, matches
from tools.local.graph_edit import with_inputs
from tools.local.journeys import cvm, jitr
from tools.local.journeys import fleet_provisioning as fleet_journey
from tools.local.journeys import registry as seen
from tools.local.materialise import CUSTOM
from tools.local.pki_material import LocalPki
from tools.local.sfn_adapter import wait_for_execution
from tools.local.world import World, open_world

pytestmark = pytest.mark.slow

A, B = "eu-west-1", "us-west-2"
DOC = Path(__file__).resolve().parent.parent / "docs" / "emulation.md"


@pytest.fixture(scope="module")
def world(local_graph: StackGraph, local_pki: LocalPki) -> Iterator[World]:
    with open_world(local_graph, regions=[A, B], pki=local_pki) as opened:
        yield opened


@pytest.fixture(autouse=True)
def quiet(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test of a world starts and ends without faults or regions down."""
    world = request.getfixturevalue("world") if "world" in request.fixturenames else None
    if world is not None:
        world.calls.clear()
    yield
    if world is not None:
        world.calls.clear()


def name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return str(caught.value.response["Error"]["Code"])


def our_ca(world: World, region: str = A) -> tuple[str, str]:
    """(runtime id, PEM as declared) of the region's registration of our devices' CA."""
    return seen.device_ca(world, region)


def registered(world: World, status: str = "ACTIVE", with_ca: bool = False) -> dict[str, Any]:
    iot = world.client("iot", A)
    if with_ca:
        return dict(iot.register_certificate(certificatePem=issue(name(), world.pki.intermediate).pem,
                                             caCertificatePem=our_ca(world)[1], status=status))
    return dict(iot.register_certificate_without_ca(certificatePem=issue(name()).pem, status=status))


def machine(world: World, definition: dict[str, Any], kind: str = "STANDARD") -> str:
    return str(world.client("stepfunctions", A).create_state_machine(
        name=name(), definition=json.dumps(definition), type=kind,
        roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/fidelity")["stateMachineArn"])


def execute(world: World, arn: str, body: dict[str, Any]) -> dict[str, Any]:
    sfn = world.client("stepfunctions", A)
    return wait_for_execution(sfn, sfn.start_execution(stateMachineArn=arn, name=name(),
                                                       input=json.dumps(body))["executionArn"])


def test_every_fidelity_row_has_its_test() -> None:
    rows = re.findall(r"^\|.*\| `(test_\w+)` \|$", DOC.read_text(), re.MULTILINE)
    tests = {n for n in globals() if n.startswith("test_") and n != "test_every_fidelity_row_has_its_test"}
    assert len(rows) == len(set(rows)) and set(rows) == tests, set(rows) ^ tests


# --- moto made faithful ---------------------------------------------------------------------

def test_revoked_is_final(world: World) -> None:
    iot, certificate = world.client("iot", A), registered(world)["certificateId"]
    iot.update_certificate(certificateId=certificate, newStatus="REVOKED")
    for status in ("ACTIVE", "INACTIVE"):
        assert code(iot.update_certificate, certificateId=certificate,
                    newStatus=status) == "CertificateStateException"
    # Setting REVOKED again: undocumented; refused, the less permissive reading.
    assert code(iot.update_certificate, certificateId=certificate,
                newStatus="REVOKED") == "CertificateStateException"
    assert seen.status(world, A, certificate) == "REVOKED"


def test_internal_statuses_cannot_be_set(world: World) -> None:
    iot, certificate = world.client("iot", A), registered(world)["certificateId"]
    for status in ("PENDING_ACTIVATION", "PENDING_TRANSFER"):
        assert code(iot.update_certificate, certificateId=certificate,
                    newStatus=status) == "InvalidRequestException"


def test_exclusive_thing_means_one_thing_per_principal(world: World) -> None:
    iot, arn = world.client("iot", A), registered(world)["certificateArn"]
    first, second = name(), name()
    for thing in (first, second):
        iot.create_thing(thingName=thing)
    iot.attach_thing_principal(thingName=first, principal=arn, thingPrincipalType="EXCLUSIVE_THING")
    iot.attach_thing_principal(thingName=first, principal=arn, thingPrincipalType="EXCLUSIVE_THING")
    for kind in ("EXCLUSIVE_THING", "NON_EXCLUSIVE_THING"):
        assert code(iot.attach_thing_principal, thingName=second, principal=arn,
                    thingPrincipalType=kind) == "InvalidRequestException"
    iot.detach_thing_principal(thingName=first, principal=arn)
    iot.attach_thing_principal(thingName=second, principal=arn)  # non-exclusive
    assert code(iot.attach_thing_principal, thingName=first, principal=arn,
                thingPrincipalType="EXCLUSIVE_THING") == "InvalidRequestException"
    assert iot.list_principal_things(principal=arn)["things"] == [second]


def test_create_thing_succeeds_only_with_the_same_configuration(world: World) -> None:
    iot, thing = world.client("iot", A), name()
    first = iot.create_thing(thingName=thing, attributePayload={"attributes": {"k": "1"}})
    again = iot.create_thing(thingName=thing, attributePayload={"attributes": {"k": "1"}})
    assert again["thingId"] == first["thingId"]
    assert code(iot.create_thing, thingName=thing,
                attributePayload={"attributes": {"k": "2"}}) == "ResourceAlreadyExistsException"
    assert code(iot.create_thing, thingName=thing) == "ResourceAlreadyExistsException"
    assert iot.describe_thing(thingName=thing)["attributes"] == {"k": "1"}


def test_a_thing_without_a_type_has_at_most_three_attributes(world: World) -> None:
    iot = world.client("iot", A)
    three = {f"a{i}": "v" for i in range(3)}
    iot.create_thing(thingName=name(), attributePayload={"attributes": three})
    assert code(iot.create_thing, thingName=name(),
                attributePayload={"attributes": {**three, "a3": "v"}}) == "InvalidRequestException"
    kind = name()
    iot.create_thing_type(thingTypeName=kind)
    iot.create_thing(thingName=name(), thingTypeName=kind,
                     attributePayload={"attributes": {f"a{i}": "v" for i in range(50)}})
    assert code(iot.create_thing, thingName=name(), thingTypeName=kind, attributePayload={
        "attributes": {f"a{i}": "v" for i in range(51)}}) == "InvalidRequestException"


def test_thing_names_and_attributes_follow_the_api_patterns(world: World) -> None:
    iot = world.client("iot", A)
    for thing, attributes in (("bad name", {}), ("x" * 129, {}), (name(), {"a b": "v"}),
                              (name(), {"k": "has space"}), (name(), {"k": "v" * 801})):
        with pytest.raises(ClientError, match="InvalidRequestException|ValidationException"):
            iot.create_thing(thingName=thing, attributePayload={"attributes": attributes})
    iot.create_thing(thingName="a:b_c-d", attributePayload={"attributes": {"k.@/:#-": "v=[x]/y"}})


def test_every_call_is_refused_past_its_api_model_bounds(world: World) -> None:
    """TransactWriteItems' ClientRequestToken is 1-36 characters and its ReturnConsumedCapacity
    an enum; an IoT thing name at most 128: AWS refuses more before acting, moto accepted."""
    from tools.local.api_bounds import bound_problems

    dynamodb, table, key = world.client("dynamodb", A), name(), {"pk": {"S": "k"}}
    dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    put = {"Put": {"TableName": table, "Item": key}}
    for extra in ({"ClientRequestToken": "t" * 37}, {"ReturnConsumedCapacity": "ALL"}):
        assert code(dynamodb.transact_write_items, TransactItems=[put], **extra) == "ValidationException"
    assert "Item" not in dynamodb.get_item(TableName=table, Key=key)  # refused before acting
    dynamodb.transact_write_items(TransactItems=[put], ClientRequestToken="t" * 36)
    assert "Item" in dynamodb.get_item(TableName=table, Key=key)
    assert code(world.client("iot", A).describe_thing, thingName="x" * 129) == "InvalidRequestException"
    # The walk reaches nested members, list members and map values.
    shape = dynamodb.meta.service_model.operation_model("TransactWriteItems").input_shape
    assert bound_problems({"TransactItems": [put] * 101}, shape, "") == [
        "Value at 'TransactItems' failed to satisfy constraint: Member must have number of "
        "members less than or equal to 100"]


def test_dynamodb_refuses_placeholders_no_expression_uses(world: World) -> None:
    dynamodb, table, key = world.client("dynamodb", A), name(), {"pk": {"S": "k"}}
    dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    unused = {"ConditionExpression": "attribute_not_exists(pk)", "ExpressionAttributeValues": {":v": {"S": "x"}}}
    assert code(dynamodb.put_item, TableName=table, Item=key, **unused) == "ValidationException"
    assert code(dynamodb.transact_write_items, TransactItems=[
        {"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": "other"}}, **unused}},
        {"Put": {"TableName": table, "Item": key}}]) == "ValidationException"
    assert "Item" not in dynamodb.get_item(TableName=table, Key=key)
    # Each item's placeholders are its own: one item's use does not cover another's.
    assert code(dynamodb.transact_write_items, TransactItems=[
        {"Put": {"TableName": table, "Item": key, "ConditionExpression": "#p <> :v",
                 "ExpressionAttributeNames": {"#p": "pk"}, "ExpressionAttributeValues": {":v": {"S": "x"}}}},
        {"Delete": {"TableName": table, "Key": {"pk": {"S": "b"}}, "ExpressionAttributeNames": {"#p": "pk"}}},
    ]) == "ValidationException"
    dynamodb.put_item(TableName=table, Item=key, ConditionExpression="attribute_not_exists(pk) OR pk <> :v",
                      ExpressionAttributeValues={":v": {"S": "x"}})
    assert "Item" in dynamodb.get_item(TableName=table, Key=key)


def test_delete_thing_checks_the_expected_version(world: World) -> None:
    iot, thing = world.client("iot", A), name()
    iot.create_thing(thingName=thing)
    version = iot.describe_thing(thingName=thing)["version"]
    assert code(iot.delete_thing, thingName=thing, expectedVersion=version + 1) == "VersionConflictException"
    iot.delete_thing(thingName=thing, expectedVersion=version)
    assert not seen.thing_exists(world, A, thing)


def test_describe_certificate_names_the_ca(world: World) -> None:
    iot = world.client("iot", A)
    with_ca = registered(world, with_ca=True)["certificateId"]
    without = registered(world)["certificateId"]
    assert iot.describe_certificate(certificateId=with_ca)["certificateDescription"][
        "caCertificateId"] == our_ca(world)[0]
    assert "caCertificateId" not in iot.describe_certificate(certificateId=without)["certificateDescription"]


def test_a_certificate_id_is_the_sha256_of_its_der(world: World) -> None:
    """Every way a certificate enters the registry names it as AWS IoT does (moto's default
    hashes the PEM text), so an id the contract derives from a PEM is the registry's id."""
    import hashlib

    iot = world.client("iot", A)
    created = iot.create_keys_and_certificate(setAsActive=False)
    other = issue("sensor-der-id")
    registered_id = iot.register_certificate_without_ca(certificatePem=other.pem)["certificateId"]
    for certificate_id, pem in ((created["certificateId"], created["certificatePem"]),
                                (registered_id, other.pem)):
        der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
        assert certificate_id == hashlib.sha256(der).hexdigest() != hashlib.sha256(pem.encode()).hexdigest()


def test_a_csr_certificate_certifies_the_csr_key(world: World) -> None:
    key, csr = new_csr("sensor-csr")
    made = world.client("iot", A).create_certificate_from_csr(certificateSigningRequest=csr)
    certified = x509.load_pem_x509_certificate(made["certificatePem"].encode())
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert certified.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    assert certified.subject.rfc4514_string() == "CN=sensor-csr"
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    refused = [builder.sign(rsa.generate_private_key(65537, 1024), hashes.SHA256()),
               builder.sign(ec.generate_private_key(ec.SECP256K1()), hashes.SHA256()),
               builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA224()),
               builder.sign(rsa.generate_private_key(65537, 2048), hashes.SHA256(),
                            rsa_padding=padding.PSS(padding.MGF1(hashes.SHA256()), 32))]
    for request in refused:
        assert code(world.client("iot", A).create_certificate_from_csr, certificateSigningRequest=request
                    .public_bytes(serialization.Encoding.PEM).decode()) == "InvalidRequestException"


def test_a_detachment_propagates_before_the_next_delete(world: World) -> None:
    """DetachThingPrincipal is asynchronous: the first delete of the certificate and of the
    thing that would otherwise succeed is refused, the next succeeds."""
    iot, made, thing = world.client("iot", A), registered(world), name()
    iot.create_thing(thingName=thing)
    iot.attach_thing_principal(thingName=thing, principal=made["certificateArn"])
    iot.detach_thing_principal(thingName=thing, principal=made["certificateArn"])
    # a delete refused for its own reason does not use the propagation up
    assert code(iot.delete_certificate, certificateId=made["certificateId"]) == "CertificateStateException"
    iot.update_certificate(certificateId=made["certificateId"], newStatus="INACTIVE")
    assert code(iot.delete_certificate, certificateId=made["certificateId"],
                forceDelete=True) == "DeleteConflictException"
    iot.delete_certificate(certificateId=made["certificateId"], forceDelete=True)
    assert code(iot.delete_thing, thingName=thing) == "InvalidRequestException"  # DeleteThing's code
    iot.delete_thing(thingName=thing)
    assert not seen.thing_exists(world, A, thing)


def test_register_certificate_needs_the_registered_ca_that_signed_it(world: World) -> None:
    iot, ours = world.client("iot", A), our_ca(world)[1]
    stranger = issue(name(), ca=True)
    key, now = ec.generate_private_key(ec.SECP256R1()), dt.datetime.now(dt.timezone.utc)
    forged = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name())]))
              .issuer_name(world.pki.intermediate.cert.subject).public_key(key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
              .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))  # our CA's name, not its key
    for pem, ca in ((issue(name(), stranger).pem, ours),  # another CA signed it
                    (forged.public_bytes(serialization.Encoding.PEM).decode(), ours),
                    (issue(name(), stranger).pem, stranger.pem)):  # a CA not registered
        assert code(iot.register_certificate, certificatePem=pem,
                    caCertificatePem=ca) == "CertificateValidationException"
    # registered in one region only: the other refuses it
    local = issue(name(), ca=True)
    iot.register_ca_certificate(caCertificate=local.pem, verificationCertificate=issue(name(), local).pem)
    device = issue(name(), local)
    assert code(world.client("iot", B).register_certificate, certificatePem=device.pem,
                caCertificatePem=local.pem) == "CertificateValidationException"
    iot.register_certificate(certificatePem=device.pem, caCertificatePem=local.pem)
    iot.register_certificate(certificatePem=issue(name(), world.pki.intermediate).pem, caCertificatePem=ours)


def test_a_client_request_token_is_refused_with_other_parameters(world: World) -> None:
    dynamodb, table, token = world.client("dynamodb", A), name(), uuid.uuid4().hex
    for region in (A, B):
        world.client("dynamodb", region).create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])

    def put(value: str) -> list[dict[str, Any]]:
        return [{"Put": {"TableName": table, "Item": {"pk": {"S": value}}}}]

    dynamodb.transact_write_items(TransactItems=put("a"), ClientRequestToken=token)
    dynamodb.transact_write_items(TransactItems=put("a"), ClientRequestToken=token)  # the same: fine
    assert code(dynamodb.transact_write_items, TransactItems=put("b"),
                ClientRequestToken=token) == "IdempotentParameterMismatchException"
    assert code(dynamodb.transact_write_items, TransactItems=put("a"), ClientRequestToken=token,
                ReturnConsumedCapacity="TOTAL") == "IdempotentParameterMismatchException"
    assert "Item" not in dynamodb.get_item(TableName=table, Key={"pk": {"S": "b"}})
    # tokens are per region (and account)
    world.client("dynamodb", B).transact_write_items(TransactItems=put("b"), ClientRequestToken=token)


def test_a_target_has_at_most_ten_policies(world: World) -> None:
    iot, arn = world.client("iot", A), registered(world)["certificateArn"]
    policies = [name() for _ in range(11)]
    for policy in policies:
        iot.create_policy(policyName=policy, policyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
                                                   "Resource": "*"}]}))
    for policy in policies[:10]:
        iot.attach_policy(policyName=policy, target=arn)
    iot.attach_policy(policyName=policies[0], target=arn)  # already attached: fine
    assert code(iot.attach_policy, policyName=policies[10], target=arn) == "LimitExceededException"
    assert code(iot.attach_principal_policy, policyName=policies[10], principal=arn) == "LimitExceededException"
    iot.detach_policy(policyName=policies[0], target=arn)
    iot.attach_policy(policyName=policies[10], target=arn)


def test_conditional_writes_are_atomic_per_item(world: World) -> None:
    dynamodb, thing = world.client("dynamodb", A), name()
    start, won = threading.Barrier(20), []

    def write(number: int) -> None:
        start.wait()
        try:
            dynamodb.put_item(TableName=world.table(seen.INVENTORY), Item={
                "thingName": {"S": thing}, "writer": {"N": str(number)}},
                ConditionExpression="attribute_not_exists(thingName)")
            won.append(number)
        except dynamodb.exceptions.ConditionalCheckFailedException:
            pass

    threads = [threading.Thread(target=write, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1


def test_stream_records_are_stamped_in_write_order(world: World) -> None:
    tables = world.emulation(Streams).global_tables
    assert tables is not None
    thing = name()
    with tables.held():
        for index in range(6):
            world.client("dynamodb", (A, B)[index % 2]).put_item(
                TableName=world.table(seen.INVENTORY),
                Item={"thingName": {"S": thing}, "n": {"N": str(index)}})
        readers = {r: world.emulation(Streams).consumer("pipe", r).reader for r in (A, B)}
        records = [(rec["dynamodb"]["ApproximateCreationDateTime"], int(rec["dynamodb"]["NewImage"]["n"]["N"]))
                   for reader in readers.values() for rec in reader.read_raw()
                   if rec["dynamodb"]["Keys"]["thingName"]["S"] == thing]
    assert [n for _, n in sorted(records)] == list(range(6))
    assert len({t for t, _ in records}) == 6  # no two writes share a time


# --- Step Functions ---------------------------------------------------------------------

def task(action: str, parameters: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": f"arn:aws:states:::aws-sdk:iot:{action}",
            "Parameters": parameters, **more}


def test_a_parameter_aws_would_reject_is_refused(world: World) -> None:
    sfn = world.client("stepfunctions", A)
    for bad, why in (({"thingName.$": "$.n"}, "'thingName' is not supported"),
                     ({"ThingName.$": "$.n", "Colour": "red"}, "'Colour' is not supported"),
                     ({"ThingName.$": "$.n", "AttributePayload": {"Attrs": {}}}, "'Attrs'")):
        with pytest.raises(ClientError, match=re.escape(why)):
            sfn.create_state_machine(name=name(), roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/x",
                                     definition=json.dumps({"StartAt": "T", "States": {
                                         "T": task("createThing", bad, End=True)}}))
    with pytest.raises(ClientError, match="has no CreateThings"):
        machine(world, {"StartAt": "T", "States": {"T": task("createThings", {}, End=True)}})
    machine(world, {"StartAt": "T", "States": {"T": task("createThing", {"ThingName.$": "$.n"}, End=True)}})


def test_parameter_values_are_validated(world: World) -> None:
    arn = machine(world, {"StartAt": "T", "States": {"T": task("createThing", {"ThingName.$": "$.n"}, End=True)}})
    failed = execute(world, arn, {"n": 12345})
    assert failed["status"] == "FAILED"
    assert not seen.thing_exists(world, A, "12345")


def test_an_optimised_dynamodb_tasks_parameters_are_validated(world: World) -> None:
    """moto runs `dynamodb:*` tasks on a client of its own with botocore's validation off."""
    get = {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem", "End": True, "Parameters": {
        "TableName": world.table(seen.INVENTORY), "Key": {inventory.TABLE_KEY: {"S.$": "$.n"}}}}
    arn = machine(world, {"StartAt": "G", "States": {"G": get}})
    assert execute(world, arn, {"n": 12345})["status"] == "FAILED"  # a number where DynamoDB needs a string
    assert execute(world, arn, {"n": "12345"})["status"] == "SUCCEEDED"


def test_results_keep_map_keys(world: World) -> None:
    arn = machine(world, {"StartAt": "C", "States": {
        "C": task("createThing", {"ThingName.$": "$.n", "AttributePayload": {"Attributes": {"ownerToken": "t"}}},
                  ResultPath=None, Next="D"),
        "D": task("describeThing", {"ThingName.$": "$.n"}, ResultPath="$.thing", End=True)}})
    output = json.loads(execute(world, arn, {"n": name()})["output"])
    assert output["thing"]["Attributes"] == {"ownerToken": "t"} and "ThingName" in output["thing"]


def test_sdk_errors_are_named_as_aws_names_them(world: World) -> None:
    arn = machine(world, {"StartAt": "D", "States": {"D": task("describeThing", {"ThingName.$": "$.n"}, End=True)}})
    assert execute(world, arn, {"n": name()})["error"] == "Iot.ResourceNotFoundException"


def test_a_choice_reading_a_missing_path_fails(world: World) -> None:
    arn = machine(world, {"StartAt": "Decide", "States": {
        "Decide": {"Type": "Choice", "Choices": [{"Variable": "$.missing", "StringEquals": "x",
                                                   "Next": "Done"}], "Default": "Done"},
        "Done": {"Type": "Succeed"}}})
    failed = execute(world, arn, {})
    assert (failed["status"], failed["error"]) == ("FAILED", "States.Runtime")
    assert "Invalid path '$.missing'" in failed["cause"]
    assert execute(world, arn, {"missing": "y"})["status"] == "SUCCEEDED"


def test_retries_keep_their_schedule_on_a_virtual_clock(world: World) -> None:
    arn = machine(world, {"StartAt": "D", "States": {"D": task(
        "describeThing", {"ThingName.$": "$.n"}, End=True, Retry=[{
            "ErrorEquals": ["Iot.ResourceNotFoundException"], "IntervalSeconds": 30,
            "MaxAttempts": 2, "BackoffRate": 2.0}])}})
    slept, started = world.adapter.clock.slept, time.monotonic()
    failed = execute(world, arn, {"n": name()})
    assert failed["error"] == "Iot.ResourceNotFoundException"
    assert world.adapter.clock.slept - slept == 90 and time.monotonic() - started < 30
    assert len(world.calls.of("DescribeThing", caller="states:")) == 3


def test_a_transition_to_no_state_is_refused(world: World) -> None:
    done = {"Type": "Succeed"}
    catch_to = lambda target: [{"ErrorEquals": ["States.ALL"], "Next": target}]  # noqa: E731
    branch = {"StartAt": "In", "States": {"In": {"Type": "Pass", "Next": "Done"}}}  # "Done" is outside it
    for states, start, where in (
            ({"Done": done}, "Missing", "/StartAt"),
            ({"P": {"Type": "Pass", "Next": "Q"}}, "P", "/States/P/Next"),
            ({"C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "Done"}],
                    "Default": "Nowhere"}, "Done": done}, "C", "/States/C/Default"),
            ({"C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "Nowhere"}],
                    "Default": "Done"}, "Done": done}, "C", "/States/C/Choices[0]/Next"),
            ({"T": task("describeThing", {"ThingName.$": "$.n"}, Catch=catch_to("Nowhere"), End=True)},
             "T", "/States/T/Catch[0]/Next"),
            ({"Par": {"Type": "Parallel", "Branches": [branch], "Next": "Done"}, "Done": done},
             "Par", "/States/Par/Branches[0]/States/In/Next")):
        with pytest.raises(ClientError) as refused:
            machine(world, {"StartAt": start, "States": states})
        assert refused.value.response["Error"]["Code"] == "InvalidDefinition"
        assert "MISSING_TRANSITION_TARGET: " in str(refused.value) and f"at {where} " in str(refused.value)
    machine(world, {"StartAt": "Par", "States": {  # every kind of transition, each to a state of its scope
        "Par": {"Type": "Parallel", "Branches": [{"StartAt": "In", "States": {"In": {"Type": "Pass", "End": True}}}],
                "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "T"}], "Default": "Done"},
        "T": task("describeThing", {"ThingName.$": "$.n"}, Catch=catch_to("Done"), Next="Done"),
        "Done": done}})


def test_start_sync_execution_answers(world: World) -> None:
    arn = machine(world, {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": 1},
                                                           "End": True}}}, kind="EXPRESS")
    answer = world.client("stepfunctions", A).start_sync_execution(stateMachineArn=arn, input="{}")
    assert answer["status"] == "SUCCEEDED" and json.loads(answer["output"]) == {"ok": 1}


def test_an_interrupted_call_took_effect_and_the_execution_aborted(world: World) -> None:
    arn = machine(world, {"StartAt": "C", "States": {
        "C": task("createThing", {"ThingName.$": "$.n"}, ResultPath=None, Next="D"),
        "D": task("deleteThing", {"ThingName.$": "$.n"}, End=True)}})
    thing = name()
    world.calls.interrupt("CreateThing", by="states:")
    assert execute(world, arn, {"n": thing})["status"] == "ABORTED"
    assert seen.thing_exists(world, A, thing)  # the call took effect, the next state never ran


# --- Lambda -----------------------------------------------------------------------------

def test_a_service_needs_a_permission_for_its_source() -> None:
    function = f"arn:aws:lambda:{A}:{ACCOUNT_ID}:function:cvm"
    api = f"arn:aws:execute-api:{A}:{ACCOUNT_ID}:abc123"
    permission = {"function": "cvm", "action": "lambda:InvokeFunction",
                  "principal": "apigateway.amazonaws.com", "sourceArn": f"{api}/v1/POST/*",
                  "sourceAccount": ACCOUNT_ID}

    def may(principal: str, source: str, account: str = ACCOUNT_ID, function_name: str = "cvm") -> bool:
        return permits([permission], function_name=function_name, function_arn=function,
                       principal=principal, source_arn=source, source_account=account)

    assert may("apigateway.amazonaws.com", f"{api}/v1/POST/registration")
    assert not may("apigateway.amazonaws.com", f"{api}/v1/GET/registration")
    assert not may("apigateway.amazonaws.com", f"{api}2/v1/POST/registration")
    assert not may("apigateway.amazonaws.com", f"{api}/v1/POST/registration", "210987654321")
    assert not may("iot.amazonaws.com", f"{api}/v1/POST/registration")
    assert not may("apigateway.amazonaws.com", f"{api}/v1/POST/registration", function_name="other")


def test_a_function_runs_with_its_declared_environment(world: World) -> None:
    runtime = world.emulation(LambdaRuntime)
    check = world.graph.named(next(r.name for r in world.declared("aws:lambda/function:Function", A)
                                   if r.outputs["arn"] == jitr.check_function(world, A)))
    declared = world.state(check)["environment"]["variables"]
    function = runtime.function(jitr.check_function(world, A))
    assert {k: function.variables()[k] for k in declared} == declared
    assert function.variables()["AWS_REGION"] == A
    assert runtime.invoke(function.arn, {"wrong": 1})["error"] == "InvalidEvent"
    assert os.environ.get("CA_CERTIFICATE_PEM") is None  # the process's environment restored
    with pytest.raises(InvokeDenied):
        runtime.invoke_as_service(function.arn, {}, principal="iot.amazonaws.com",
                                  source_arn="arn:aws:iot:x", source_account=ACCOUNT_ID)


def test_a_function_past_its_timeout_has_no_result(world: World) -> None:
    runtime = world.emulation(LambdaRuntime)
    function = runtime.function(jitr.check_function(world, A))
    declared, function.timeout_seconds = function.timeout_seconds, 0.0
    try:
        with pytest.raises(FunctionTimeout, match="Task timed out"):
            runtime.invoke(function.arn, {"wrong": 1})
    finally:
        function.timeout_seconds = declared


# --- API Gateway --------------------------------------------------------------------------

def test_a_gateway_response_with_vtl_is_refused(world: World) -> None:
    [response] = [r for r in world.declared("aws:apigateway/response:Response", A)
                  if r.inputs["responseType"] == "BAD_REQUEST_BODY"]
    templated = with_inputs(world.graph, response, lambda inputs: {**inputs, "responseTemplates": {
        "application/json": '{"m": "$util.escapeJavaScript($context.error.message)"}'}})
    with pytest.raises(ValueError, match="no VTL"):
        CUSTOM["aws:apigateway/response:Response"](world, templated.named(response.name))
    body = cvm.post(world, A, {"device_uid": "x"}).json()  # the declared one: substitution only
    assert body == {"statusCode": 400, "status": "ERROR", "payload": {"message": "Invalid request body"}}


def test_the_validator_answers_before_the_function(world: World) -> None:
    function = world.emulation(LambdaRuntime).function(str(cvm.function(world, A).outputs["name"]))
    before = function.invocations
    answer = cvm.post(world, A, {"device_uid": "D1", "device_token": "a" * 64, "extra": 1})
    assert (answer.status, answer.answered_by) == (400, "gateway BAD_REQUEST_BODY")
    assert function.invocations == before


def test_unknown_routes_and_the_disabled_default_endpoint_are_refused(world: World) -> None:
    gateway = world.emulation(ApiGateway)
    unknown = gateway.request(A, "POST", cvm.registration_url(world, A, "/nothing"), "{}")
    assert (unknown.status, unknown.answered_by) == (403, "gateway MISSING_AUTHENTICATION_TOKEN")
    [api] = world.client("apigateway", A).get_rest_apis()["items"]
    direct = gateway.request(A, "POST", f"https://{api['id']}.execute-api.{A}.amazonaws.com/v1/registration", "{}")
    assert direct.status == 403


def test_a_proxy_integration_needs_the_permission(world: World) -> None:
    runtime = world.emulation(LambdaRuntime)
    declared, runtime.permissions = runtime.permissions, []
    try:
        device = cvm.Device(name())
        answer = cvm.post(world, A, device.request())
    finally:
        runtime.permissions = declared
    assert answer.status == 500 and answer.answered_by.startswith("gateway API_CONFIGURATION_ERROR")
    assert "no declared permission names this source" in answer.answered_by


# --- IoT rules engine and data plane ---------------------------------------------------------

def rule(world: World, sql: str, actions: list[dict[str, Any]], error: dict[str, Any] | None = None) -> str:
    rule_name = name().replace("-", "_")
    world.client("iot", A).create_topic_rule(ruleName=rule_name, topicRulePayload={
        "sql": sql, "actions": actions, **({"errorAction": error} if error else {})})
    return rule_name


def role(world: World, trusted: str, rule_name: str, actions: list[str]) -> str:
    iam = world.client("iam", "us-east-1")
    role_name = name()
    rule_arn = f"arn:aws:iot:{A}:{ACCOUNT_ID}:rule/{rule_name}"
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=service_trust_policy(trusted, ACCOUNT_ID, rule_arn))
    iam.put_role_policy(RoleName=role_name, PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    return f"arn:aws:iam::{ACCOUNT_ID}:role/{role_name}"


def test_rule_sql_beyond_the_understood_subset_is_refused(world: World) -> None:
    assert topic_filter("SELECT * FROM 'a/+/c'") == "a/+/c"
    assert topic_matches("a/+/c", "a/b/c") and topic_matches("a/#", "a/b/c")
    assert not topic_matches("a/+", "a/b/c") and not topic_matches("a/b", "a/b/c")
    for sql in ("SELECT certificateId FROM 'a/b'", "SELECT * FROM 'a/b' WHERE x = 1"):
        with pytest.raises(UnsupportedSql):
            topic_filter(sql)
    for sql in ("SELECT * FROM 'a/b' WHERE x = 1", "SELECT upper(x) AS y FROM 'a/b'",
                "SELECT a.b FROM 'a/b'", "SELECT * FROM 'a/b' WHERE isUndefined(x) AND isUndefined(y)",
                "SELECT * FROM 'a/b' GROUP BY x"):
        with pytest.raises(UnsupportedSql):
            evaluate(sql, "a/b", {"x": 1})
    topic = f"fidelity/{name()}"
    rule(world, f"SELECT * FROM '{topic}' WHERE x = 1", [])
    [refused] = world.emulation(RulesEngine).publish(A, topic, {"x": 1})
    assert not refused.ok and "does not understand WHERE term" in refused.detail


def test_rule_sql_subset_selects_topic_levels_literals_and_fields_and_filters_by_where() -> None:
    """AWS IoT SQL reference: SELECT (iot-sql-select.html), topic() and startswith() /
    isUndefined() (iot-sql-functions.html); an undefined value is left out of the result."""
    sql = ("SELECT topic(3) AS thing, 'UPDATE' AS operation, current.version AS version, "
           "timestamp, clientToken FROM '$aws/things/+/shadow/update/documents' "
           "WHERE isUndefined(clientToken) OR NOT startswith(clientToken, 'replica:')")
    topic = "$aws/things/dev-1/shadow/update/documents"
    message = {"current": {"version": 4}, "timestamp": 10}
    assert evaluate(sql, topic, message) == {"thing": "dev-1", "operation": "UPDATE",
                                             "version": 4, "timestamp": 10}
    assert evaluate(sql, topic, {**message, "clientToken": "replica:x"}) is None
    assert evaluate(sql, topic, {**message, "clientToken": "app"})["clientToken"] == "app"  # type: ignore[index]
    # startswith of a non-string is undefined: NOT undefined does not fire the rule.
    assert evaluate("SELECT * FROM 'a' WHERE NOT startswith(x, 'p')", "a", {"x": 3}) is None


def test_shadow_updates_and_deletes_publish_what_aws_iot_publishes(world: World) -> None:
    """Device Shadow service documents (/documents: previous, current, timestamp, the
    request's clientToken) and MQTT topics (/delete/accepted: version, timestamp)."""
    from tools.local.emulation.shadows import Shadows

    thing = name()
    world.client("iot", A).create_thing(thingName=thing)
    data, shadows = world.client("iot-data", A), world.emulation(Shadows)
    before = len(shadows.published)
    data.update_thing_shadow(thingName=thing, shadowName="cfg", payload=json.dumps(
        {"state": {"desired": {"a": 1}}, "clientToken": "tok"}))
    data.update_thing_shadow(thingName=thing, shadowName="cfg", payload=json.dumps(
        {"state": {"desired": {"a": 2}}}))
    data.delete_thing_shadow(thingName=thing, shadowName="cfg")
    assert code(data.delete_thing_shadow, thingName=thing, shadowName="cfg") == "ResourceNotFoundException"
    shadows.publish_pending()
    published = [(t, m) for region, t, m in shadows.published[before:] if region == A]
    assert [t for t, _ in published] == [f"$aws/things/{thing}/shadow/name/cfg/update/documents"] * 2 + [
        f"$aws/things/{thing}/shadow/name/cfg/delete/accepted"]
    first, second, deleted = (m for _, m in published)
    assert first["previous"] is None and first["current"]["state"] == {"desired": {"a": 1}}
    assert first["clientToken"] == "tok" and "clientToken" not in second
    assert second["previous"]["version"] == 1 and second["current"]["version"] == 2
    assert deleted["version"] == 2 and "clientToken" not in deleted and deleted["timestamp"] > 0


def test_shadow_updates_are_refused_past_aws_quotas_and_a_null_section_is_removed(world: World) -> None:
    """Device Shadow error messages: 413 for more than 8 KB (the request, and the shadow it
    would leave: 'Diagnosing problems with shadows'), 400 for a client token over 64 bytes and
    for nesting deeper than 6; a refused update changes nothing. Interacting with shadows: a
    section set to null is removed."""
    thing = name()
    world.client("iot", A).create_thing(thingName=thing)
    data = world.client("iot-data", A)

    def update(state: dict[str, Any], **extra: Any) -> str | None:
        try:
            data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": state, **extra}))
        except ClientError as err:
            return str(err.response["Error"]["Code"])
        return None

    def stored() -> dict[str, Any]:
        document = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
        return {k: v for k, v in document["state"].items() if k != "delta"}

    half = {f"k{n:03d}": "x" * 40 for n in range(90)}  # about 4.6 KB
    assert update({"desired": {"big": "x" * 8200}}) == "RequestEntityTooLargeException"
    assert update({"desired": half}) is None
    assert update({"reported": {f"r{n:03d}": "x" * 40 for n in range(90)}}) == "RequestEntityTooLargeException"
    assert stored() == {"desired": half}  # the refused update left the shadow as it was
    assert update({"desired": {"a": 1}}, clientToken="t" * 65) == "InvalidRequestException"
    assert update({"desired": {"a": 1}}, clientToken="t" * 64) is None
    nested: dict[str, Any] = {"v": 1}
    for _ in range(5):
        nested = {"n": nested}
    assert update({"reported": nested}) is None  # reported itself is level 1, the value's object level 6
    assert update({"reported": {"n": nested}}) == "InvalidRequestException"
    assert update({"desired": None, "reported": {"b": 2}}) is None
    assert stored() == {"reported": {**nested, "b": 2}}


def test_update_thing_keeps_the_attribute_quota(world: World) -> None:
    iot, thing = world.client("iot", A), name()
    iot.create_thing(thingName=thing, attributePayload={"attributes": {"a": "1", "b": "2"}})
    four = {"a": "1", "b": "2", "c": "3", "d": "4"}
    assert code(iot.update_thing, thingName=thing,
                attributePayload={"attributes": {"c": "3", "d": "4"}, "merge": True}
                ) == "InvalidRequestException"
    assert code(iot.update_thing, thingName=thing,
                attributePayload={"attributes": four}) == "InvalidRequestException"
    kind = name()
    iot.create_thing_type(thingTypeName=kind)
    iot.update_thing(thingName=thing, thingTypeName=kind, attributePayload={"attributes": four})
    # removing the type while 4 attributes stay is refused; with 1 left it is accepted
    assert code(iot.update_thing, thingName=thing, removeThingType=True) == "InvalidRequestException"
    iot.update_thing(thingName=thing, removeThingType=True,
                     attributePayload={"attributes": {"a": "1"}})
    assert iot.describe_thing(thingName=thing)["attributes"] == {"a": "1"}


def test_a_thing_belongs_to_at_most_ten_groups(world: World) -> None:
    iot, thing = world.client("iot", A), name()
    iot.create_thing(thingName=thing)
    groups = [name() for _ in range(11)]
    for group in groups:
        iot.create_thing_group(thingGroupName=group)
    for group in groups[:10]:
        iot.add_thing_to_thing_group(thingName=thing, thingGroupName=group)
    iot.add_thing_to_thing_group(thingName=thing, thingGroupName=groups[0])  # already: fine
    assert code(iot.add_thing_to_thing_group, thingName=thing,
                thingGroupName=groups[10]) == "InvalidRequestException"
    # one group per hierarchy: a child of a group the thing is in is refused
    other, parent, child = name(), name(), name()
    iot.create_thing(thingName=other)
    iot.create_thing_group(thingGroupName=parent)
    iot.create_thing_group(thingGroupName=child, parentGroupName=parent)
    iot.add_thing_to_thing_group(thingName=other, thingGroupName=parent)
    assert code(iot.add_thing_to_thing_group, thingName=other,
                thingGroupName=child) == "InvalidRequestException"


def test_registry_changes_publish_what_aws_iot_publishes(world: World) -> None:
    """Registry events: thing created/updated/deleted and group membership added/removed,
    for the types the region's declared EventConfigurations turns on; no-ops publish nothing."""
    from tools.local.emulation.registry_events import RegistryEvents

    iot, events, thing, group = world.client("iot", A), world.emulation(RegistryEvents), name(), name()
    assert events.enabled(A, "THING") and events.enabled(A, "THING_GROUP_MEMBERSHIP")
    assert not events.enabled(A, "THING_TYPE")  # the dev stack turns it off
    iot.create_thing_group(thingGroupName=group)
    before = len(events.published)
    iot.create_thing(thingName=thing)
    iot.update_thing(thingName=thing, attributePayload={"attributes": {"site": "x"}})
    iot.update_thing(thingName=thing, attributePayload={"attributes": {"site": "x"}})  # no-op
    iot.add_thing_to_thing_group(thingName=thing, thingGroupName=group)
    iot.add_thing_to_thing_group(thingName=thing, thingGroupName=group)  # no-op
    iot.remove_thing_from_thing_group(thingName=thing, thingGroupName=group)
    iot.delete_thing(thingName=thing)
    events.publish_pending()
    published = [(t, m) for region, t, m in events.published[before:]
                 if region == A and f"/{thing}/" in t]
    membership = f"$aws/events/thingGroupMembership/thingGroup/{group}/thing/{thing}"
    assert [t for t, _ in published] == [
        f"$aws/events/thing/{thing}/created", f"$aws/events/thing/{thing}/updated",
        f"{membership}/added", f"{membership}/removed", f"$aws/events/thing/{thing}/deleted"]
    created, updated, added, removed, deleted = (m for _, m in published)
    assert (created["eventType"], created["operation"], created["versionNumber"]) == (
        "THING_EVENT", "CREATED", 1)
    assert updated["attributes"] == {"site": "x"} and updated["thingTypeName"] is None
    assert updated["versionNumber"] == 2 and updated["timestamp"] > 10 ** 12  # milliseconds
    assert (added["eventType"], added["operation"]) == ("THING_GROUP_MEMBERSHIP_EVENT", "ADDED")
    assert added["groupArn"].endswith(f":thinggroup/{group}") and removed["operation"] == "REMOVED"
    assert deleted["operation"] == "DELETED"


def test_an_action_runs_only_under_a_role_that_fits(world: World) -> None:
    topic, queue = f"fidelity/{name()}", world.client("sqs", A).create_queue(QueueName=name())["QueueUrl"]
    for trusted, allowed_actions, ok in (("states.amazonaws.com", ["sqs:SendMessage"], False),
                                         ("iot.amazonaws.com", ["sqs:ReceiveMessage"], False),
                                         ("iot.amazonaws.com", ["sqs:SendMessage"], True)):
        rule_name = name().replace("-", "_")
        arn = role(world, trusted, rule_name, allowed_actions)
        world.client("iot", A).create_topic_rule(ruleName=rule_name, topicRulePayload={
            "sql": f"SELECT * FROM '{topic}/{rule_name}'", "actions": [{"sqs": {"queueUrl": queue, "roleArn": arn}}]})
        [delivery] = world.emulation(RulesEngine).publish(A, f"{topic}/{rule_name}", {"n": 1})
        assert delivery.ok == ok, delivery


def test_the_next_message_meets_the_rules_as_they_are_now(world: World) -> None:
    """The engine reads the rule store on every message: a rule disabled, enabled, replaced or
    deleted through the API applies to the next message (nothing of an earlier read is kept);
    in a region that is down, no rule runs."""
    rule_name, topic = name().replace("-", "_"), f"fidelity/{name()}"
    queue = world.client("sqs", A).create_queue(QueueName=name())["QueueUrl"]
    payload = {"sql": f"SELECT * FROM '{topic}'", "actions": [
        {"sqs": {"queueUrl": queue, "roleArn": role(world, "iot.amazonaws.com", rule_name, ["sqs:SendMessage"])}}]}
    iot, engine = world.client("iot", A), world.emulation(RulesEngine)

    def delivered(to: str) -> list[str]:
        return [d.rule for d in engine.publish(A, to, {"n": 1})]

    iot.create_topic_rule(ruleName=rule_name, topicRulePayload=payload)
    assert delivered(topic) == [rule_name]
    iot.disable_topic_rule(ruleName=rule_name)
    assert delivered(topic) == []
    iot.enable_topic_rule(ruleName=rule_name)
    assert delivered(topic) == [rule_name]
    iot.replace_topic_rule(ruleName=rule_name, topicRulePayload={**payload, "sql": f"SELECT * FROM '{topic}/moved'"})
    assert delivered(topic) == [] and delivered(f"{topic}/moved") == [rule_name]
    sent = len(world.calls.of("SendMessage", region=A))
    world.calls.down.add(A)  # a region that is down runs no rule: no action is even tried
    try:
        with pytest.raises(RegionDown):
            delivered(f"{topic}/moved")
    finally:
        world.calls.down.discard(A)
    assert len(world.calls.of("SendMessage", region=A)) == sent
    iot.delete_topic_rule(ruleName=rule_name)
    assert delivered(f"{topic}/moved") == []


def test_a_failed_action_runs_the_error_action(world: World) -> None:
    rule_name, topic = name().replace("-", "_"), f"fidelity/{name()}"
    queue = world.client("sqs", A).create_queue(QueueName=name())["QueueUrl"]
    arn = role(world, "iot.amazonaws.com", rule_name, ["states:StartExecution", "sqs:SendMessage"])
    world.client("iot", A).create_topic_rule(ruleName=rule_name, topicRulePayload={
        "sql": f"SELECT * FROM '{topic}'",
        "actions": [{"stepFunctions": {"stateMachineName": "no-such-machine", "roleArn": arn}}],
        "errorAction": {"sqs": {"queueUrl": queue, "roleArn": arn}}})
    failed, error_action = world.emulation(RulesEngine).publish(A, topic, {"n": 1})
    assert not failed.ok and error_action.ok and error_action.action == "errorAction:sqs"
    [message] = world.client("sqs", A).receive_message(QueueUrl=queue)["Messages"]
    assert json.loads(message["Body"])["failures"][0]["failedAction"] == "stepFunctions"
    world.client("sqs", A).delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    # A function whose resource policy does not name the rule: not invoked, the action fails
    # (not "invoked, the function failed later").
    world.client("iot", A).replace_topic_rule(ruleName=rule_name, topicRulePayload={
        "sql": f"SELECT * FROM '{topic}'", "actions": [{"lambda": {"functionArn": jitr.check_function(world, A)}}],
        "errorAction": {"sqs": {"queueUrl": queue, "roleArn": arn}}})
    failed, error_action = world.emulation(RulesEngine).publish(A, topic, {"n": 2})
    assert not failed.ok and "may not invoke" in failed.detail and failed.topic == topic and error_action.ok
    [message] = world.client("sqs", A).receive_message(QueueUrl=queue)["Messages"]
    assert json.loads(message["Body"])["failures"][0]["failedAction"] == "lambda"


def test_auto_registration_needs_an_active_ca_with_auto_registration(world: World) -> None:
    data, iot = world.emulation(IotData), world.client("iot", A)
    with pytest.raises(ConnectionRefused, match="no CA registered"):
        data.auto_register(A, issue(name(), issue("Stranger CA", ca=True)).pem)
    ca_id, _ = our_ca(world)
    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")
    try:
        with pytest.raises(ConnectionRefused, match="INACTIVE"):
            data.auto_register(A, world.pki.device(name()).pem)
    finally:
        iot.update_ca_certificate(certificateId=ca_id, newStatus="ACTIVE")
    device = world.pki.device(name())
    registration = data.auto_register(A, device.pem)
    assert seen.status(world, A, registration.certificate_id) == "PENDING_ACTIVATION"
    assert not data.authorize_connect(A, device.pem, device.thing_name)[0]
    assert registration.topic == f"$aws/events/certificates/registered/{ca_id}"
    with pytest.raises(ConnectionRefused, match="already registered"):
        data.auto_register(A, device.pem)


def test_connect_needs_an_active_certificate_and_its_thing(world: World) -> None:
    device = world.pki.device(name())
    registration, _, executions = jitr.connect_first(world, A, device.pem)
    assert [e["status"] for e in executions] == ["SUCCEEDED"]
    data = world.emulation(IotData)
    assert data.authorize_connect(A, device.pem, device.thing_name)[0]
    assert not data.authorize_connect(A, device.pem, "someone-else")[0]
    world.client("iot", A).update_certificate(certificateId=registration.certificate_id, newStatus="INACTIVE")
    assert data.authorize_connect(A, device.pem, device.thing_name) == (False, "certificate INACTIVE")


# --- IAM and IoT policies -----------------------------------------------------------------

def test_deny_wins_and_a_missing_variable_never_matches() -> None:
    policy = device_policy_document("iotmr", "aws", A, ACCOUNT_ID)
    client = f"arn:aws:iot:{A}:{ACCOUNT_ID}:client/sensor-1"
    attached = {"iot:Connection.Thing.IsAttached": "true", "iot:Connection.Thing.ThingName": "sensor-1"}
    assert allows([policy], "iot:Connect", client, context=attached)
    assert not allows([policy], "iot:Connect", client, context={"iot:Connection.Thing.IsAttached": "true"})
    assert not allows([policy], "iot:Connect", client.replace("sensor-1", "sensor-2"), context=attached)
    deny = {"Statement": [{"Effect": "Deny", "Action": "iot:*", "Resource": "*"}]}
    assert not allows([policy, deny], "iot:Connect", client, context=attached)


def test_conditions_as_iam_reads_them() -> None:
    rule_arn = f"arn:aws:iot:{A}:{ACCOUNT_ID}:rule/jitr"
    trust = service_trust_policy("iot.amazonaws.com", ACCOUNT_ID, rule_arn)
    context = {"AWS:SOURCEACCOUNT": ACCOUNT_ID, "aws:sourcearn": rule_arn}  # keys in any case
    assert allows([trust], "sts:AssumeRole", None, context=context, principal_service="iot.amazonaws.com")
    assert not allows([trust], "sts:AssumeRole", None, context={"aws:SourceArn": rule_arn},
                      principal_service="iot.amazonaws.com")  # a missing key fails
    assert not allows([trust], "sts:AssumeRole", None, context=context, principal_service="states.amazonaws.com")
    negated = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*",
                              "Condition": {"StringNotEquals": {"aws:PrincipalTag/x": "y"}}}]}
    assert allows([negated], "s3:GetObject", "arn:aws:s3:::b/k")  # a missing key passes a negation
    unknown = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*",
                              "Condition": {"StringEqualsIfExists": {"aws:x": "y"}}}]}
    assert not allows([unknown], "s3:GetObject", "arn:aws:s3:::b/k", context={"aws:x": "y"})


# --- Streams ----------------------------------------------------------------------------

def item(world: World, region: str, thing: str) -> dict[str, Any] | None:
    return seen.row(world, region, thing)


def put(world: World, region: str, thing: str, value: str) -> None:
    world.client("dynamodb", region).put_item(TableName=world.table(seen.INVENTORY), Item={
        "thingName": {"S": thing}, "value": {"S": value}, "writerRegion": {"S": region}})


def test_global_tables_last_writer_wins_by_write_time(world: World) -> None:
    tables = world.emulation(Streams).global_tables
    assert tables is not None
    for first, last in ((A, B), (B, A)):
        thing = name()
        with tables.held():  # both writes within the replication delay
            put(world, first, thing, "early")
            put(world, last, thing, "late")
        tables.replicate()
        assert [(item(world, r, thing) or {}).get("value") for r in (A, B)] == ["late", "late"]
    thing = name()
    put(world, A, thing, "1")
    put(world, A, thing, "2")
    tables.replicate()
    assert (item(world, B, thing) or {}).get("value") == "2"


def test_replication_does_not_echo_and_waits_for_a_region_that_is_down(world: World) -> None:
    tables = world.emulation(Streams).global_tables
    assert tables is not None
    tables.replicate()
    thing = name()
    world.calls.down.add(B)
    put(world, A, thing, "v")
    tables.replicate()
    world.calls.down.clear()
    assert item(world, B, thing) is None
    tables.replicate()
    assert (item(world, B, thing) or {}).get("value") == "v"
    assert tables.replicate() == 0  # the replicated write came back once and stopped there


def test_a_cancelled_transaction_does_not_stop_the_stream(world: World) -> None:
    tables = world.emulation(Streams).global_tables
    assert tables is not None
    tables.replicate()
    first, second = name(), name()
    put(world, A, first, "before")
    with pytest.raises(ClientError):  # cancelled: its condition fails
        world.client("dynamodb", A).transact_write_items(TransactItems=[{"Put": {
            "TableName": world.table(seen.INVENTORY), "Item": {"thingName": {"S": first}},
            "ConditionExpression": "attribute_not_exists(thingName)"}}])
    put(world, A, second, "after")
    tables.replicate()
    assert [(item(world, B, t) or {}).get("value") for t in (first, second)] == ["before", "after"]


def test_one_matcher_for_lambda_and_pipes_filters(world: World) -> None:
    record = {"eventName": "MODIFY", "dynamodb": {"NewImage": {"writerRegion": {"S": "us-west-2"},
                                                               "kind": {"S": "FLEET_SERIAL"}}}}
    assert matches([{"dynamodb": {"NewImage": {"writerRegion": {"S": [{"anything-but": [A]}]}}}}], record)
    assert not matches([{"dynamodb": {"NewImage": {"writerRegion": {"S": [{"anything-but": [B]}]}}}}], record)
    assert matches([{"dynamodb": {"NewImage": {"kind": {"S": [{"prefix": "FLEET"}]}}}}], record)
    assert not matches([{"eventName": ["INSERT"]}], record) and matches([], record)
    kinds = {c.kind for c in world.emulation(Streams).consumers if c.patterns}
    assert kinds == {"lambda", "pipe"}  # both kinds filter, through `matches`


def records(count: int) -> list[dict[str, Any]]:
    return [{"eventID": str(n), "dynamodb": {"SequenceNumber": str(n)}} for n in range(count)]


def test_delivery_retries_from_the_first_failure_then_dead_letters() -> None:
    batches: list[list[str]] = []
    letters: list[list[str]] = []

    def run(batch: list[dict[str, Any]]) -> list[str]:
        batches.append([r["eventID"] for r in batch])
        return ["1"] if "1" in batches[-1] else []

    deliver(records(4), batch_size=3, maximum_retry_attempts=2, bisect=False, run=run,
            dead_letter=lambda failed: letters.append([r["eventID"] for r in failed]))
    assert batches == [["0", "1", "2"], ["1", "2"], ["1", "2"], ["2"], ["3"]]
    assert letters == [["1"]]


def test_bisection_only_where_declared() -> None:
    for bisect, dead in ((True, [["2"]]), (False, [["0", "1", "2", "3"]])):
        letters: list[list[str]] = []

        def run(batch: list[dict[str, Any]]) -> list[str]:
            if any(r["eventID"] == "2" for r in batch):
                raise TargetFailed("poison")
            return []

        deliver(records(4), batch_size=4, maximum_retry_attempts=0, bisect=bisect, run=run,
                dead_letter=lambda failed: letters.append([r["eventID"] for r in failed]))
        assert letters == dead


def test_a_pipe_runs_only_with_a_role_that_fits(world: World) -> None:
    pipe = world.emulation(Streams).consumer("pipe", A)
    pipes = world.client("pipes", A)
    declared = pipes.describe_pipe(Name=pipe.name)
    wrong = role(world, "states.amazonaws.com", "x", ["*"])
    for role_arn, invocation, why in ((wrong, "REQUEST_RESPONSE", "does not trust"),
                                      (declared["RoleArn"], "FIRE_AND_FORGET", "FIRE_AND_FORGET")):
        copy = name()
        pipes.create_pipe(Name=copy, Source=declared["Source"], Target=declared["Target"],
                          RoleArn=role_arn, SourceParameters={"DynamoDBStreamParameters": {
                              "StartingPosition": "LATEST"}},
                          TargetParameters={"StepFunctionStateMachineParameters": {"InvocationType": invocation}})
        assert why in _pipe(world, A, copy).failed
    assert not pipe.failed


# --- fleet provisioning and Cognito ---------------------------------------------------------

def logins(world: World, *groups: str, **claims: Any) -> dict[str, str]:
    """An ID token of the region's app client (as Cognito issues it), in GetCredentialsForIdentity's Logins."""
    pool = declared(world, "aws:cognito/userPool:UserPool", A)
    client = declared(world, "aws:cognito/userPoolClient:UserPoolClient", A)
    token = {"iss": f"https://{pool['endpoint']}", "aud": client["id"], "token_use": "id", "sub": "x",
             "exp": time.time() + 60, "cognito:groups": list(groups), **claims}
    return {pool["endpoint"]: jwt.encode(token, "k" * 32, algorithm="HS256")}


def groups(world: World) -> dict[str, str]:
    return {g["name"]: g["roleArn"] for g in map(world.state, world.declared("aws:cognito/userGroup:UserGroup", A))}


def test_the_identity_pool_picks_the_role_from_the_group(world: World) -> None:
    roles = groups(world)
    installer, admin = roles[INSTALLERS_GROUP], roles[ALLOW_LIST_ADMINS_GROUP]
    assert role_for(world, A, logins(world, INSTALLERS_GROUP)) == installer
    assert role_for(world, A, logins(world, ALLOW_LIST_ADMINS_GROUP), admin) == admin
    both = logins(world, INSTALLERS_GROUP, ALLOW_LIST_ADMINS_GROUP)
    assert role_for(world, A, both) == installer  # the better (lower) precedence
    assert role_for(world, A, both, admin) == admin  # a CustomRoleArn among the token's roles
    refused = [(logins(world, INSTALLERS_GROUP), admin, "no single role"), (logins(world), None, "no single role"),
               (logins(world, "strangers"), None, "no single role"), ({}, None, "unauthenticated"),
               (logins(world, INSTALLERS_GROUP, exp=time.time() - 1), None, "unexpired"),
               (logins(world, INSTALLERS_GROUP, aud="another-client"), None, "app client")]
    for login, custom, why in refused:
        with pytest.raises(AccessDenied, match=why):
            role_for(world, A, login, custom)


def claim(world: World) -> str:
    template = world.emulation(FleetProvisioning)[A]
    policies = role_policies(world.client("iam", "us-east-1"), groups(world)[INSTALLERS_GROUP])
    with pytest.raises(AccessDenied):
        template.create_provisioning_claim([{"Statement": []}], template.name)
    return str(template.create_provisioning_claim(policies, template.name)["certificateId"])


def test_a_claim_is_short_lived_and_limited_to_its_template(world: World) -> None:
    template, claim_id = world.emulation(FleetProvisioning)[A], claim(world)
    assert template.claims[claim_id] - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(minutes=5)
    for topic in ("$aws/things/x/shadow/update", "$aws/provisioning-templates/other/provision/json"):
        with pytest.raises(AccessDenied, match="claim policy does not allow iot:Publish"):
            template._claim_request(claim_id, topic)
    template.create_keys_and_certificate(claim_id)
    later = template.now
    template.now = lambda: later() + dt.timedelta(minutes=6)
    try:
        with pytest.raises(AccessDenied, match="expired"):
            template.create_keys_and_certificate(claim_id)
    finally:
        template.now = later


def test_the_hook_decides_within_five_seconds(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    template = world.emulation(FleetProvisioning)[A]
    event = {"claimCertificateId": "c" * 64, "certificateId": "d" * 64, "certificatePem": "x",
             "templateArn": template.template["arn"], "clientId": "provision-SN-none",
             "parameters": {"SerialNumber": "SN-none"}}
    with pytest.raises(Rejected, match="denied"):  # the declared hook: not allow-listed
        template.run_hook(event)
    monkeypatch.setattr(fleet_module, "HOOK_LIMIT_SECONDS", 0.0)
    with pytest.raises(Rejected, match="hook took"):
        template.run_hook(event)


def test_the_template_attaches_as_aws_does_and_never_over_an_exclusive_attachment(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template documents no attachment type: the certificate is attached
    NON_EXCLUSIVE_THING (it may be attached elsewhere too, as AWS allows), an EXCLUSIVE_THING
    attachment to another thing refuses RegisterThing, and a property the template page does
    not document (such as a guessed ThingPrincipalType) is refused, not ignored."""
    template = world.emulation(FleetProvisioning)[A]
    iot = world.client("iot", A)
    created = iot.create_keys_and_certificate(setAsActive=False)
    certificate, arn = created["certificateId"], created["certificateArn"]
    first, second, other = (f"SN-{name()}" for _ in range(3))
    template.apply_template({"SerialNumber": first, "AWS::IoT::Certificate::Id": certificate})
    iot.create_thing(thingName=other)
    iot.attach_thing_principal(thingName=other, principal=arn)  # non-exclusive: AWS allows it
    assert set(seen.things_of(world, A, certificate)) == {first, other}
    iot.detach_thing_principal(thingName=other, principal=arn)
    iot.attach_thing_principal(thingName=first, principal=arn, thingPrincipalType="EXCLUSIVE_THING")
    with pytest.raises(Rejected, match="exclusively"):
        template.apply_template({"SerialNumber": second, "AWS::IoT::Certificate::Id": certificate})
    assert seen.things_of(world, A, certificate) == [first]

    declared_template = template.template
    body = json.loads(declared_template["templateBody"])
    body["Resources"]["certificate"]["Properties"]["ThingPrincipalType"] = "EXCLUSIVE_THING"
    monkeypatch.setattr(type(template), "template", property(
        lambda self: {**declared_template, "templateBody": json.dumps(body)}))
    with pytest.raises(Rejected, match="undocumented ThingPrincipalType"):
        template.apply_template({"SerialNumber": f"SN-{name()}",
                                 "AWS::IoT::Certificate::Id": certificate})


def test_the_template_is_applied_with_the_provisioning_role(world: World) -> None:
    template = world.emulation(FleetProvisioning)[A]
    iam = world.client("iam", "us-east-1")
    role = template.template["provisioningRoleArn"].rsplit("/", 1)[-1]
    [policy_name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    declared_policy = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
    deny = {"Effect": "Deny", "Action": "iot:AttachPolicy", "Resource": "*"}
    iam.put_role_policy(RoleName=role, PolicyName=policy_name, PolicyDocument=json.dumps(
        {**declared_policy, "Statement": [*declared_policy["Statement"], deny]}))
    certificate = world.client("iot", A).create_keys_and_certificate(setAsActive=False)["certificateId"]
    serial = f"SN-{name()}"
    try:
        with pytest.raises(Rejected, match="may not iot:AttachPolicy"):
            template.apply_template({"SerialNumber": serial, "AWS::IoT::Certificate::Id": certificate})
    finally:
        iam.put_role_policy(RoleName=role, PolicyName=policy_name, PolicyDocument=json.dumps(declared_policy))
    assert seen.policies_of(world, A, certificate) == []
    iot = world.client("iot", A)
    for principal in iot.list_thing_principals(thingName=serial)["principals"]:
        iot.detach_thing_principal(thingName=serial, principal=principal)
    iot.delete_thing(thingName=serial)
    done = template.apply_template({"SerialNumber": serial, "AWS::IoT::Certificate::Id": certificate})
    assert done["thingName"] == serial and seen.usable(world, A, serial, certificate)


# --- The device endpoint (MQTT over mutual TLS, the device SDK) ---------------------------

def telemetry(thing: str) -> str:
    return f"dt/iotmr/{thing}/status"


def test_jitr_refuses_the_first_connection_and_the_retry_connects(world: World) -> None:
    endpoints = world.emulation(DeviceEndpoints)
    device = world.pki.device(name())
    why = jitr_device.first_connection(endpoints.endpoint(A), device.pem, device.key_pem, device.thing_name)
    assert "PROTOCOL_ERROR" in why  # the SDK's word for CONNACK 5 (not authorised)
    assert not endpoints.connected(A, device.thing_name)  # no connection left (amqtt kept one)
    [(registration, deliveries)] = [r for r in endpoints.log(A).registrations
                                    if r[0].certificate_id == certificate_id(device.pem)]
    sfn = world.client("stepfunctions", A)
    assert [wait_for_execution(sfn, d.detail)["status"] for d in deliveries if d.action == "stepFunctions"] \
        == ["SUCCEEDED"]
    outcome = jitr_device.run(endpoints.endpoint(A), device.pem, device.key_pem, device.thing_name,
                              telemetry(device.thing_name))
    assert (outcome.attempt, outcome.refusals, outcome.published) == (1, [], telemetry(device.thing_name))
    assert endpoints.wait_for_message(A, device.thing_name, telemetry(device.thing_name))


def onboarded(world: World) -> Any:
    """A device JITR'd in region A (through IotData, as the endpoint does it)."""
    device = world.pki.device(name())
    _, _, executions = jitr.connect_first(world, A, device.pem)
    assert [e["status"] for e in executions] == ["SUCCEEDED"]
    return device


def test_the_endpoint_serves_the_device_domain_and_requires_a_client_certificate(world: World) -> None:
    endpoints = world.emulation(DeviceEndpoints)
    address = endpoints.addresses[A]
    client = ssl.create_default_context(cadata=endpoints.ca_pem)
    client.check_hostname = False  # let the server judge the name it is sent
    for server_name in ("other.example.com", address.host_name):
        with socket.create_connection(("127.0.0.1", address.broker_port), timeout=5) as raw:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                with client.wrap_socket(raw, server_hostname=server_name) as tls:
                    tls.sendall(b"\x10\x00")  # TLS 1.3 reports a missing client certificate on use
                    if not tls.recv(1):
                        raise ConnectionResetError("closed without an answer")
    assert any("SNI 'other.example.com'" in r for r in endpoints.log(A).refusals)


def test_a_certificate_from_an_unregistered_ca_never_reaches_mqtt(world: World) -> None:
    endpoints = world.emulation(DeviceEndpoints)
    stranger = issue(name(), issue("Stranger CA", ca=True))
    before = len(endpoints.log(A).registrations)
    why = jitr_device.first_connection(endpoints.endpoint(A), stranger.pem, stranger.key_pem, name())
    assert "SOCKET_CLOSED" in why or "TLS" in why, why
    assert len(endpoints.log(A).registrations) == before
    assert code(world.client("iot", A).describe_certificate, certificateId=certificate_id(stranger.pem)) \
        == "ResourceNotFoundException"


def test_connect_is_refused_to_another_client_id_and_an_inactive_certificate(world: World) -> None:
    endpoints, device = world.emulation(DeviceEndpoints), onboarded(world)
    assert "PROTOCOL_ERROR" in jitr_device.first_connection(endpoints.endpoint(A), device.pem, device.key_pem,
                                                            "someone-else")
    assert jitr_device.first_connection(endpoints.endpoint(A), device.pem, device.key_pem, device.thing_name) == ""
    world.client("iot", A).update_certificate(certificateId=certificate_id(device.pem), newStatus="INACTIVE")
    assert "PROTOCOL_ERROR" in jitr_device.first_connection(endpoints.endpoint(A), device.pem, device.key_pem,
                                                            device.thing_name)
    assert "certificate INACTIVE" in endpoints.log(A).refusals[-1]


def test_publish_and_subscribe_outside_the_policy_close_the_connection(world: World) -> None:
    endpoints, device = world.emulation(DeviceEndpoints), onboarded(world)
    mine, theirs = telemetry(device.thing_name), telemetry("someone-else")
    with connected(endpoints.endpoint(A), device.pem, device.key_pem, device.thing_name) as session:
        decisions = len(world.calls.of("ListAttachedPolicies", region=A))
        session.publish(mine, {"ok": True})
        assert endpoints.wait_for_message(A, device.thing_name, mine)
        # decided once, before the PUBACK (not again when amqtt delivers it)
        assert len(world.calls.of("ListAttachedPolicies", region=A)) == decisions + 1
        # no PUBACK: the connection closes (AUTH_ERROR), and the device learns it at once
        # (the SDK reports the closed connection or the publish it failed with it first: either)
        with pytest.raises(NotAcknowledged, match=f"publish to {theirs} not acknowledged: "):
            session.publish(theirs, {"ok": False})
        assert f"iot:Publish {theirs}" in endpoints.log(A).refusals[-1]
        assert endpoints.wait_for_message(A, device.thing_name, theirs, timeout=0.5) is None
    with connected(endpoints.endpoint(A), device.pem, device.key_pem, device.thing_name) as session:
        assert session.connection is not None
        subscribed, _ = session.connection.subscribe(f"cmd/iotmr/{device.thing_name}/#", mqtt.QoS.AT_LEAST_ONCE)
        assert subscribed.result(10)["qos"] == mqtt.QoS.AT_LEAST_ONCE
        denied, _ = session.connection.subscribe("cmd/iotmr/someone-else/#", mqtt.QoS.AT_LEAST_ONCE)
        with pytest.raises(Exception):
            denied.result(10)
        assert "iot:Subscribe cmd/iotmr/someone-else/#" in endpoints.log(A).refusals[-1]


def test_a_publish_over_the_payload_quota_closes_the_connection(world: World) -> None:
    endpoints, device = world.emulation(DeviceEndpoints), onboarded(world)
    mine = telemetry(device.thing_name)
    overhead = len(json.dumps({"blob": ""}))
    with connected(endpoints.endpoint(A), device.pem, device.key_pem, device.thing_name) as session:
        session.publish(mine, {"blob": "x" * (PAYLOAD_LIMIT_BYTES - overhead)})  # at the quota: accepted
        assert endpoints.wait_for_message(A, device.thing_name, mine)
        with pytest.raises(NotAcknowledged):
            session.publish(f"{mine}/big", {"blob": "x" * (PAYLOAD_LIMIT_BYTES - overhead + 1)})
    assert endpoints.log(A).refusals[-1] == (
        f"iot:Publish {mine}/big by {device.thing_name}: payload of {PAYLOAD_LIMIT_BYTES + 1} bytes exceeds "
        f"{PAYLOAD_LIMIT_BYTES} (CLIENT_ERROR, PAYLOAD_LIMIT_EXCEEDED)")
    assert endpoints.wait_for_message(A, device.thing_name, f"{mine}/big", timeout=0.5) is None


def test_a_qos_2_subscription_is_not_acknowledged(world: World) -> None:
    endpoints, device = world.emulation(DeviceEndpoints), onboarded(world)
    commands = f"cmd/iotmr/{device.thing_name}/#"
    with connected(endpoints.endpoint(A), device.pem, device.key_pem, device.thing_name) as session:
        assert session.connection is not None
        subscribed, _ = session.connection.subscribe(commands, mqtt.QoS.EXACTLY_ONCE)
        with pytest.raises(Exception):  # no SUBACK
            subscribed.result(10)
    assert endpoints.log(A).refusals[-1].startswith(f"iot:Subscribe {commands} by {device.thing_name}: QoS 2")


def test_amazon_issued_certificates_chain_to_one_issuer(world: World) -> None:
    iot = world.client("iot", A)
    created = iot.create_keys_and_certificate(setAsActive=False)
    from_csr = iot.create_certificate_from_csr(certificateSigningRequest=new_csr(name())[1], setAsActive=False)
    issuer = x509.load_pem_x509_certificate(amazon_issuer_pem().encode())
    for pem in (created["certificatePem"], from_csr["certificatePem"]):
        x509.load_pem_x509_certificate(pem.encode()).verify_directly_issued_by(issuer)


def test_a_delivery_the_receivers_policy_denies_is_dropped(world: World) -> None:
    endpoints, device = world.emulation(DeviceEndpoints), onboarded(world)
    iot, commands = world.client("iot", A), f"cmd/iotmr/{device.thing_name}"
    policy = name()
    iot.create_policy(policyName=policy, policyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "iot:Receive",
         "Resource": f"arn:aws:iot:{A}:{ACCOUNT_ID}:topic/{commands}/secret"}]}))
    iot.attach_policy(policyName=policy, target=iot.describe_certificate(
        certificateId=certificate_id(device.pem))["certificateDescription"]["certificateArn"])
    received: list[str] = []
    with connected(endpoints.endpoint(A), device.pem, device.key_pem, device.thing_name) as session:
        assert session.connection is not None
        subscribed, _ = session.connection.subscribe(f"{commands}/#", mqtt.QoS.AT_LEAST_ONCE,
                                                     callback=lambda topic, payload, **_: received.append(topic))
        subscribed.result(10)
        endpoints.publish(A, f"{commands}/secret", {"n": 1})
        endpoints.publish(A, f"{commands}/hello", {"n": 2})
        deadline = time.monotonic() + 5
        while f"{commands}/hello" not in received and time.monotonic() < deadline:
            time.sleep(0.05)
    assert received == [f"{commands}/hello"]
    assert any(r.startswith(f"iot:Receive {commands}/secret") for r in endpoints.log(A).refusals)


# --- DNS failover and connections (emulation/dns.py) ---------------------------------------

def _edge_checks(world: World, region: str) -> dict[str, str]:
    """The runtime ids of a region's device-domain checks: alarm, tcp, control, combined."""
    found = {}
    for resource in world.declared("aws:route53/healthCheck:HealthCheck"):
        for suffix, key in (("-edge-alarm-health-check", "alarm"), ("-edge-tcp-health-check", "tcp"),
                            ("-edge-evacuation-control", "control"), ("-edge-health-check", "combined")):
            if resource.name == f"region-{region}{suffix}":
                found[key] = str(world.resolver(resource.id))
    return found


def _invert(world: World, check: str, inverted: bool) -> None:
    route53 = world.client("route53", "us-east-1")
    version = route53.get_health_check(HealthCheckId=check)["HealthCheck"]["HealthCheckVersion"]
    route53.update_health_check(HealthCheckId=check, Inverted=inverted, HealthCheckVersion=version)


def test_update_health_check_checks_its_version(world: World) -> None:
    route53 = world.client("route53", "us-east-1")
    check = route53.create_health_check(CallerReference=name(), HealthCheckConfig={
        "Type": "CALCULATED", "ChildHealthChecks": [], "HealthThreshold": 0})["HealthCheck"]["Id"]
    route53.update_health_check(HealthCheckId=check, Inverted=True, HealthCheckVersion=1)
    assert route53.get_health_check(HealthCheckId=check)["HealthCheck"]["HealthCheckVersion"] == 2
    assert code(route53.update_health_check, HealthCheckId=check, Inverted=False,
                HealthCheckVersion=1) == "HealthCheckVersionMismatch"
    assert route53.get_health_check(HealthCheckId=check)["HealthCheck"]["HealthCheckConfig"]["Inverted"] is True


def test_update_health_check_keeps_the_children_it_does_not_name(world: World) -> None:
    route53 = world.client("route53", "us-east-1")
    child = route53.create_health_check(CallerReference=name(), HealthCheckConfig={
        "Type": "CALCULATED", "ChildHealthChecks": [], "HealthThreshold": 0})["HealthCheck"]["Id"]
    parent = route53.create_health_check(CallerReference=name(), HealthCheckConfig={
        "Type": "CALCULATED", "ChildHealthChecks": [child], "HealthThreshold": 1})["HealthCheck"]["Id"]

    def children() -> list[str]:
        config = route53.get_health_check(HealthCheckId=parent)["HealthCheck"]["HealthCheckConfig"]
        return list(config.get("ChildHealthChecks") or [])

    route53.update_health_check(HealthCheckId=parent, HealthThreshold=1, Inverted=False)
    assert children() == [child]
    route53.update_health_check(HealthCheckId=parent, ResetElements=["ChildHealthChecks"])
    assert children() == []


def test_calculated_checks_count_their_children_and_invert(world: World) -> None:
    from tools.local.emulation.dns import Dns

    dns, checks = world.emulation(Dns), _edge_checks(world, A)
    assert dns.healthy(checks["control"]) and dns.healthy(checks["combined"])  # threshold 0: healthy
    _invert(world, checks["control"], True)
    try:
        assert not dns.healthy(checks["control"]) and not dns.healthy(checks["combined"])
    finally:
        _invert(world, checks["control"], False)
    world.calls.down.add(A)  # the region's alarm and TCP children fail: one child short
    assert dns.healthy(checks["control"]) and not dns.healthy(checks["tcp"])
    assert not dns.healthy(checks["combined"])


def test_route53_publishes_status_one_evaluation_late_and_in_us_east_1_only(world: World) -> None:
    from tools.local.emulation.dns import Dns

    checks, dns = _edge_checks(world, B), world.emulation(Dns)
    cloudwatch = world.client("cloudwatch", "us-east-1")

    def status(client: Any = cloudwatch) -> list[float]:
        now = dt.datetime.now(dt.timezone.utc)
        points = client.get_metric_statistics(
            Namespace="AWS/Route53", MetricName="HealthCheckStatus", Period=60, Statistics=["Minimum"],
            Dimensions=[{"Name": "HealthCheckId", "Value": checks["combined"]}],
            StartTime=now - dt.timedelta(minutes=5), EndTime=now)["Datapoints"]
        return [p["Minimum"] for p in points]

    assert status() == [1.0]
    _invert(world, checks["control"], True)
    try:
        assert status() == [1.0]  # the previous evaluation's verdict
        assert status() == [0.0]
        assert status(world.client("cloudwatch", A)) == []  # Route53 metrics live in us-east-1
    finally:
        _invert(world, checks["control"], False)
        dns.published.clear()


def test_get_health_check_status_refuses_calculated_checks(world: World) -> None:
    route53, checks = world.client("route53", "us-east-1"), _edge_checks(world, A)
    assert code(route53.get_health_check_status, HealthCheckId=checks["combined"]) == "InvalidInput"
    assert route53.get_health_check_status(HealthCheckId=checks["tcp"])["HealthCheckObservations"]


def test_latency_resolution_fails_over_to_a_healthy_region_and_fails_open(world: World) -> None:
    from tools.local.emulation.dns import Dns

    dns, domain = world.emulation(Dns), str(world.graph.outputs["deviceDomain"])
    controls = {r: _edge_checks(world, r)["control"] for r in (A, B)}
    dns.published.clear()
    assert dns.resolve(domain, A) == A and dns.resolve(domain, B) == B
    try:
        _invert(world, controls[A], True)
        dns.resolve(domain, A)  # Route53's verdict changes one evaluation late
        assert dns.resolve(domain, A) == B
        _invert(world, controls[B], True)
        dns.resolve(domain, A)
        assert dns.resolve(domain, A) == A and dns.resolve(domain, B) == B  # none healthy: all answer
    finally:
        for control in controls.values():
            _invert(world, control, False)
        dns.published.clear()


def test_delete_connection_closes_the_session_and_refuses_an_unconnected_client(world: World) -> None:
    endpoints, device = world.emulation(DeviceEndpoints), onboarded(world)
    data = world.client("iot-data", A)
    assert code(data.delete_connection, clientId=device.thing_name) == "ResourceNotFoundException"
    with connected(endpoints.endpoint(A), device.pem, device.key_pem, device.thing_name):
        assert endpoints.connected(A, device.thing_name)
        data.delete_connection(clientId=device.thing_name)
        assert not endpoints.connected(A, device.thing_name)


# --- Fleet provisioning over MQTT (a claim on the device endpoint, the SDK's iotidentity) -----

def mqtt_claim(world: World) -> dict[str, Any]:
    """A claim as the installers' role creates it: certificate, key, id."""
    template = world.emulation(FleetProvisioning)[A]
    policies = role_policies(world.client("iam", "us-east-1"), groups(world)[INSTALLERS_GROUP])
    return template.create_provisioning_claim(policies, template.name)


def allowed_serial(world: World) -> str:
    serial = f"SN-{uuid.uuid4().hex[:8].upper()}"
    installer.allow_serial(world.resource("dynamodb", A).Table(world.table(seen.PROVISIONING)), serial,
                           now=dt.datetime.now(dt.timezone.utc))
    return serial


def claim_client(world: World, serial: str) -> str:
    return f"{fleet_journey.hook_variables(world, A)['CLAIM_CLIENT_ID_PREFIX']}{serial}"


def test_a_claim_provisions_over_mqtt_with_the_answers_on_its_own_connection(world: World) -> None:
    endpoints, template, made_claim = world.emulation(DeviceEndpoints), world.emulation(FleetProvisioning)[A], \
        mqtt_claim(world)
    serial = allowed_serial(world)
    before = len(endpoints.log(A).provisioning)
    made = fleet_device.provision(endpoints.endpoint(A), made_claim["certificatePem"],
                                  made_claim["keyPair"]["PrivateKey"], claim_client(world, serial), template.name,
                                  {"SerialNumber": serial}, own_key=True)
    assert made.thing_name == serial and seen.usable(world, A, serial, made.certificate_id)
    certified = x509.load_pem_x509_certificate(made.certificate_pem.encode()).public_key()
    own = serialization.load_pem_private_key(made.key_pem.encode(), None).public_key()
    assert certified.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
        == own.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    answered = [(client, topic, answer[0] if answer else None)
                for client, topic, answer in endpoints.log(A).provisioning[before:]]
    assert answered == [
        (claim_client(world, serial), "$aws/certificates/create-from-csr/json",
         "$aws/certificates/create-from-csr/json/accepted"),
        (claim_client(world, serial), f"$aws/provisioning-templates/{template.name}/provision/json",
         f"$aws/provisioning-templates/{template.name}/provision/json/accepted")]


def test_the_claim_policy_bounds_every_claim_publish_subscribe_and_connect(world: World) -> None:
    endpoints, template, made_claim = world.emulation(DeviceEndpoints), world.emulation(FleetProvisioning)[A], \
        mqtt_claim(world)
    pem, key, client = made_claim["certificatePem"], made_claim["keyPair"]["PrivateKey"], claim_client(world, "SN-X")
    with connected(endpoints.endpoint(A), pem, key, client) as session:
        assert session.connection is not None
        refused, _ = session.connection.subscribe("$aws/provisioning-templates/other/provision/json/accepted",
                                                  mqtt.QoS.AT_LEAST_ONCE)
        with pytest.raises(Exception):
            refused.result(10)
    assert endpoints.log(A).refusals[-1].startswith(
        "iot:Subscribe $aws/provisioning-templates/other/provision/json/accepted by")
    with connected(endpoints.endpoint(A), pem, key, client) as session:
        with pytest.raises(NotAcknowledged):
            session.publish("dt/iotmr/SN-X/status", {"claim": "telemetry"})
    assert endpoints.log(A).refusals[-1].startswith("iot:Publish dt/iotmr/SN-X/status")
    assert endpoints.wait_for_message(A, client, "dt/iotmr/SN-X/status", timeout=0.5) is None
    later = template.now
    template.now = lambda: later() + dt.timedelta(minutes=6)
    try:
        with pytest.raises(Refused):
            with connected(endpoints.endpoint(A), pem, key, client):
                pass
    finally:
        template.now = later
    assert "expired claim" in endpoints.log(A).refusals[-1]


def test_a_rejected_request_answers_as_the_mqtt_api_documents(world: World) -> None:
    endpoints, fleet = world.emulation(DeviceEndpoints), world.emulation(FleetProvisioning)
    template, made_claim = fleet[A], mqtt_claim(world)
    # Over MQTT with the SDK: a serial nobody allowed, so the hook denies; 403 on .../rejected.
    with pytest.raises(fleet_device.ProvisioningRejected) as denied:
        fleet_device.provision(endpoints.endpoint(A), made_claim["certificatePem"],
                               made_claim["keyPair"]["PrivateKey"], claim_client(world, "SN-NOBODY"),
                               template.name, {"SerialNumber": "SN-NOBODY"})
    assert (denied.value.status_code, denied.value.error_code) == (403, "AccessDenied")
    # A token is good on the claim it was issued to only, and a payload must be a JSON object.
    other = mqtt_claim(world)
    token = template.create_keys_and_certificate(other["certificateId"])["certificateOwnershipToken"]
    provision = f"$aws/provisioning-templates/{template.name}/provision/json"
    answers = [fleet.mqtt_request(A, made_claim["certificateId"], "c", provision,
                                  json.dumps({"certificateOwnershipToken": token}).encode()),
               fleet.mqtt_request(A, made_claim["certificateId"], "c", "$aws/certificates/create/json", b"[1]")]
    assert [(topic, {k: v for k, v in body.items() if k != "errorMessage"}) for topic, body in filter(None, answers)] \
        == [(f"{provision}/rejected", {"statusCode": 400, "errorCode": "InvalidCertificateOwnershipToken"}),
            ("$aws/certificates/create/json/rejected", {"statusCode": 400, "errorCode": "InvalidPayload"})]
    assert fleet.mqtt_request(A, made_claim["certificateId"], "c", "$aws/things/x/shadow/update", b"{}") is None


def test_concurrent_invocations_get_an_execution_environment_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second invocation while the first runs gets its own environment (a cold start); past
    the cap a third waits for one; the next one after them reuses a warm environment. Module
    state is never shared."""
    from types import SimpleNamespace

    environments: list[dict[str, int]] = []

    def load(handler: str) -> Any:
        state = {"environment": len(environments), "invocations": 0}
        environments.append(state)

        def run(event: dict[str, Any], context: Any) -> tuple[int, int]:
            state["invocations"] += 1
            event["inside"].set()
            event["release"].wait(10)
            return state["environment"], state["invocations"]
        return run

    monkeypatch.setattr(lambdas_module, "load_handler", load)
    monkeypatch.setattr(lambdas_module, "MAX_ENVIRONMENTS", 2)
    function = lambdas_module.DeclaredFunction("f", f"arn:aws:lambda:{A}:{ACCOUNT_ID}:function:f", A,
                                               "x.app.handler", {})
    world = SimpleNamespace(adapter=SimpleNamespace(lambda_handlers={}))
    runtime = LambdaRuntime(world, [function], [])  # type: ignore[arg-type]
    release = threading.Event()
    answers: list[Any] = []
    insides = [threading.Event() for _ in range(3)]

    def invoke(inside: threading.Event) -> None:
        answers.append(runtime.invoke("f", {"inside": inside, "release": release}))

    threads = [threading.Thread(target=invoke, args=(inside,)) for inside in insides]
    for thread, inside in zip(threads[:2], insides):
        thread.start()
        assert inside.wait(10)  # the first is still running when the second arrives
    threads[2].start()
    assert not insides[2].wait(0.5) and len(environments) == 2  # the third waits: both are busy
    release.set()
    for thread in threads:
        thread.join(10)
    assert {e for e, _ in answers} == {0, 1} and sorted(n for _, n in answers) == [1, 1, 2]  # one served twice
    assert len(environments) == 2
    again = runtime.invoke("f", {"inside": threading.Event(), "release": release})
    assert again[0] == 0 and len(environments) == 2  # warm, the first environment: no third cold start


def test_a_cold_start_counts_by_its_cpu_time_and_an_invocation_in_full(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold start that waits (a busy machine) is not the hook taking long; a slow invocation is."""
    runtime, template = world.emulation(LambdaRuntime), world.emulation(FleetProvisioning)[A]
    hook = fleet_journey.hook_arn(world, A)
    event = {"claimCertificateId": "c" * 64, "certificateId": "d" * 64, "certificatePem": "x",
             "templateArn": template.template["arn"], "clientId": "provision-SN-none",
             "parameters": {"SerialNumber": "SN-none"}}
    # The limit leaves a loaded machine room for the invocation itself; the waits exceed it.
    limit, wait = 1.0, 1.5
    monkeypatch.setattr(fleet_module, "HOOK_LIMIT_SECONDS", limit)
    real_load = lambdas_module.load_handler

    def waiting_load(handler: str) -> Any:
        time.sleep(wait)  # the importing thread waits, as it does for the GIL under load
        return real_load(handler)

    runtime.cold_start(hook)
    monkeypatch.setattr(lambdas_module, "load_handler", waiting_load)
    with pytest.raises(Rejected, match="denied the request"):  # refused for the serial, not the time
        template.run_hook(event)
    timing = runtime.last_timing()
    assert timing.init_wall >= wait and timing.init_cpu < limit and template.hook_answers[-1][2] == timing.counted

    loaded = runtime.function(hook).loaded
    assert loaded is not None
    monkeypatch.setattr(runtime.function(hook), "loaded", lambda e, c: (time.sleep(wait), loaded(e, c))[1])
    with pytest.raises(Rejected, match="hook took"):
        template.run_hook(event)
