"""The pre-provisioning hook against moto DynamoDB: the exact payload AWS IoT sends, every
reason to deny, the claim it records, and a table that does not answer (deny in budget)."""

from __future__ import annotations

import datetime as dt
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.fleet_allow_list import State
from lambdas.contracts.certificates import certificate_id
from lambdas.contracts.environment import FleetHookEnvironment
from lambdas.contracts.inventory import InventoryItem, Issuer, Onboarding, Status
from lambdas.fleet_provisioning_hook import app as hook_app
from lambdas.fleet_provisioning_hook.data import CLIENT_CONFIG
from tests.support.certificates import issue
from tests.support.lambda_environment import use_function_environment
from tools.local.emulation.lambdas import LambdaContext

REGION = "eu-west-1"
ACCOUNT = "123456789012"
PROVISIONING_TABLE = "test-cvm-provisioning"
INVENTORY_TABLE = "test-device-inventory"
TEMPLATE_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:provisioningtemplate/test-fleet"
PREFIX = "provision-"
SERIAL = "SN-0001"
NEW_CERT = issue("unused")  # stands in for the certificate AWS IoT just created
OTHER_CERT = issue("other device")
CERT_ID = certificate_id(NEW_CERT.pem)  # ids as AWS IoT derives them from the PEM
OTHER_CERT_ID = certificate_id(OTHER_CERT.pem)


def request(serial: str = SERIAL, **changes: Any) -> dict[str, Any]:
    """The pre-provisioning hook input, exactly as AWS IoT documents it."""
    event = {
        "claimCertificateId": "c" * 64,
        "certificateId": CERT_ID,
        "certificatePem": NEW_CERT.pem,
        "templateArn": TEMPLATE_ARN,
        "clientId": f"{PREFIX}{serial}",
        "parameters": {"SerialNumber": serial},
    }
    event.update(changes)
    return event


def context(seconds: float = 5.0) -> LambdaContext:
    return LambdaContext(function_name="hook", invoked_function_arn="arn:aws:lambda:x",
                         deadline=time.monotonic() + seconds)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = FleetHookEnvironment(
        provisioning_table_name=PROVISIONING_TABLE, inventory_table_name=INVENTORY_TABLE,
        template_arn=TEMPLATE_ARN, claim_client_id_prefix=PREFIX,
        hook_budget_ms="3000").variables()
    use_function_environment(monkeypatch, REGION, declared)


@pytest.fixture
def tables(env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        for name, key in ((PROVISIONING_TABLE, "deviceUid"), (INVENTORY_TABLE, "thingName")):
            dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                  KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                                  AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}])
        monkeypatch.setattr(hook_app, "_dynamodb",
                            boto3.client("dynamodb", region_name=REGION, config=CLIENT_CONFIG))
        monkeypatch.setattr(hook_app, "_iot",
                            boto3.client("iot", region_name=REGION, config=CLIENT_CONFIG))
        yield dynamodb


def allow(dynamodb: Any, serial: str = SERIAL, **extra: Any) -> None:
    dynamodb.Table(PROVISIONING_TABLE).put_item(Item={
        **allow_list.new_entry(serial, allow_list.timestamp(dt.datetime.now(dt.timezone.utc)))[
            "Item"], **extra})


def claim_attributes(certificate_id: str = OTHER_CERT_ID, *, serial: str = SERIAL,
                     claimed_at: dt.datetime | None = None) -> dict[str, Any]:
    """What the hook records with a claim (another device's, by default)."""
    moment = claimed_at or dt.datetime.now(dt.timezone.utc)
    return {"claimCertificateId": certificate_id, "claimCertificatePem": OTHER_CERT.pem,
            "claimClientId": f"{PREFIX}{serial}", "claimedAt": allow_list.timestamp(moment),
            "claimRegion": REGION}


def entry(dynamodb: Any, serial: str = SERIAL) -> dict[str, Any]:
    return dict(dynamodb.Table(PROVISIONING_TABLE).get_item(
        Key=allow_list.key(serial))["Item"])


