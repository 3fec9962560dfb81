"""The shared data contracts (lambdas/contracts): their rules, and every writer and declarer
held to them.

What runs the real writer where: the CVM function (test_cvm_registration, test_cvm_rotation),
the manufacturer tool (test_cvm_manufacturer), the fleet hook and recorder
(test_fleet_provisioning_hook/_recorder) and the executed JITR machine (test_jitr_execution)
parse what they stored with the contract. This module holds the contracts' own rules, the
installer tool, the declared state machines (what they write and read), the declared Lambda
environments run through each function's real configuration loader, and the metrics each
real handler prints against the alarms and dashboards that read them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import io
import json
import re
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.contracts import cvm_device, environment, inventory, metrics, things
from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.fleet_allow_list import Attr, State
from lambdas.contracts.inventory import ContractViolation, InventoryItem, Issuer, Onboarding, Status
from lambdas.contracts.certificates import certificate_id
from tests.support.certificates import issue
from tools import installer
from tools.harness import StackGraph

PROJECT_DIR = Path(__file__).resolve().parent.parent
PEM = issue("sensor-7").pem
PEM_ID = certificate_id(PEM)  # AWS IoT's id of PEM: the only id an item may pair with it
CA_ID = "c" * 64
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def own_ca_item(**changes: Any) -> InventoryItem:
    item = InventoryItem.first(
        thing_name="sensor-7", certificate_id=PEM_ID, certificate_pem=PEM,
        issuer=Issuer.OWN_CA, ca_certificate_id=CA_ID, onboarding=Onboarding.JITR,
        region="eu-west-1", not_after="2030-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:00.000Z")
    return dataclasses.replace(item, **changes) if changes else item


# --- the inventory item ------------------------------------------------------------------------

def test_an_item_survives_both_representations() -> None:
    item = own_ca_item().changed(writer_region="us-west-2", updated_at="2026-01-02T00:00:00Z",
                                 revoke=["b" * 64])
    assert InventoryItem.from_attribute_values(item.to_attribute_values()) == item
    assert InventoryItem.from_plain(item.to_plain()) == item
    assert item.to_attribute_values()["revokedCertificateIds"] == {"SS": ["b" * 64]}
    assert item.to_attribute_values()["version"] == {"N": "2"}


@pytest.mark.parametrize("change, named", [
    (lambda i: i.pop("writerRegion"), "writerRegion: missing"),
    (lambda i: i.update(color={"S": "red"}), "color: is not an attribute"),
    (lambda i: i.update(version={"N": "0"}), "version: 0 is not a whole number >= 1"),
    (lambda i: i.update(version={"S": "1"}), "version: must be of DynamoDB type N"),
    (lambda i: i.update(status={"S": "GONE"}), "status: 'GONE' is not one of"),
    (lambda i: i.pop("caCertificateId"), "caCertificateId: missing (required when issuer is OWN_CA)"),
    (lambda i: i.update(issuer={"S": "AMAZON"}), "caCertificateId: only OWN_CA items carry it"),
    (lambda i: i.update(expiresAt={"N": "1900000000"}), "expiresAt: only DELETED tombstones"),
    (lambda i: i.update(status={"S": "DELETED"}), "expiresAt: missing"),
    (lambda i: i.update(updatedAt={"S": "2026-01-01T02:00:00+02:00"}), "updatedAt: "),
    (lambda i: i.update(notAfter={"S": "next year"}), "notAfter: 'next year' is not an ISO 8601"),
    (lambda i: i.update(certificateId={"S": "A" * 64}), "certificateId: "),
    (lambda i: i.update(thingName={"S": "has space"}), "thingName: may only contain"),
    (lambda i: i.update(writerRegion={"S": "mars"}), "writerRegion: 'mars' is not an AWS region"),
    (lambda i: i.update(certificatePem={"S": "-----BEGIN CERTIFICATE-----"}),
     "certificatePem: is not a PEM certificate"),
    (lambda i: i.update(revokedCertificateIds={"SS": ["nope"]}), "revokedCertificateIds: "),
])
def test_a_broken_item_is_refused_naming_the_attribute(change: Any, named: str) -> None:
    raw = own_ca_item().to_attribute_values()
    change(raw)
    with pytest.raises(ContractViolation) as refused:
        InventoryItem.from_attribute_values(raw)
    assert any(named in problem for problem in refused.value.problems), refused.value.problems
    assert str(raw.get("thingName", {}).get("S")) in str(refused.value)  # names the item


def test_a_change_is_the_next_version_written_here() -> None:
    first = own_ca_item()
    changed = first.changed(writer_region="us-west-2", updated_at="2026-02-01T00:00:00Z",
                            status=Status.INACTIVE, revoke=["b" * 64])
    assert (changed.version, changed.writer_region, changed.origin_region) == \
        (2, "us-west-2", "eu-west-1")
    again = changed.changed(writer_region="eu-west-1", updated_at="2026-02-02T00:00:00Z",
                            revoke=["d" * 64])
    assert again.revoked_certificate_ids == {"b" * 64, "d" * 64}  # only ever grows
    # A new Amazon-issued certificate drops the old CA id; an OWN_CA one must bring its own.
    renewed = issue("sensor-7 renewed").pem
    amazon = again.changed(writer_region="eu-west-1", updated_at="2026-02-03T00:00:00Z",
                           certificate_id=certificate_id(renewed), certificate_pem=renewed,
                           issuer=Issuer.AMAZON)
    assert amazon.ca_certificate_id is None
    with pytest.raises(ContractViolation, match="caCertificateId: missing"):
        amazon.changed(writer_region="eu-west-1", updated_at="2026-02-04T00:00:00Z",
                       certificate_id="f" * 64, issuer=Issuer.OWN_CA)


def test_revoked_is_final_and_a_tombstone_expires() -> None:
    revoked = own_ca_item().changed(writer_region="eu-west-1",
                                    updated_at="2026-02-01T00:00:00Z", status=Status.REVOKED)
    for status in (Status.ACTIVE, Status.INACTIVE):
        with pytest.raises(ContractViolation, match="REVOKED is final"):
            revoked.changed(writer_region="eu-west-1", updated_at="2026-02-02T00:00:00Z",
                            status=status)
    tombstone = revoked.tombstone(writer_region="us-west-2", updated_at="2026-02-03T00:00:00Z",
                                  now_epoch=1_800_000_000)
    assert (tombstone.status, tombstone.version, tombstone.expires_at) == \
        (Status.DELETED, 3, 1_800_000_000 + inventory.TOMBSTONE_LIFETIME_SECONDS)
    revived = tombstone.changed(writer_region="eu-west-1", updated_at="2026-02-04T00:00:00Z",
                                status=Status.ACTIVE)
    assert revived.expires_at is None and revived.version == 4


def test_writes_are_conditional_on_the_version_read() -> None:
    first = own_ca_item()
    assert inventory.put_request("T", first)["ConditionExpression"] == \
        "attribute_not_exists(thingName)"
    second = first.changed(writer_region="eu-west-1", updated_at="2026-02-01T00:00:00Z")
    request = inventory.put_request("T", second, replaces=first)
    assert request["ConditionExpression"] == "#version = :read"
    assert request["ExpressionAttributeValues"] == {":read": {"N": "1"}}
    for wrong, replaces in ((second, None), (first, first),
                            (dataclasses.replace(second, version=4), second)):
        with pytest.raises(ContractViolation, match="version"):
            inventory.put_request("T", wrong, replaces=replaces)
    assert inventory.plain_put_request(second, replaces=first)["ExpressionAttributeValues"] == \
        {":read": 1}


def test_a_stale_writer_writes_nothing() -> None:
    """Two writers read version 1; the first change wins, the second is refused by DynamoDB."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        client.create_table(TableName="T", BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "thingName", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "thingName",
                                                   "AttributeType": "S"}])
        first = own_ca_item()
        client.put_item(**inventory.put_request("T", first))
        revoke = first.changed(writer_region="eu-west-1", updated_at="2026-02-01T00:00:00Z",
                               status=Status.REVOKED)
        enable = first.changed(writer_region="us-west-2", updated_at="2026-02-01T00:00:01Z",
                               status=Status.ACTIVE)
        client.put_item(**inventory.put_request("T", revoke, replaces=first))
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            client.put_item(**inventory.put_request("T", enable, replaces=first))
        stored = client.get_item(TableName="T", Key={"thingName": {"S": "sensor-7"}})["Item"]
        assert InventoryItem.from_attribute_values(stored) == revoke


