"""The replication capability as the program declares it (offline graph under mocks) and its
settings parser: wiring, the pipe filter's semantics, bounded retries, DLQ, least privilege."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from components.asl import placeholders
from components.global_tables import INVENTORY_TTL_ATTRIBUTE
from components.replication.component import DEFINITION, pipe_filter_pattern
from components.replication.settings import (
    DEFAULT_IOT_API_QUOTAS,
    ReplicationSettings,
    parse_settings,
)
from tests.support.stacks import configured_regions
from tools.harness import RecordedResource, StackGraph, evaluate_program

PIPE = "aws:pipes/pipe:Pipe"
MACHINE = "aws:sfn/stateMachine:StateMachine"


def replication(graph: StackGraph, type_: str, region: str) -> RecordedResource:
    found = [r for r in graph.of_type(type_) if r.region == region and "replication" in r.urn]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def policy_of(graph: StackGraph, role: RecordedResource) -> dict[str, Any]:
    policies = [p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy")
                if p.inputs["role"] == role.id]
    assert len(policies) == 1
    document: dict[str, Any] = json.loads(policies[0].inputs["policy"])
    return document


def statements(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document["Statement"]}


def record(event: str, writer: str | None, *, version: str = "1") -> Any:
    image: dict[str, Any] = {"thingName": {"S": "t"}, "version": {"N": version}}
    if writer is not None:
        image["writerRegion"] = {"S": writer}
    data: dict[str, Any] = {"Keys": {"thingName": {"S": "t"}}, "OldImage": image}
    if event != "REMOVE":
        data["NewImage"] = image
    return {"eventID": "1", "eventName": event, "eventSource": "aws:dynamodb", "dynamodb": data}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_region_has_a_pipe_into_its_own_express_machine(stack: str,
                                                              request: pytest.FixtureRequest) -> None:
    graph: StackGraph = request.getfixturevalue(f"{stack}_graph")
    for region in configured_regions(stack):
        pipe = replication(graph, PIPE, region)
        machine = replication(graph, MACHINE, region)
        assert pipe.inputs["target"] == machine.outputs["arn"]
        assert machine.inputs["type"] == "EXPRESS"
        assert pipe.inputs["targetParameters"] == {
            "stepFunctionStateMachineParameters": {"invocationType": "REQUEST_RESPONSE"}}
        # the source is this region's replica stream, never another region's
        assert pipe.inputs["source"].startswith(f"arn:aws:dynamodb:{region}:")
        assert "/stream/" in pipe.inputs["source"]
        logging = machine.inputs["loggingConfiguration"]
        assert logging["level"] == "ALL" and logging["includeExecutionData"] is True
        assert machine.inputs["tracingConfiguration"] == {"enabled": True}
        assert pipe.inputs["logConfiguration"]["level"] == "ERROR"
        assert pipe.inputs["kmsKeyIdentifier"].startswith(f"arn:aws:kms:{region}:")


def test_the_pipe_retries_a_bounded_number_of_times_bisects_and_dead_letters(
        dev_graph: StackGraph) -> None:
    defaults = ReplicationSettings()
    for region in configured_regions("dev"):
        stream = replication(dev_graph, PIPE, region).inputs["sourceParameters"][
            "dynamodbStreamParameters"]
        assert stream["maximumRetryAttempts"] == defaults.maximum_retry_attempts >= 0
        assert stream["maximumRecordAgeInSeconds"] == defaults.maximum_record_age_seconds
        assert stream["onPartialBatchItemFailure"] == "AUTOMATIC_BISECT"
        assert stream["startingPosition"] == "TRIM_HORIZON"
        queue = next(q for q in dev_graph.of_type("aws:sqs/queue:Queue")
                     if q.outputs["arn"] == stream["deadLetterConfig"]["arn"])
        assert queue.region == region
        assert queue.inputs["kmsMasterKeyId"].startswith(f"arn:aws:kms:{region}:")
        assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600


@pytest.mark.parametrize("region", configured_regions("dev"))
def test_the_declared_filter_admits_only_inserts_and_updates_written_elsewhere(
        dev_graph: StackGraph, region: str) -> None:
    filters = replication(dev_graph, PIPE, region).inputs["sourceParameters"][
        "filterCriteria"]["filters"]
    assert len(filters) == 1
    pattern = EventPattern.load(filters[0]["pattern"])
    elsewhere = next(r for r in configured_regions("dev") if r != region)

    assert pattern.matches_event(record("INSERT", elsewhere))
    assert pattern.matches_event(record("MODIFY", elsewhere, version="7"))
    assert pattern.matches_event(record("MODIFY", "ap-south-1"))  # any other region
    assert not pattern.matches_event(record("INSERT", region))  # our own write
    assert not pattern.matches_event(record("MODIFY", region))
    assert not pattern.matches_event(record("REMOVE", elsewhere))  # TTL removal
    assert not pattern.matches_event(record("INSERT", None))  # breaks the contract


def test_filter_pattern_is_region_specific() -> None:
    assert pipe_filter_pattern("eu-west-1") != pipe_filter_pattern("us-west-2")
    assert json.loads(pipe_filter_pattern("eu-west-1"))["dynamodb"]["NewImage"][
        "writerRegion"] == {"S": [{"anything-but": ["eu-west-1"]}]}


@pytest.mark.parametrize("region", configured_regions("dev"))
def test_the_definition_is_this_regions(dev_graph: StackGraph, region: str) -> None:
    definition = json.loads(replication(dev_graph, MACHINE, region).inputs["definition"])
    processor = definition["States"]["ApplyRecordsInOrder"]["ItemProcessor"]["States"]
    own_writes = processor["IsNewestForThisRegion"]["Choices"][1]
    assert own_writes == {"Variable": "$.writerRegion", "StringEquals": region,
                          "Next": "WrittenHere"}
    assert processor["ReadInventory"]["Parameters"]["TableName"] == "iotmr-dev-device-inventory"
    assert processor["ReadInventory"]["Parameters"]["ConsistentRead"] is True
    arn = processor["ReadCertificate"]["Parameters"]["certificate"]["arn.$"]
    assert f"arn:aws:iot:{region}:123456789012:cert/" in arn
    ca = processor["RegisterWithOurCa"]["Parameters"]["CaCertificatePem"]
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    text = json.dumps(definition)
    others = [r for r in configured_regions("dev") if r != region]
    assert not any(other in text for other in others)  # no call to another region


def test_definition_placeholders_are_all_parameters() -> None:
    assert placeholders(DEFINITION) == {
        "region", "partition", "account_id", "inventory_table_name", "device_policy_name",
        "ca_certificate_pem", "retry_interval_seconds", "retry_max_attempts",
        "retry_backoff_rate", "ca_certificate_id", "previous_ca_certificate_pem",
        "previous_ca_certificate_id"}


def test_machine_role_is_least_privilege(dev_graph: StackGraph) -> None:
    region = "us-west-2"
    role = next(r for r in dev_graph.of_type("aws:iam/role:Role")
                if r.name == f"region-{region}-replication-machine-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    assert trust["Condition"]["ArnLike"]["aws:SourceArn"].endswith(
        f":states:{region}:123456789012:stateMachine:iotmr-dev-{region}-replication")
    granted = statements(policy_of(dev_graph, role))
    actions = {a for s in granted.values() for a in
               ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not any(a.endswith(":*") or a == "*" for a in actions)
    assert granted["ReadInventoryReplica"]["Action"] == "dynamodb:GetItem"
    assert granted["ReadInventoryReplica"]["Resource"] == \
        f"arn:aws:dynamodb:{region}:123456789012:table/iotmr-dev-device-inventory"
    for sid in ("Things", "Certificates", "CertificateToThing"):
        assert granted[sid]["Resource"].startswith(f"arn:aws:iot:{region}:123456789012:")
    # Only registration (no resource type) and log delivery / X-Ray use "*".
    starred = {sid for sid, s in granted.items() if s["Resource"] == "*"}
    assert starred == {"RegisterCertificates", "LogDelivery", "Tracing"}
    assert "dynamodb:PutItem" not in actions  # replication never writes the inventory


def test_pipe_role_is_least_privilege(dev_graph: StackGraph) -> None:
    region = "eu-west-1"
    role = next(r for r in dev_graph.of_type("aws:iam/role:Role")
                if r.name == f"region-{region}-replication-pipe-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "pipes.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    assert trust["Condition"]["ArnLike"]["aws:SourceArn"] == \
        f"arn:aws:pipes:{region}:123456789012:pipe/iotmr-dev-{region}-replication"
    granted = statements(policy_of(dev_graph, role))
    pipe = replication(dev_graph, PIPE, region)
    machine = replication(dev_graph, MACHINE, region)
    assert granted["ReadInventoryStream"]["Resource"] == pipe.inputs["source"]
    assert granted["ApplySynchronously"] == {
        "Sid": "ApplySynchronously", "Effect": "Allow", "Action": "states:StartSyncExecution",
        "Resource": machine.outputs["arn"]}
    assert granted["DeadLetter"]["Resource"] == pipe.inputs["sourceParameters"][
        "dynamodbStreamParameters"]["deadLetterConfig"]["arn"]
    assert {sid for sid, s in granted.items() if s["Resource"] == "*"} == {"ListStreams"}


def test_inventory_table_expires_tombstones_by_ttl(dev_graph: StackGraph) -> None:
    table = next(t for t in dev_graph.of_type("aws:dynamodb/table:Table")
                 if t.inputs["name"].endswith("device-inventory"))
    assert table.inputs["ttl"] == {"enabled": True, "attributeName": INVENTORY_TTL_ATTRIBUTE}
    assert table.inputs["streamViewType"] == "NEW_AND_OLD_IMAGES"


# --- settings ---------------------------------------------------------------------------

def parse(raw: Any) -> tuple[ReplicationSettings, list[str]]:
    problems: list[str] = []
    settings = parse_settings(raw, lambda field, message: problems.append(f"{field}: {message}"))
    return settings, problems


def test_no_section_gives_aws_defaults() -> None:
    settings, problems = parse(None)
    assert problems == []
    assert settings == ReplicationSettings()
    assert settings.iot_api_quotas["RegisterCertificate"] == 10
    assert settings.iot_api_quotas["AttachPolicy"] == 15
    assert settings.iot_api_quotas["CreateThing"] == 100
    assert settings.maximum_retry_attempts >= 0  # bounded (the pipe's default is infinite)


def test_section_overrides_merge_with_defaults() -> None:
    settings, problems = parse({"batchSize": 10, "retryBackoffRate": 1.5,
                                "logExecutionData": False,
                                "iotApiQuotas": {"RegisterCertificate": 50}})
    assert problems == []
    assert settings.batch_size == 10 and settings.retry_backoff_rate == 1.5
    assert settings.log_execution_data is False
    assert settings.iot_api_quotas == {**DEFAULT_IOT_API_QUOTAS, "RegisterCertificate": 50.0}


def test_every_problem_is_reported_with_its_field() -> None:
    _, problems = parse({"batchSize": 0, "maximumRetryAttempts": "5", "deadLetterRetentionDays": 30,
                         "parallelizationFactor": 2.5, "typo": 1, "logExecutionData": "no",
                         "iotApiQuotas": {"RegisterThing": 5, "CreateThing": -1}})
    assert problems == [
        "typo: is not a replication setting; use one of backfillUtilization, batchSize, "
        "deadLetterRetentionDays, iotApiQuotas, logExecutionData, maximumRecordAgeSeconds, "
        "maximumRetryAttempts, parallelizationFactor, retryBackoffRate, retryIntervalSeconds, "
        "retryMaxAttempts",
        "logExecutionData: must be true or false, got 'no'",
        "batchSize: must be between 1 and 10000, got 0",
        "maximumRetryAttempts: must be an integer, got '5'",
        "parallelizationFactor: must be an integer, got 2.5",
        "deadLetterRetentionDays: must be between 1 and 14, got 30",
        "iotApiQuotas.CreateThing: must be a positive number of requests per second (the "
        "applied value in Service Quotas), got -1",
        "iotApiQuotas.RegisterThing: is not an API the replication uses; use one of "
        + ", ".join(sorted(DEFAULT_IOT_API_QUOTAS)),
    ]


def test_retries_that_could_outlast_an_express_execution_are_refused() -> None:
    _, problems = parse({"retryIntervalSeconds": 30, "retryMaxAttempts": 10})
    assert len(problems) == 1 and problems[0].startswith("retryMaxAttempts: retries of one call")


def test_a_section_that_is_no_object_is_reported() -> None:
    settings, problems = parse([1, 2])
    assert settings == ReplicationSettings()
    assert problems and problems[0].startswith(": must be an object")


def test_stack_config_routes_the_section_to_the_capability(project_dir: Any) -> None:
    graph = evaluate_program(project_dir, "dev", config_overrides={
        "replication": {"batchSize": 7, "maximumRetryAttempts": 3}})
    stream = replication(graph, PIPE, "eu-west-1").inputs["sourceParameters"][
        "dynamodbStreamParameters"]
    assert (stream["batchSize"], stream["maximumRetryAttempts"]) == (7, 3)