def device(dynamodb: Any, status: str, serial: str = SERIAL) -> None:
    """Another device's inventory item under the serial, `status`, per the contract."""
    item = InventoryItem.first(
        thing_name=serial, certificate_id=OTHER_CERT_ID, certificate_pem=OTHER_CERT.pem,
        issuer=Issuer.AMAZON, onboarding=Onboarding.FLEET, region="us-west-2",
        not_after="2030-01-01T00:00:00.000Z", updated_at="2026-01-01T00:00:00.000Z")
    if status == Status.DELETED:
        item = item.tombstone(writer_region="us-west-2", updated_at="2026-01-02T00:00:00.000Z",
                              now_epoch=1_900_000_000)
    elif status != Status.ACTIVE:
        item = item.changed(writer_region="us-west-2", updated_at="2026-01-02T00:00:00.000Z",
                            status=status)
    dynamodb.Table(INVENTORY_TABLE).put_item(Item=item.to_plain())


def test_allowed_serial_is_provisioned_and_its_claim_recorded(tables: Any) -> None:
    allow(tables)
    answer = hook_app.handler(request(), context())
    assert answer == {"allowProvisioning": True, "parameterOverrides": {"SerialNumber": SERIAL}}
    recorded = entry(tables)
    assert allow_list.problems(recorded) == []  # the hook's write keeps the contract
    assert recorded["state"] == State.CLAIMED
    assert recorded["claimCertificateId"] == CERT_ID
    assert recorded["claimCertificatePem"] == NEW_CERT.pem
    assert recorded["claimClientId"] == f"{PREFIX}{SERIAL}"
    assert recorded["claimRegion"] == REGION
    assert dt.datetime.fromisoformat(recorded["claimedAt"]) > \
        dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)


def test_the_answer_is_a_json_boolean_not_a_string(tables: Any) -> None:
    """AWS IoT provisions only on `"allowProvisioning": true`."""
    allow(tables)
    assert hook_app.handler(request(), context())["allowProvisioning"] is True
    assert hook_app.handler(request("SN-unknown"), context())["allowProvisioning"] is False


@pytest.mark.parametrize("setup, reason_state", [
    ("unknown", None),
    ("disabled", State.ALLOWED),
    ("provisioned_in_allow_list", State.PROVISIONED),
    ("conflict_in_allow_list", State.CONFLICT),
])
def test_denied_by_the_allow_list(tables: Any, setup: str, reason_state: str | None) -> None:
    if setup == "disabled":
        allow(tables, enabled=False)
    elif setup != "unknown":
        allow(tables, state=reason_state, **claim_attributes(), certificateId=OTHER_CERT_ID,
              settledAt=allow_list.timestamp(dt.datetime.now(dt.timezone.utc)))
    answer = hook_app.handler(request(), context())
    assert answer == {"allowProvisioning": False, "parameterOverrides": {}}
    if setup == "unknown":
        assert "Item" not in tables.Table(PROVISIONING_TABLE).get_item(
            Key=allow_list.key(SERIAL))
    else:
        assert entry(tables)["state"] == reason_state  # nothing claimed
        assert entry(tables).get("claimCertificateId") in (None, OTHER_CERT_ID)


@pytest.mark.parametrize("status", ["ACTIVE", "INACTIVE", "REVOKED"])
def test_denied_when_the_inventory_knows_the_device(tables: Any, status: str) -> None:
    """Already provisioned (here or in another region, replicated) or revoked for good."""
    allow(tables)
    device(tables, status)
    assert hook_app.handler(request(), context())["allowProvisioning"] is False
    assert entry(tables)["state"] == State.ALLOWED


def test_a_tombstoned_device_may_be_provisioned_again(tables: Any) -> None:
    allow(tables)
    device(tables, "DELETED")
    assert hook_app.handler(request(), context())["allowProvisioning"] is True
    assert entry(tables)["state"] == State.CLAIMED