def test_the_data_model_document_shows_the_contract() -> None:
    assert inventory.markdown_table() in (PROJECT_DIR / "docs" / "data-model.md").read_text()


# --- the allow-list entry ------------------------------------------------------------------------

def claimed_entry() -> dict[str, Any]:
    return {**allow_list.new_entry("SN-1", allow_list.timestamp(NOW))["Item"],
            Attr.STATE: State.CLAIMED,
            Attr.CLAIM_CERTIFICATE_ID: "a" * 64, Attr.CLAIM_CERTIFICATE_PEM: PEM,
            Attr.CLAIM_CLIENT_ID: "provision-SN-1", Attr.CLAIMED_AT: allow_list.timestamp(NOW),
            Attr.CLAIM_REGION: "eu-west-1"}


@pytest.mark.parametrize("change, named", [
    ({Attr.DEVICE_UID: "fleet#SN-2"}, "deviceUid: 'fleet#SN-2' must be 'fleet#SN-1'"),
    ({Attr.KIND: "CVM"}, "kind: must be 'FLEET_SERIAL'"),
    ({Attr.ENABLED: 1}, "enabled: must be a boolean"),
    ({Attr.STATE: "LOST"}, "state: 'LOST' is not one of"),
    ({Attr.CLAIMED_AT: "2026-03-01T12:00:00Z"}, "claimedAt: '2026-03-01T12:00:00Z' is not a timestamp()"),
    ({Attr.CLAIM_REGION: "nowhere"}, "claimRegion: 'nowhere' is not an AWS region name"),
    ({Attr.STATE: State.PROVISIONED}, "certificateId: missing (state PROVISIONED)"),
    ({"note": "x"}, "note: is not an attribute of an allow-list entry"),
    ({Attr.SERIAL_NUMBER: "a/b", Attr.DEVICE_UID: "fleet#a/b"}, "serialNumber: serial 'a/b'"),
])
def test_a_broken_allow_list_entry_is_named(change: dict[str, Any], named: str) -> None:
    assert allow_list.problems(claimed_entry()) == []
    found = allow_list.problems({**claimed_entry(), **change})
    assert any(named in problem for problem in found), found


