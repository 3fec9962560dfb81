"""JITR wiring in every region of the real stacks (harness mocks), IAM parsed and asserted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.jitr.component import SFN_LOG_DELIVERY_ACTIONS, XRAY_ACTIONS, topic_rule_sql
from components.asl import DefinitionError, placeholders, render
from components.jitr.component import DEFINITION
from tests.support.stacks import configured_regions
from tools.harness import ACCOUNT_ID, COMPUTED_OUTPUTS, RecordedResource, StackGraph


def in_region(graph: StackGraph, type_: str, region: str, suffix: str) -> RecordedResource:
    """The one resource of `type_` that region's RegionalStack created with this name suffix."""
    found = [r for r in graph.of_type(type_)
             if r.name.startswith(f"region-{region}-") and r.name.endswith(suffix)]
    assert len(found) == 1, (type_, region, suffix, [r.name for r in found])
    return found[0]


def arn_of(resource: RecordedResource) -> str:
    return str(COMPUTED_OUTPUTS[resource.type](resource)["arn"])


def statements(resource: RecordedResource, key: str = "policy") -> list[dict[str, Any]]:
    return list(json.loads(resource.inputs[key])["Statement"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.fixture(params=["dev", "prod"])
def stack(request: pytest.FixtureRequest) -> tuple[StackGraph, list[str]]:
    return request.getfixturevalue(f"{request.param}_graph"), configured_regions(request.param)


def test_every_region_has_its_own_pipeline(stack: tuple[StackGraph, list[str]]) -> None:
    graph, regions = stack
    for type_ in ("aws:iot/topicRule:TopicRule", "aws:sfn/stateMachine:StateMachine",
                  "aws:lambda/function:Function", "aws:sqs/queue:Queue"):
        jitr = [r for r in graph.of_type(type_) if "-jitr" in r.name]
        assert sorted(str(r.region) for r in jitr) == sorted(regions), type_


def test_rule_takes_only_this_regions_ca_events_to_this_regions_machine(
        stack: tuple[StackGraph, list[str]]) -> None:
    graph, regions = stack
    for region in regions:
        ca = in_region(graph, "aws:iot/caCertificate:CaCertificate", region, "-ca")
        ca_id = ca.id  # the id the harness recorded for the registration
        rule = in_region(graph, "aws:iot/topicRule:TopicRule", region, "-jitr-rule")
        machine = in_region(graph, "aws:sfn/stateMachine:StateMachine", region, "-jitr-machine")
        queue = in_region(graph, "aws:sqs/queue:Queue", region, "-jitr-dlq")
        role = in_region(graph, "aws:iam/role:Role", region, "-jitr-rule-role")
        assert rule.inputs["sql"] == topic_rule_sql(ca_id)
        assert rule.inputs["sql"] == f"SELECT * FROM '$aws/events/certificates/registered/{ca_id}'"
        assert rule.inputs["sqlVersion"] == "2016-03-23" and rule.inputs["enabled"] is True
        [action] = rule.inputs["stepFunctions"]
        assert action["stateMachineName"] == machine.inputs["name"]
        assert action["roleArn"] == arn_of(role) and action["executionNamePrefix"]
        assert rule.inputs["errorAction"]["sqs"]["queueUrl"].endswith("/" + queue.inputs["name"])
        assert f"sqs.{region}." in rule.inputs["errorAction"]["sqs"]["queueUrl"]


def test_machine_uses_this_regions_replica_policy_and_function(
        stack: tuple[StackGraph, list[str]]) -> None:
    graph, regions = stack
    for region in regions:
        machine = in_region(graph, "aws:sfn/stateMachine:StateMachine", region, "-jitr-machine")
        function = in_region(graph, "aws:lambda/function:Function", region, "-jitr-check")
        policy = in_region(graph, "aws:iot/policy:Policy", region, "-device-policy")
        logs = in_region(graph, "aws:cloudwatch/logGroup:LogGroup", region, "-jitr-machine-logs")
        inventory = [t for t in graph.of_type("aws:dynamodb/table:Table")
                     if t.name.endswith("device-inventory")][0]
        states = json.loads(machine.inputs["definition"])["States"]
        dynamo = [s for s in states.values() if s.get("Resource", "").startswith(
            "arn:aws:states:::dynamodb:")]
        assert dynamo and all(s["Parameters"]["TableName"] == inventory.inputs["name"]
                              for s in dynamo)
        assert states["CheckCertificate"]["Parameters"]["FunctionName"] == arn_of(function)
        assert f":lambda:{region}:" in arn_of(function)
        assert states["AttachDevicePolicy"]["Parameters"]["PolicyName"] == policy.inputs["name"]
        item = states["RecordDevice"]["Parameters"]["Item"]
        assert item["originRegion"] == item["writerRegion"] == {"S": region}
        assert item["issuer"] == {"S": "OWN_CA"}
        assert item["caCertificateId"] == {"S.$": "$.certificate.CaCertificateId"}
        # The machine knows this region's CA and compares the described certificate with it.
        ca = in_region(graph, "aws:iot/caCertificate:CaCertificate", region, "-ca")
        [our_ca] = states["IsIssuedByOurCa"]["Choices"]
        [accepted] = [rule["Or"] for rule in our_ca["And"] if "Or" in rule]
        # One CA (no rotation): the issuing and the previous CA are this one.
        assert accepted == [{"Variable": "$.described.CertificateDescription.CaCertificateId",
                             "StringEquals": ca.id}] * 2
        assert machine.inputs["type"] == "STANDARD"
        assert machine.inputs["tracingConfiguration"] == {"enabled": True}
        assert machine.inputs["loggingConfiguration"] == {
            "level": "ALL", "includeExecutionData": True, "logDestination": arn_of(logs) + ":*"}


def _regional_key_arn(graph: StackGraph, region: str) -> str:
    return arn_of(graph.named(f"region-{region}-key"))


def test_logs_queue_and_lambda_environment_use_the_regional_cmk(
        stack: tuple[StackGraph, list[str]]) -> None:
    graph, regions = stack
    retention = {r.inputs["retentionInDays"] for r in graph.of_type(
        "aws:cloudwatch/logGroup:LogGroup") if "-jitr-" in r.name}
    assert len(retention) == 1 and retention.pop() in (30, 365)
    for region in regions:
        key = _regional_key_arn(graph, region)
        for suffix in ("-jitr-check-logs", "-jitr-machine-logs"):
            assert in_region(graph, "aws:cloudwatch/logGroup:LogGroup", region,
                             suffix).inputs["kmsKeyId"] == key
        queue = in_region(graph, "aws:sqs/queue:Queue", region, "-jitr-dlq")
        assert queue.inputs["kmsMasterKeyId"] == key
        [deny] = statements(in_region(graph, "aws:sqs/queuePolicy:QueuePolicy", region,
                                      "-jitr-dlq-policy"))
        assert deny["Effect"] == "Deny" and deny["Resource"] == arn_of(queue)
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        function = in_region(graph, "aws:lambda/function:Function", region, "-jitr-check")
        assert function.inputs["kmsKeyArn"] == key
        assert function.inputs["runtime"] == "python3.13"
        assert function.inputs["architectures"] == ["arm64"]
        assert function.inputs["tracingConfig"] == {"mode": "Active"}
        assert function.inputs["loggingConfig"]["logGroup"] == in_region(
            graph, "aws:cloudwatch/logGroup:LogGroup", region, "-jitr-check-logs").inputs["name"]
        assert "BEGIN CERTIFICATE" in function.inputs["environment"]["variables"][
            "CA_CERTIFICATE_PEM"]
        assert "PRIVATE KEY" not in json.dumps(function.inputs)


def _sdk_actions(definition: str) -> set[str]:
    """`iot:DescribeCertificate` for every aws-sdk task of the definition."""
    actions = set()
    for state in json.loads(definition)["States"].values():
        resource = state.get("Resource", "")
        if resource.startswith("arn:aws:states:::aws-sdk:"):
            service, api = resource.rsplit(":", 2)[-2:]
            actions.add(f"{service}:{api[:1].upper()}{api[1:]}")
    return actions


def graph_primary(graph: StackGraph) -> str:
    return str(graph.outputs["primaryRegion"])


def test_machine_role_is_least_privilege(stack: tuple[StackGraph, list[str]]) -> None:
    graph, regions = stack
    for region in regions:
        machine = in_region(graph, "aws:sfn/stateMachine:StateMachine", region, "-jitr-machine")
        function = in_region(graph, "aws:lambda/function:Function", region, "-jitr-check")
        role = in_region(graph, "aws:iam/role:Role", region, "-jitr-machine-role")
        policy = statements(in_region(graph, "aws:iam/rolePolicy:RolePolicy", region,
                                      "-jitr-machine-policy"))
        granted: dict[str, list[str]] = {}
        for statement in policy:
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                assert "*" not in action, action
                granted.setdefault(action, []).extend(as_list(statement["Resource"]))
        iot_granted = {a for a in granted if a.startswith("iot:")}
        assert iot_granted == _sdk_actions(machine.inputs["definition"])
        iot_prefix = f"arn:aws:iot:{region}:{ACCOUNT_ID}:"
        for action in iot_granted:
            assert all(r in (iot_prefix + "cert/*", iot_prefix + "thing/*")
                       for r in granted[action]), action
        table_arn = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/iotmr-{graph.stack}-device-inventory"
        assert granted["dynamodb:GetItem"] == [table_arn] == granted["dynamodb:PutItem"] \
            == granted["dynamodb:UpdateItem"]  # UpdateItem: a CA rotation's conditional change
        assert granted["lambda:InvokeFunction"] == [arn_of(function)]
        wildcard = {a for a, resources in granted.items() if "*" in resources}
        assert wildcard == set(SFN_LOG_DELIVERY_ACTIONS) | set(XRAY_ACTIONS)
        assert granted["iot:DeleteThing"] == [iot_prefix + "thing/*"]  # no narrower key exists
        # The tables' CMK, this region's copy only, and only through DynamoDB here.
        tables_key = next(r for r in graph.of_type("aws:kms/key:Key")
                          if r.region == region and r.inputs.get("multiRegion")) \
            if region == graph_primary(graph) else next(
                r for r in graph.of_type("aws:kms/replicaKey:ReplicaKey") if r.region == region)
        [key_statement] = [s for s in policy if "kms:Decrypt" in as_list(s["Action"])]
        assert sorted(as_list(key_statement["Action"])) == [
            "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
        assert key_statement["Resource"] == tables_key.outputs["arn"]
        assert key_statement["Condition"] == {
            "StringEquals": {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}}
        assert set(granted) - iot_granted - wildcard == {
            "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "lambda:InvokeFunction",
            "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"}
        [trust] = statements(role, "assumeRolePolicy")
        assert trust["Principal"] == {"Service": "states.amazonaws.com"}
        assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT_ID}
        assert trust["Condition"]["ArnLike"] == {"aws:SourceArn": arn_of(machine)}


def test_rule_role_can_only_start_this_machine_and_dead_letter(
        stack: tuple[StackGraph, list[str]]) -> None:
    graph, regions = stack
    for region in regions:
        machine = in_region(graph, "aws:sfn/stateMachine:StateMachine", region, "-jitr-machine")
        queue = in_region(graph, "aws:sqs/queue:Queue", region, "-jitr-dlq")
        rule = in_region(graph, "aws:iot/topicRule:TopicRule", region, "-jitr-rule")
        role = in_region(graph, "aws:iam/role:Role", region, "-jitr-rule-role")
        by_action = {a: s for s in statements(in_region(
            graph, "aws:iam/rolePolicy:RolePolicy", region, "-jitr-rule-policy"))
            for a in as_list(s["Action"])}
        assert set(by_action) == {"states:StartExecution", "sqs:SendMessage", "kms:Decrypt",
                                  "kms:GenerateDataKey"}
        assert by_action["states:StartExecution"]["Resource"] == arn_of(machine)
        assert by_action["sqs:SendMessage"]["Resource"] == arn_of(queue)
        kms = by_action["kms:GenerateDataKey"]
        assert kms["Resource"] == _regional_key_arn(graph, region)
        assert kms["Condition"] == {"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}}
        [trust] = statements(role, "assumeRolePolicy")
        assert trust["Principal"] == {"Service": "iot.amazonaws.com"}
        assert trust["Condition"]["ArnLike"]["aws:SourceArn"] == \
            f"arn:aws:iot:{region}:{ACCOUNT_ID}:rule/{rule.inputs['name']}"


def test_check_function_role_is_least_privilege(stack: tuple[StackGraph, list[str]]) -> None:
    graph, regions = stack
    for region in regions:
        function = in_region(graph, "aws:lambda/function:Function", region, "-jitr-check")
        logs = in_region(graph, "aws:cloudwatch/logGroup:LogGroup", region, "-jitr-check-logs")
        by_action = {a: s for s in statements(in_region(
            graph, "aws:iam/rolePolicy:RolePolicy", region, "-jitr-check-policy"))
            for a in as_list(s["Action"])}
        assert by_action["logs:PutLogEvents"]["Resource"] == arn_of(logs) + ":log-stream:*"
        assert by_action["kms:Decrypt"]["Resource"] == _regional_key_arn(graph, region)
        assert by_action["kms:Decrypt"]["Condition"] == {"StringEquals": {
            "kms:EncryptionContext:LambdaFunctionName": function.inputs["name"]}}
        assert {a for a, s in by_action.items() if s["Resource"] == "*"} == {
            "xray:PutTelemetryRecords", "xray:PutTraceSegments"}
        # Lambda documents no aws:SourceArn for execution roles: account only.
        role = in_region(graph, "aws:iam/role:Role", region, "-jitr-check-role")
        [trust] = statements(role, "assumeRolePolicy")
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}


def test_render_fills_every_placeholder_and_refuses_mistakes() -> None:
    params: dict[str, str | int] = {name: "x" for name in placeholders(DEFINITION)}
    params.update(retry_interval_seconds=2, retry_max_attempts=3)
    document = json.loads(render(DEFINITION, **params))
    retry = document["States"]["DescribeCertificate"]["Retry"][0]
    assert (retry["IntervalSeconds"], retry["MaxAttempts"]) == (2, 3)  # numbers stay numbers
    assert "${" not in json.dumps(document)
    missing = dict(params)
    missing.pop("device_policy_name")
    with pytest.raises(DefinitionError, match="device_policy_name"):
        render(DEFINITION, **missing)
    with pytest.raises(DefinitionError, match="tabel_name"):
        render(DEFINITION, **params, tabel_name="typo")