def test_a_cvm_record_under_the_same_key_is_not_an_allow_list_entry(tables: Any) -> None:
    """The CVM's records share the table; an item without `kind = FLEET_SERIAL` never allows."""
    tables.Table(PROVISIONING_TABLE).put_item(Item={
        **allow_list.key(SERIAL), "enabled": True, "state": State.ALLOWED})
    assert hook_app.handler(request(), context())["allowProvisioning"] is False


@pytest.mark.parametrize("event, field", [
    ({k: v for k, v in request().items() if k != "certificateId"}, "certificateId"),
    (request(certificateId="not-hex"), "certificateId"),
    (request(parameters="SN-0001"), "parameters"),
    (request(clientId=""), "clientId"),
    ("not an object", "<event>"),
    (None, "<event>"),
])
def test_malformed_payload_is_denied_naming_the_field(tables: Any, event: Any, field: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    allow(tables)
    assert hook_app.handler(event, context()) == {"allowProvisioning": False,
                                                  "parameterOverrides": {}}
    [warning] = [r for r in caplog.records if r.getMessage() == "malformed pre-provisioning request"]
    assert field in getattr(warning, "fields")
    assert not any(r.exc_info for r in caplog.records)  # a bad request is no stack trace
    assert entry(tables)["state"] == State.ALLOWED


@pytest.mark.parametrize("event", [
    request(templateArn=TEMPLATE_ARN.replace("test-fleet", "other")),
    request(parameters={}),
    request(parameters={"SerialNumber": "bad serial/with slash"}),
    request(clientId="someone-else"),
])
def test_request_problems_deny_without_touching_the_table(tables: Any,
                                                          event: dict[str, Any]) -> None:
    allow(tables)
    assert hook_app.handler(event, context())["allowProvisioning"] is False
    assert entry(tables)["state"] == State.ALLOWED


def test_one_serial_one_certificate_while_a_claim_is_fresh(tables: Any) -> None:
    allow(tables)
    assert hook_app.handler(request(), context())["allowProvisioning"] is True
    # The same device retrying RegisterThing with the same certificate: still allowed.
    assert hook_app.handler(request(), context())["allowProvisioning"] is True
    # A second certificate for the same serial: denied while the first claim is fresh.
    assert hook_app.handler(request(certificateId=OTHER_CERT_ID), context())[
        "allowProvisioning"] is False
    assert entry(tables)["claimCertificateId"] == CERT_ID


def test_a_stale_claim_may_be_replaced(tables: Any) -> None:
    stale = dt.datetime.now(dt.timezone.utc) - allow_list.CLAIM_STALE_AFTER - dt.timedelta(
        seconds=1)
    allow(tables, state=State.CLAIMED, **claim_attributes(claimed_at=stale))
    assert hook_app.handler(request(), context())["allowProvisioning"] is True
    assert entry(tables)["claimCertificateId"] == CERT_ID


def test_a_device_recorded_between_read_and_write_loses_the_claim(
        tables: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim is one transaction with an inventory condition: a device that lands in the
    inventory after the read (e.g. replicated from another region) still denies."""
    allow(tables)
    from lambdas.fleet_provisioning_hook.data import DynamoAllowList

    original = DynamoAllowList.read

    def read_then_someone_records(self: DynamoAllowList, serial: str, cert: str,
                                  *claim: str) -> Any:
        records = original(self, serial, cert, *claim)
        device(tables, "ACTIVE")
        return records

    monkeypatch.setattr(DynamoAllowList, "read", read_then_someone_records)
    assert hook_app.handler(request(), context())["allowProvisioning"] is False
    assert entry(tables)["state"] == State.ALLOWED


def test_throttled_read_is_retried_once(tables: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    allow(tables)
    client = hook_app._dynamodb
    calls: list[str] = []
    real = client.batch_get_item

    def throttled_once(**kwargs: Any) -> Any:
        calls.append("batch_get_item")
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                         "Message": "slow down"}}, "BatchGetItem")
        return real(**kwargs)

    monkeypatch.setattr(client, "batch_get_item", throttled_once)
    assert hook_app.handler(request(), context())["allowProvisioning"] is True
    assert calls == ["batch_get_item", "batch_get_item"]


class SilentEndpoint:
    """A TCP endpoint that accepts connections and never answers: a table that hangs."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.accepted: list[socket.socket] = []
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def _accept(self) -> None:
        # Polls, so close() can stop it only after every connection the kernel completed is
        # counted (a loaded machine may schedule this thread late).
        while True:
            if select.select([self.server], [], [], 0.05)[0]:
                self.accepted.append(self.server.accept()[0])
            elif self.closing.is_set():
                return

    def close(self) -> None:
        self.closing.set()
        self.thread.join(timeout=10)
        self.server.close()
        for connection in self.accepted:
            connection.close()


def test_a_table_that_does_not_answer_denies_within_the_hook_limit(
        env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real sockets, real botocore timeouts: the read times out (0.8 s), is retried once,
    and the hook denies — well inside the 5 seconds AWS IoT waits. Building a client (1 s
    here, as a cold one can take on a loaded machine) is not taken from the budget."""
    endpoint = SilentEndpoint()
    try:
        monkeypatch.setattr(hook_app, "_dynamodb", boto3.client(
            "dynamodb", region_name=REGION, endpoint_url=endpoint.url, config=CLIENT_CONFIG))
        monkeypatch.setattr(hook_app, "iot_client", lambda: time.sleep(1.0))
        started = time.monotonic()
        answer = hook_app.handler(request(), context(5.0))
        elapsed = time.monotonic() - started
    finally:
        endpoint.close()
    assert answer == {"allowProvisioning": False, "parameterOverrides": {}}
    assert elapsed < 1.0 + 3.0 + 0.5, elapsed  # the client, HOOK_BUDGET_MS, bookkeeping
    assert len(endpoint.accepted) == 2  # one attempt + one bounded retry, no more


def test_the_budget_never_exceeds_what_lambda_has_left(env: None) -> None:
    assert hook_app.budget_seconds(3000, 5000) == 3.0
    assert hook_app.budget_seconds(3000, 1000) == pytest.approx(0.7)
    assert hook_app.budget_seconds(3000, 100) == 0.0


def test_no_budget_left_denies_without_calling_the_table(
        tables: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    allow(tables)
    calls: list[str] = []
    monkeypatch.setattr(hook_app._dynamodb, "batch_get_item",
                        lambda **kw: calls.append("called"))
    assert hook_app.handler(request(), context(0.5))["allowProvisioning"] is False
    assert calls == []


def test_a_misconfigured_function_denies(tables: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    allow(tables)
    monkeypatch.delenv("TEMPLATE_ARN")
    assert hook_app.handler(request(), context()) == {"allowProvisioning": False,
                                                      "parameterOverrides": {}}
    assert entry(tables)["state"] == State.ALLOWED


@pytest.mark.parametrize("breakage, reason", [
    ({"allowedAt": "yesterday"}, "INVALID_ENTRY"),
    ({"state": State.CLAIMED}, "INVALID_ENTRY"),  # a claim without its attributes
    ({"enabled": "true"}, "INVALID_ENTRY"),  # a string is not a boolean
])
def test_an_entry_that_breaks_its_contract_denies(tables: Any, breakage: dict[str, Any],
                                                  reason: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    allow(tables, **breakage)
    assert hook_app.handler(request(), context())["allowProvisioning"] is False
    [decision] = [r for r in caplog.records if r.getMessage() == "pre-provisioning decision"]
    assert getattr(decision, "reason") == reason and getattr(decision, "problems")


def test_an_inventory_item_that_breaks_its_contract_denies(tables: Any) -> None:
    allow(tables)
    tables.Table(INVENTORY_TABLE).put_item(Item={"thingName": SERIAL, "status": "DELETED",
                                                 "version": 2})  # no certificate, no writer
    assert hook_app.handler(request(), context())["allowProvisioning"] is False
    assert entry(tables)["state"] == State.ALLOWED


# --- one certificate, one device (issue 19, class 1) -------------------------------------

def test_one_certificate_is_allowed_one_serial_only(tables: Any) -> None:
    """Reconnecting as the second serial's client id with the same ownership token (so the
    same new certificate) is refused: the certificate already holds the first serial."""
    allow(tables)
    allow(tables, "SN-0002")
    assert hook_app.handler(request(), context())["allowProvisioning"] is True
    second = request("SN-0002")
    assert hook_app.handler(second, context()) == {"allowProvisioning": False,
                                                   "parameterOverrides": {}}
    assert entry(tables, "SN-0002")["state"] == State.ALLOWED  # nothing claimed
    held = tables.Table(PROVISIONING_TABLE).get_item(Key=allow_list.certificate_key(CERT_ID))
    assert (held["Item"]["serialNumber"], held["Item"]["kind"]) == (SERIAL,
                                                                   allow_list.CERTIFICATE_KIND)
    # the same certificate retrying its own serial is still allowed (a lost answer)
    assert hook_app.handler(request(), context())["allowProvisioning"] is True


def test_a_second_serial_claimed_between_read_and_write_loses(
        tables: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two RegisterThing requests of one certificate racing for two serials: the claim's
    transaction holds the certificate's record, so at most one wins."""
    allow(tables)
    from lambdas.fleet_provisioning_hook.data import DynamoAllowList

    original = DynamoAllowList.read

    def read_then_the_other_request_wins(self: DynamoAllowList, serial: str, cert: str,
                                         *claim: str) -> Any:
        records = original(self, serial, cert, *claim)
        tables.Table(PROVISIONING_TABLE).put_item(Item={
            **allow_list.certificate_key(cert), "kind": allow_list.CERTIFICATE_KIND,
            "serialNumber": "SN-0002"})
        return records

    monkeypatch.setattr(DynamoAllowList, "read", read_then_the_other_request_wins)
    assert hook_app.handler(request(), context())["allowProvisioning"] is False
    assert entry(tables)["state"] == State.ALLOWED


# --- device parameters never name AWS's own values; one serial rule (class 3) -----------

@pytest.mark.parametrize("name", ["AWS::IoT::Certificate::Id", "aws::iot::certificate::id",
                                  "AWS::IoT::Thing::ThingName", "AWS::Anything"])
def test_any_aws_parameter_is_refused(tables: Any, name: str) -> None:
    allow(tables)
    event = request()
    event["parameters"] = {"SerialNumber": SERIAL, name: OTHER_CERT_ID}
    assert hook_app.handler(event, context())["allowProvisioning"] is False
    assert entry(tables)["state"] == State.ALLOWED


@pytest.mark.parametrize("serial", [f"{PREFIX}SN-1", "x" * (allow_list.SERIAL_MAX_LENGTH + 1)])
def test_a_serial_outside_the_shared_rule_is_refused(tables: Any, serial: str) -> None:
    """A serial beginning with the claim prefix would be a client id every claim holder may
    use; one longer than 96 leaves no room for the prefix in a 128-character client id."""
    tables.Table(PROVISIONING_TABLE).put_item(Item={
        "deviceUid": f"fleet#{serial}", "kind": allow_list.KIND, "serialNumber": serial,
        "enabled": True, "state": State.ALLOWED,
        "allowedAt": allow_list.timestamp(dt.datetime.now(dt.timezone.utc))})
    assert hook_app.handler(request(serial), context())["allowProvisioning"] is False
    assert allow_list.serial_problem(serial, PREFIX) is not None


def test_the_longest_serial_fits_the_client_id_with_the_longest_prefix() -> None:
    serial = "s" * allow_list.SERIAL_MAX_LENGTH
    prefix = "p" * allow_list.CLAIM_PREFIX_MAX_LENGTH
    assert allow_list.serial_problem(serial, prefix) is None
    assert allow_list.claim_prefix_problem(prefix) is None
    assert len(prefix + serial) <= 128
    assert allow_list.claim_prefix_problem(prefix + "p") is not None


@pytest.mark.parametrize("code", ["ThrottlingException", "AccessDeniedException"])
def test_a_registry_that_cannot_answer_keeps_the_stale_claim(
        tables: Any, monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """The takeover of a stale claim needs the registry's word; without it the hook denies
    (in budget) and the entry stays the first certificate's."""
    from botocore.exceptions import ClientError

    class Unanswering:
        calls = 0

        def list_thing_principals(self, **_: Any) -> Any:
            Unanswering.calls += 1
            raise ClientError({"Error": {"Code": code, "Message": "no"}}, "ListThingPrincipals")

        describe_certificate = list_thing_principals

    monkeypatch.setattr(hook_app, "_iot", Unanswering())
    stale = dt.datetime.now(dt.timezone.utc) - allow_list.CLAIM_STALE_AFTER - dt.timedelta(
        seconds=1)
    allow(tables, state=State.CLAIMED, **claim_attributes(claimed_at=stale))
    assert hook_app.handler(request(), context())["allowProvisioning"] is False
    assert Unanswering.calls >= 1
    assert entry(tables)["claimCertificateId"] == OTHER_CERT_ID


# --- one claim certificate, one serial ----------------------------------------------------

CLAIM_ID = "c" * 64  # the claim certificate every request() presents
THIRD_CERT = issue("third device")


def reason_of(caplog: pytest.LogCaptureFixture) -> str:
    """The last decision's reason, as the hook logged it."""
    decisions = [r for r in caplog.records if r.getMessage() == "pre-provisioning decision"]
    return str(getattr(decisions[-1], "reason"))


def test_one_claim_certificate_provisions_one_serial_only(
        tables: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A claim is for one device: a claim holder that made a device for SN-0001 and asks,
    with fresh certificates (CreateKeysAndCertificate again), for every other allow-listed
    serial within the claim's life gets none of them."""
    for serial in (SERIAL, "SN-0002", "SN-0003"):
        allow(tables, serial)
    assert hook_app.handler(request(), context())["allowProvisioning"] is True
    for serial, cert in (("SN-0002", OTHER_CERT), ("SN-0003", THIRD_CERT)):
        answer = hook_app.handler(request(serial, certificateId=certificate_id(cert.pem),
                                          certificatePem=cert.pem), context())
        assert answer == {"allowProvisioning": False, "parameterOverrides": {}}
        assert reason_of(caplog) == "CLAIM_HOLDS_ANOTHER_SERIAL"
        assert entry(tables, serial)["state"] == State.ALLOWED  # nothing claimed
    held = dict(tables.Table(PROVISIONING_TABLE).get_item(
        Key=allow_list.claim_key(CLAIM_ID), ConsistentRead=True)["Item"])
    assert allow_list.holding_problems(held) == []  # the hook's write keeps the contract
    assert (held["kind"], held["serialNumber"]) == (allow_list.CLAIM_KIND, SERIAL)
    # the same claim retrying its own serial (a lost answer) is still allowed
    assert hook_app.handler(request(), context())["allowProvisioning"] is True


def test_a_claim_certificate_id_that_is_no_certificate_id_is_refused(tables: Any) -> None:
    """It keys the claim's record: only what AWS IoT sends (a certificate id) is accepted."""
    allow(tables)
    assert hook_app.handler(request(claimCertificateId="fleet#SN-0001"), context())[
        "allowProvisioning"] is False
    assert entry(tables)["state"] == State.ALLOWED


def test_a_second_serial_taken_by_the_claim_between_read_and_write_loses(
        tables: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Two RegisterThing requests over one claim racing for two serials: the claim's record
    is written in the claim's transaction, only if absent or for the same serial."""
    allow(tables)
    from lambdas.fleet_provisioning_hook.data import DynamoAllowList

    original = DynamoAllowList.read

    def read_then_the_other_request_wins(self: DynamoAllowList, *args: Any) -> Any:
        records = original(self, *args)
        tables.Table(PROVISIONING_TABLE).put_item(Item={
            **allow_list.claim_key(CLAIM_ID), "kind": allow_list.CLAIM_KIND,
            "serialNumber": "SN-0002",
            "claimedAt": allow_list.timestamp(dt.datetime.now(dt.timezone.utc))})
        return records

    monkeypatch.setattr(DynamoAllowList, "read", read_then_the_other_request_wins)
    assert hook_app.handler(request(), context())["allowProvisioning"] is False
    assert reason_of(caplog) == "CLAIM_RACE"
    assert entry(tables)["state"] == State.ALLOWED


def test_a_claim_record_that_breaks_its_contract_denies(
        tables: Any, caplog: pytest.LogCaptureFixture) -> None:
    allow(tables)
    tables.Table(PROVISIONING_TABLE).put_item(Item={
        **allow_list.claim_key(CLAIM_ID), "kind": allow_list.CLAIM_KIND, "serialNumber": SERIAL})
    assert hook_app.handler(request(), context())["allowProvisioning"] is False
    assert reason_of(caplog) == "INVALID_ENTRY"
    [decision] = [r for r in caplog.records if r.getMessage() == "pre-provisioning decision"]
    assert getattr(decision, "problems") == [
        f"fleet#claim#{CLAIM_ID}: claimedAt: None is not a timestamp() "
        "(YYYY-MM-DDTHH:MM:SS.mmm+00:00)"]
    assert entry(tables)["state"] == State.ALLOWED


# --- a claim made in another region is never passed on here ------------------------------

def test_a_stale_claim_made_in_another_region_is_not_passed_on(
        tables: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The claim was made in us-west-2 (replicated here); that device may have provisioned
    there while its recorder lags. This region's registry cannot tell, so only the hook in
    us-west-2 may pass the serial on: denied here, the registry not even asked."""
    class NoRegistry:
        def list_thing_principals(self, **_: Any) -> Any:
            raise AssertionError("asked this region's registry about another region's claim")

        describe_certificate = list_thing_principals

    monkeypatch.setattr(hook_app, "_iot", NoRegistry())
    stale = dt.datetime.now(dt.timezone.utc) - allow_list.CLAIM_STALE_AFTER - dt.timedelta(
        seconds=1)
    allow(tables, state=State.CLAIMED,
          **{**claim_attributes(claimed_at=stale), "claimRegion": "us-west-2"})
    assert hook_app.handler(request(), context())["allowProvisioning"] is False
    assert reason_of(caplog) == "CLAIMED_IN_ANOTHER_REGION"
    [decision] = [r for r in caplog.records if r.getMessage() == "pre-provisioning decision"]
    assert any("us-west-2" in p for p in getattr(decision, "problems"))
    assert entry(tables)["claimCertificateId"] == OTHER_CERT_ID
    assert entry(tables)["claimRegion"] == "us-west-2"


def test_a_claim_replicated_from_another_region_between_read_and_write_is_kept(
        tables: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stale claim read was this region's; before the write, another region's claim
    replicates over it: the takeover's condition names this region, so it fails."""
    stale = dt.datetime.now(dt.timezone.utc) - allow_list.CLAIM_STALE_AFTER - dt.timedelta(
        seconds=1)
    allow(tables, state=State.CLAIMED, **claim_attributes(claimed_at=stale))
    from lambdas.fleet_provisioning_hook.data import DynamoAllowList

    original = DynamoAllowList.read

    def read_then_another_region_claims(self: DynamoAllowList, *args: Any) -> Any:
        records = original(self, *args)
        allow(tables, state=State.CLAIMED,
              **{**claim_attributes(claimed_at=stale), "claimRegion": "us-west-2"})
        return records

    monkeypatch.setattr(DynamoAllowList, "read", read_then_another_region_claims)
    assert hook_app.handler(request(), context())["allowProvisioning"] is False
    assert entry(tables)["claimCertificateId"] == OTHER_CERT_ID