def holding(kind: str = allow_list.CLAIM_KIND) -> dict[str, Any]:
    key = allow_list.claim_key if kind == allow_list.CLAIM_KIND else allow_list.certificate_key
    return {**key("a" * 64), Attr.KIND: kind, Attr.SERIAL_NUMBER: "SN-1",
            Attr.CLAIMED_AT: allow_list.timestamp(NOW)}


@pytest.mark.parametrize("change, named", [
    ({Attr.DEVICE_UID: "fleet#certificate#" + "a" * 64},
     "must be 'fleet#claim#<certificate id>' for kind FLEET_CLAIM"),
    ({Attr.DEVICE_UID: "fleet#claim#not-an-id"}, "deviceUid: 'fleet#claim#not-an-id'"),
    ({Attr.KIND: allow_list.KIND}, "kind: must be one of FLEET_CERTIFICATE, FLEET_CLAIM"),
    ({Attr.SERIAL_NUMBER: "a/b"}, "serialNumber: serial 'a/b'"),
    ({Attr.CLAIMED_AT: None}, "claimedAt: None is not a timestamp()"),
    ({Attr.STATE: State.CLAIMED}, "state: is not an attribute of a FLEET_CERTIFICATE or FLEET_CLAIM item"),
])
def test_a_broken_certificate_or_claim_record_is_named(change: dict[str, Any], named: str) -> None:
    """The records of the serial a certificate and a claim certificate hold (one each, by the
    hook's claim transaction) have their own contract; their keys are never an entry's."""
    for kind in (allow_list.CERTIFICATE_KIND, allow_list.CLAIM_KIND):
        assert allow_list.holding_problems(holding(kind)) == []
        assert allow_list.serial_of(holding(kind)[Attr.DEVICE_UID]) is None
    found = allow_list.holding_problems({**holding(), **change})
    assert any(named in problem for problem in found), found
    with pytest.raises(ValueError, match="is not an AWS IoT certificate id"):
        allow_list.claim_key("fleet#SN-1")


def test_a_claim_without_its_attributes_is_refused() -> None:
    entry = claimed_entry()
    del entry[Attr.CLAIM_CERTIFICATE_PEM]
    assert allow_list.problems(entry) == ["claimCertificatePem: missing (state CLAIMED)"]


def test_entry_times_order_as_strings() -> None:
    """The hook's condition compares `claimedAt` as text: one format makes it time order."""
    early = allow_list.timestamp(dt.datetime(2026, 3, 1, 9, 59, 59, 999000,
                                             tzinfo=dt.timezone.utc))
    late = allow_list.timestamp(dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone(
        dt.timedelta(hours=2))))  # 10:00 UTC, given in another zone
    assert early < late and late.endswith("+00:00")


def test_what_the_web_app_reads_names_only_attributes_of_the_entry() -> None:
    """fleet_allow_list.json (the web app's copy of nothing: it builds from the same file)
    names only attributes, states and the serial rule of this contract."""
    spec = json.loads((PROJECT_DIR / "lambdas" / "contracts" / "fleet_allow_list.json").read_text())
    named = {spec["table"]["keyAttribute"], *spec["writes"]["create"]["item"],
             spec["index"]["partitionKey"], spec["index"]["sortKey"], *spec["index"]["projected"],
             *spec["writes"]["names"].values()}
    assert named <= set(allow_list.ATTRIBUTES)
    assert set(spec["states"].values()) == set(State.ALL)
    # a serial is a thing name, short enough that <claim prefix><serial> is a client id
    assert allow_list.SERIAL_PATTERN.pattern == \
        f"[a-zA-Z0-9:_-]{{1,{allow_list.SERIAL_MAX_LENGTH}}}"
    assert things.THING_NAME_PATTERN.pattern == "[a-zA-Z0-9:_-]{1,128}"
    assert allow_list.SERIAL_MAX_LENGTH + allow_list.CLAIM_PREFIX_MAX_LENGTH <= 128
    for name in allow_list.WRITES:
        request = allow_list.update(name, "SN-1", allow_list.timestamp(NOW))
        assert set(request["ExpressionAttributeNames"].values()) <= set(allow_list.ATTRIBUTES)
    created = allow_list.new_entry("SN-1", allow_list.timestamp(NOW))["Item"]
    assert allow_list.problems(created) == []


@pytest.fixture
def provisioning_table() -> Iterator[Any]:
    with mock_aws():
        table = boto3.resource("dynamodb", region_name="eu-west-1").create_table(
            TableName="provisioning", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": allow_list.TABLE_KEY, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": allow_list.TABLE_KEY, "AttributeType": "S"}])
        yield table


def test_the_installer_tool_writes_entries_that_keep_the_contract(provisioning_table: Any) -> None:
    installer.allow_serial(provisioning_table, "SN-9", now=NOW)
    installer.disable_serial(provisioning_table, "SN-9")
    installer.allow_serial(provisioning_table, "SN-9", now=NOW + dt.timedelta(hours=1))
    key = allow_list.key("SN-9")
    entry = provisioning_table.get_item(Key=key)["Item"]
    assert allow_list.problems(entry) == []
    assert entry[Attr.ENABLED] is True and entry[Attr.STATE] == State.ALLOWED
    # A settled entry re-opened with --reset is an ALLOWED entry again, still in contract.
    provisioning_table.update_item(
        Key=key, UpdateExpression="SET #s = :p, #c = :c, #t = :t, #cc = :c, #pem = :pem, "
        "#client = :client, #at = :t, #r = :r",
        ExpressionAttributeNames={"#s": Attr.STATE, "#c": Attr.CERTIFICATE_ID,
                                  "#t": Attr.SETTLED_AT, "#cc": Attr.CLAIM_CERTIFICATE_ID,
                                  "#pem": Attr.CLAIM_CERTIFICATE_PEM,
                                  "#client": Attr.CLAIM_CLIENT_ID, "#at": Attr.CLAIMED_AT,
                                  "#r": Attr.CLAIM_REGION},
        ExpressionAttributeValues={":p": State.PROVISIONED, ":c": "a" * 64, ":pem": PEM,
                                   ":t": allow_list.timestamp(NOW), ":client": "provision-SN-9",
                                   ":r": "eu-west-1"})
    installer.allow_serial(provisioning_table, "SN-9", now=NOW, reset=True)
    entry = provisioning_table.get_item(Key=key)["Item"]
    assert entry[Attr.STATE] == State.ALLOWED and allow_list.problems(entry) == []


def test_the_installer_tool_refuses_a_serial_that_can_never_provision(
        provisioning_table: Any) -> None:
    with pytest.raises(ValueError, match="is not valid: use 1 to 96"):
        installer.allow_serial(provisioning_table, "../../x", now=NOW)
    with pytest.raises(ValueError, match="is not valid"):
        installer.allow_serial(provisioning_table, "x" * 97, now=NOW)
    with pytest.raises(ValueError, match="begins with the claim client-id prefix"):
        installer.allow_serial(provisioning_table, "provision-SN-1", now=NOW)
    with pytest.raises(ValueError, match="begins with the claim client-id prefix"):
        installer.allow_serial(provisioning_table, "claim_SN-1", now=NOW, claim_prefix="claim_")
    assert provisioning_table.scan()["Items"] == []
    installer.allow_serial(provisioning_table, "provision-SN-1", now=NOW, claim_prefix="claim_")
    assert len(provisioning_table.scan()["Items"]) == 1


@pytest.mark.parametrize("serial", ["../../x", "..", "a/b", "/tmp/x", "x" * 97])
def test_the_installer_never_writes_a_claim_outside_its_out_dir(
        tmp_path: Path, serial: str) -> None:
    out_dir = tmp_path / "handover"
    claim = installer.ProvisioningClaim(
        certificate_id="a" * 64, certificate_pem="CERT", private_key="KEY",
        expiration=NOW)
    with pytest.raises(ValueError):
        installer.write_claim(claim, out_dir, serial)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    certificate, key = installer.write_claim(claim, out_dir, "SN-1")
    assert {certificate.parent, key.parent} == {out_dir.resolve()}
    assert key.read_text() == "KEY"


# --- function environments ---------------------------------------------------------------------

def test_an_environment_names_what_is_missing() -> None:
    declared = environment.CvmRegistrationEnvironment[str](
        provisioning_table_name="p", inventory_table_name="i", salts_secret_arn="s",
        device_policy_name="d", device_endpoint="iot.example.com", thing_name_prefix="",
        legacy_batches="", claim_stale_seconds="60").variables()
    assert "ROOT_CA_BUNDLE_PEM" not in declared  # optional and absent
    assert environment.CvmRegistrationEnvironment.from_environ(declared).thing_name_prefix == ""
    for name, value in (("SALTS_SECRET_ARN", None), ("DEVICE_ENDPOINT", ""),
                        ("LEGACY_BATCHES", None)):
        broken = {k: v for k, v in declared.items() if k != name}
        if value is not None:
            broken[name] = value
        with pytest.raises(environment.EnvironmentProblem, match=name):
            environment.CvmRegistrationEnvironment.from_environ(broken)
    bad = environment.CvmRegistrationEnvironment.from_environ(
        {**declared, "CLAIM_STALE_SECONDS": "soon"})
    with pytest.raises(environment.EnvironmentProblem, match="CLAIM_STALE_SECONDS='soon'"):
        bad.integer("claim_stale_seconds")


def declared_functions(graph: StackGraph) -> list[tuple[str, str, dict[str, str]]]:
    """(package, region, declared environment) of every function in the graph."""
    found = []
    for function in graph.of_type("aws:lambda/function:Function"):
        package = str(function.inputs["handler"]).split(".")[0]
        variables = dict((function.inputs.get("environment") or {}).get("variables") or {})
        found.append((package, str(function.region), {k: str(v) for k, v in variables.items()}))
    return found


def test_every_declared_function_has_an_environment_model(dev_graph: StackGraph) -> None:
    packages = {package for package, _, _ in declared_functions(dev_graph)}
    assert packages == set(environment.BY_PACKAGE)
    on_disk = {p.name for p in (PROJECT_DIR / "lambdas").iterdir() if (p / "app.py").is_file()}
    assert packages == on_disk


def test_each_function_starts_with_exactly_what_its_component_declares(
        dev_graph: StackGraph) -> None:
    """The declared environment, run through the function's own configuration loader: it
    must start with it, and with any one declared variable taken away it must not (every
    declared variable is one it reads, none it reads is left undeclared)."""
    for package, region, declared in declared_functions(dev_graph):
        model = environment.BY_PACKAGE[package]
        assert model.from_environ(declared).variables() == declared, package
        loader = importlib.import_module(f"lambdas.{package}.config").Config
        runtime = {"AWS_REGION": region}
        assert loader.from_environment({**declared, **runtime}) is not None
        required = [f for f in dataclasses.fields(model) if f.default is not None
                    and f.name not in model.MAY_BE_EMPTY]
        for field in required:
            name = model.variable_name(field.name)
            without = {k: v for k, v in declared.items() if k != name}
            with pytest.raises(Exception, match=name):
                loader.from_environment({**without, **runtime})


# --- metrics -------------------------------------------------------------------------------------

SERVICES = {service.namespace: service for service in metrics.SERVICES}


def test_alarms_and_dashboards_read_only_published_metrics(dev_graph: StackGraph) -> None:
    read: list[tuple[str, str]] = []
    for alarm in dev_graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        queries = [q.get("metric") or {} for q in alarm.inputs.get("metricQueries") or []]
        for metric in [alarm.inputs, *queries]:
            if metric.get("namespace") and metric.get("metricName"):
                read.append((str(metric["namespace"]), str(metric["metricName"])))
    for dashboard in dev_graph.of_type("aws:cloudwatch/dashboard:Dashboard"):
        for widget in json.loads(dashboard.inputs["dashboardBody"])["widgets"]:
            read += [(m[0], m[1]) for m in widget["properties"].get("metrics", [])
                     if isinstance(m, list) and len(m) > 1 and isinstance(m[0], str)]
    ours = [(namespace, name) for namespace, name in read if namespace.startswith("IotMultiRegion/")]
    assert ours  # the CVM's KPIs at least
    # Published: what the functions print (the contract), and what the stack's own log metric
    # filters derive from logs (components/monitoring: refusals by reason, hook decisions).
    published = {(s.namespace, name) for s in metrics.SERVICES for name in s.metrics}
    for metric_filter in dev_graph.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter"):
        transformation = metric_filter.inputs["metricTransformation"]
        published.add((str(transformation["namespace"]), str(transformation["name"])))
    unknown = [(namespace, name) for namespace, name in ours if (namespace, name) not in published]
    assert unknown == []


def emitted(output: str) -> set[tuple[str, str, str]]:
    """(namespace, service, metric) of every EMF document a handler printed."""
    found = set()
    for line in output.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            found |= {(directive["Namespace"], document.get("service", ""), m["Name"])
                      for m in directive["Metrics"]}
    return found


def run_printing(handler: Any, event: Any, context: Any) -> tuple[Any, set[tuple[str, str, str]]]:
    out = io.StringIO()
    with redirect_stdout(out):
        answer = handler(event, context)
    return answer, emitted(out.getvalue())


def assert_published(found: set[tuple[str, str, str]], service: metrics.Service) -> None:
    assert found, "the handler published nothing"
    assert {(n, s) for n, s, _ in found} == {(service.namespace, service.name)}
    assert {name for _, _, name in found} <= service.metrics


def test_the_real_handlers_publish_only_their_contract_metrics(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each handler on a path that needs no AWS: the names it prints must be its contract's."""
    from lambdas.cvm_registration import app as cvm_app
    from lambdas.fleet_provisioning_hook import app as hook_app
    from lambdas.jitr_certificate_check import app as check_app
    from tools.local.emulation.lambdas import LambdaContext

    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    context = LambdaContext("f", "arn:aws:lambda:eu-west-1:123456789012:function:f",
                            deadline=time.monotonic() + 30)
    ca = issue("Contract CA", ca=True)
    monkeypatch.setenv("CA_CERTIFICATE_PEM", ca.pem)
    for event in ({"certificatePem": issue("sensor-8", ca).pem}, {"wrong": 1},
                  {"certificatePem": issue("sensor-9").pem}):
        _, found = run_printing(check_app.handler, event, context)
        assert_published(found, metrics.JITR_CHECK)

    answer, found = run_printing(hook_app.handler, {"unexpected": True}, context)
    assert answer["allowProvisioning"] is False
    assert_published(found, metrics.FLEET_HOOK)

    for path in ("/registration", "/rotation"):
        event = {"httpMethod": "POST", "path": path, "resource": path, "body": "{not json",
                 "headers": {"content-type": "application/json"}, "isBase64Encoded": False,
                 "requestContext": {"requestId": "r", "stage": "v1", "path": path}}
        answer, found = run_printing(cvm_app.handler, event, context)
        assert answer["statusCode"] == 400
        assert_published(found, metrics.CVM)


def test_computed_metric_names_are_refused_unless_published() -> None:
    assert metrics.Cvm.outcome(metrics.Cvm.ROTATION, 409) == "RotationConflict"
    assert metrics.Cvm.outcome(metrics.Cvm.REGISTRATION, 418) == "RegistrationErrored"
    assert metrics.FleetRecorder.outcome("REVIVE") == "DeviceRevive"
    with pytest.raises(ValueError, match="publishes no metric 'VANISHED'"):
        metrics.FleetRecorder.outcome("VANISHED")


# --- the declared state machines -----------------------------------------------------------------

ITEM_PATH = re.compile(r"\$\.(?:inventory\.Item|raw)\.([A-Za-z]+)\.([A-Z]+)")


def machines(graph: StackGraph) -> dict[str, dict[str, Any]]:
    found = {}
    for machine in graph.of_type("aws:sfn/stateMachine:StateMachine"):
        definition = machine.inputs["definition"]
        if isinstance(definition, dict):
            definition = definition.get("value")
        found[str(machine.inputs["name"])] = json.loads(str(definition))
    return found


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def states(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "Type" in node and "Resource" in node:
            yield node
        for value in node.values():
            yield from states(value)
    elif isinstance(node, list):
        for value in node:
            yield from states(value)


def test_every_inventory_attribute_a_machine_reads_is_in_the_contract(
        dev_graph: StackGraph) -> None:
    read: dict[str, set[tuple[str, str]]] = {}
    for name, definition in machines(dev_graph).items():
        read[name] = {m.groups() for text in strings(definition) for m in ITEM_PATH.finditer(text)}
    kinds = {name.rsplit("-", 1)[-1] for name, paths in read.items() if paths}
    assert kinds == {"jitr", "replication"}  # both machines read the item
    wrong = {(name, attribute, kind) for name, paths in read.items() for attribute, kind in paths
             if inventory.ATTRIBUTE_TYPES.get(attribute) != kind}
    assert wrong == set()


def assert_a_contract_change(parameters: dict[str, Any]) -> None:
    """An UpdateItem is a contract change: it sets only contract attributes with their types,
    writes this region as the writer, counts the version up, and lands only over the version
    it read (docs/data-model.md)."""
    names = parameters.get("ExpressionAttributeNames", {})
    values = parameters["ExpressionAttributeValues"]
    expression = parameters["UpdateExpression"]
    assigned: dict[str, str] = {}
    for clause in re.split(r"\b(?=SET |ADD |REMOVE |DELETE )", expression):
        action, _, body = clause.strip().partition(" ")
        for part in filter(None, (p.strip() for p in body.split(","))):
            target, _, value = part.replace("=", " ").partition(" ")
            attribute = names.get(target, target)
            assigned[attribute] = value.split()[0] if action == "SET" else value.strip()
    for attribute, placeholder in assigned.items():
        assert attribute in inventory.ATTRIBUTE_TYPES, attribute
        if placeholder in values:
            [(kind, _)] = values[placeholder].items()
            assert kind.removesuffix(".$") == inventory.ATTRIBUTE_TYPES[attribute], attribute
    assert {"writerRegion", "updatedAt", "version"} <= set(assigned)
    assert re.search(r"#version = #version \+ :one\b", expression) and values[":one"] == {"N": "1"}
    assert re.search(r"#version = :expected\b", parameters["ConditionExpression"])
    assert names.get("#version") == "version"


def test_what_the_jitr_machine_writes_is_a_contract_first_write(dev_graph: StackGraph) -> None:
    """Values the machine fills at run time (JSONPath) stand in as valid samples; the names,
    types and literal values are the machine's own. The executed machine is checked in
    test_jitr_execution (happy path)."""
    samples = {"thingName": "sensor-7", "certificateId": PEM_ID, "certificatePem": PEM,
               "caCertificateId": CA_ID, "notAfter": "2030-01-01T00:00:00Z",
               "updatedAt": "2026-01-01T00:00:00.000Z"}
    writes = [(name, state) for name, definition in machines(dev_graph).items()
              for state in states(definition)
              if state["Resource"].startswith("arn:aws:states:::dynamodb:")
              and state["Resource"].rsplit(":", 1)[-1] != "getItem"]
    assert writes and {name.rsplit("-", 1)[-1] for name, _ in writes} == {"jitr"}
    changes = [state for _, state in writes if state["Resource"].endswith(":updateItem")]
    for state in changes:  # a CA rotation's move: a change over the version read
        assert_a_contract_change(state["Parameters"])
    writes = [(name, state) for name, state in writes if state not in changes]
    assert writes
    for _, state in writes:
        assert state["Resource"] == "arn:aws:states:::dynamodb:putItem"
        assert state["Parameters"]["ConditionExpression"] == "attribute_not_exists(thingName)"
        item = {}
        for attribute, typed in state["Parameters"]["Item"].items():
            [(kind, value)] = typed.items()
            kind = kind.removesuffix(".$")
            item[attribute] = {kind: samples[attribute] if typed.get(f"{kind}.$") else value}
        parsed = InventoryItem.from_attribute_values(item)
        assert (parsed.version, parsed.origin_region) == (1, parsed.writer_region)


def test_the_installer_cli_refuses_a_bad_serial_before_signing_in(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`claim --serial ../../x`: exit 2 with the rule, nothing written, no AWS call made."""
    code = installer.main(["claim", "--region", "eu-west-1", "--username", "alice",
                           "--user-pool-id", "p", "--client-id", "c", "--identity-pool-id", "i",
                           "--template-name", "t", "--serial", "../../x",
                           "--out-dir", str(tmp_path / "out")])
    assert code == 2
    assert "is not valid: use 1 to 96" in capsys.readouterr().err
    assert list(tmp_path.rglob("*")) == []


def test_the_installer_refuses_an_earlier_hand_over_before_claiming(tmp_path: Path) -> None:
    """`claim --serial SN-1` with SN-1's hand-over already in --out-dir: it signed in and
    created the claim, then failed with a bare `[Errno 17] File exists`."""
    class NoSignIn:
        def password(self) -> str:
            raise AssertionError("signed in, so a claim would be created")

    out_dir = tmp_path / "handover"
    out_dir.mkdir()
    earlier = out_dir / "SN-1.claim.pem.key"
    earlier.write_text("KEY")
    args = installer.parser().parse_args([
        "claim", "--region", "eu-west-1", "--username", "alice", "--user-pool-id", "p",
        "--client-id", "c", "--identity-pool-id", "i", "--template-name", "t", "--serial", "SN-1",
        "--out-dir", str(out_dir)])
    with pytest.raises(FileExistsError) as refused:
        installer.run_claim(args, idp=None, identity=None, iot_with=lambda credentials: None,
                            prompter=NoSignIn(), out=io.StringIO(), now=lambda: NOW)
    assert str(refused.value) == (f"{earlier.resolve()} exists (an earlier hand-over of --serial SN-1): "
                                  "move it away or pass another --out-dir; nothing was claimed")
    assert earlier.read_text() == "KEY" and [p.name for p in out_dir.iterdir()] == [earlier.name]


def test_an_item_naming_another_certificate_than_its_pem_is_refused() -> None:
    """certificateId is AWS IoT's id of certificatePem (SHA-256 of the DER) or the item is
    refused: by every writer (put_request builds from the item) and every reader
    (from_plain / from_attribute_values), so no component acts on an id the PEM does not
    name."""
    other = issue("another device").pem
    for forged_id in (certificate_id(other), "a" * 64, PEM_ID.upper()):
        with pytest.raises(ContractViolation, match="certificateId: "):
            own_ca_item(certificate_id=forged_id)
    stored = own_ca_item().to_plain()
    with pytest.raises(ContractViolation, match="certificateId"):
        InventoryItem.from_plain({**stored, "certificatePem": other})
    with pytest.raises(ContractViolation, match="certificateId"):
        InventoryItem.from_attribute_values(
            {**own_ca_item().to_attribute_values(), "certificateId": {"S": certificate_id(other)}})
    # a writer that swaps only the certificate id of a change is refused before any write
    with pytest.raises(ContractViolation, match="certificateId"):
        own_ca_item().changed(writer_region="eu-west-1", updated_at="2026-02-03T00:00:00Z",
                              certificate_id=certificate_id(other))


def test_the_certificate_id_is_derived_as_aws_iot_names_it() -> None:
    """One derivation for the contract, the edge's CA ids and the local emulation."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from components.edge import cas
    from lambdas.contracts.certificates import CertificatePemError, id_mismatch
    from tools.local.emulation import iot_data

    der = x509.load_pem_x509_certificate(PEM.encode()).public_bytes(Encoding.DER)
    assert certificate_id(PEM) == hashlib.sha256(der).hexdigest() == PEM_ID
    assert cas.certificate_id(PEM) == iot_data.certificate_id(PEM) == PEM_ID
    assert id_mismatch(PEM_ID, PEM) is None
    with pytest.raises(CertificatePemError):
        certificate_id("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    assert "not a PEM" in (id_mismatch(PEM_ID, "CERT") or "")


def imported_record() -> dict[str, Any]:
    return cvm_device.new_record("sensor-1", "B1", 1, "2026-03-01T12:00:00.000+00:00", "AA:BB")


@pytest.mark.parametrize("change, named", [
    ({cvm_device.Attr.DEVICE_UID: {"S": "fleet#SN-1"}}, "deviceUid: may only contain"),
    ({cvm_device.Attr.ENABLED: {"S": "1"}}, "enabled: must be of type BOOL"),
    ({cvm_device.Attr.STATE: {"S": "LOST"}}, "registrationState: 'LOST' is not one of"),
    ({cvm_device.Attr.STATE: {"S": "CLAIMED"}}, "claimId: missing (state CLAIMED)"),
    ({cvm_device.Attr.STATE: {"S": "REGISTERED"}}, "certificateId: missing (state REGISTERED)"),
    ({cvm_device.Attr.STATE: {"S": "REVOKED"}}, "enabled: a REVOKED record is disabled"),
    ({cvm_device.Attr.SALT_VERSION: {"N": "x"}}, "saltVersion: 'x' is not a whole number"),
    ({cvm_device.Attr.BATCH: {"S": "a b"}}, "batch: batch 'a b' must be"),
    ({cvm_device.Attr.CLAIM_REGION: {"S": "nowhere"}}, "claimRegion: 'nowhere' is not an AWS region name"),
    ({cvm_device.Attr.DEVICE_UID_2: {"S": "AA:BB\n"}}, "deviceUid2: device_uid_2 'AA:BB\\n' must be"),
    ({"kind": {"S": "FLEET_SERIAL"}}, "kind: is not an attribute of a device record"),
])
def test_a_broken_device_record_is_named(change: dict[str, Any], named: str) -> None:
    assert cvm_device.problems(imported_record()) == []
    found = cvm_device.problems({**imported_record(), **change})
    assert any(named in problem for problem in found), found


def test_no_device_record_key_is_an_allow_list_key() -> None:
    """One table, two kinds of item: a key that passes the uid rule never names an entry."""
    with pytest.raises(cvm_device.RecordError, match="may only contain"):
        cvm_device.key(allow_list.entry_key("SN-1"))
    with pytest.raises(cvm_device.RecordError, match="may only contain"):
        cvm_device.new_record(allow_list.entry_key("SN-1"), "B1", 1, "now")


@pytest.mark.parametrize("uid2", ["AA:BB\n", "AA:BB\nCC", "", "AA BB", "A" * 129])
def test_a_second_identifier_is_all_of_its_rule(uid2: str) -> None:
    """The whole value, not a prefix of it: a `$` pattern under re.match also accepts a value
    ending in a newline, which then becomes a record no device's request ever matches."""
    assert cvm_device.uid2_problem("AA:BB") is None
    assert cvm_device.uid2_problem(uid2) is not None
    with pytest.raises(cvm_device.RecordError):
        cvm_device.new_record("sensor-1", "B1", 1, "2026-03-01T12:00:00.000+00:00", uid2)
