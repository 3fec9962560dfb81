"""The CVM's declared graph in every region of the real stacks (harness mocks): API validator and
models, throttling, KMS access logs, X-Ray, WAF on the stage, custom domain with latency DNS and
health checks, function wiring and least-privilege IAM, KPI dashboard and alarms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.capabilities import CAPABILITIES
from components.config import parse_stack_config
from components.cvm import component as cvm_component
from components.cvm import monitoring
from lambdas.contracts import metrics
from lambdas.cvm_registration.models.requests import RegistrationRequest, RotationRequest
from tests.support.stacks import PROJECT_DIR, configured_regions
from tools.harness import RecordedResource, StackGraph, evaluate_program, load_program_stack
from tools.local.emulation.api_gateway import render_template, template_problems
from tools.local.emulation.policy import allowed

APIGW = "aws:apigateway"


def in_region(graph: StackGraph, type_: str, region: str, suffix: str) -> RecordedResource:
    found = [r for r in graph.of_type(type_)
             if r.name.startswith(f"region-{region}-cvm") and r.name.endswith(suffix)]
    assert len(found) == 1, (type_, region, suffix, [r.name for r in found])
    return found[0]


def statements(resource: RecordedResource) -> list[dict[str, Any]]:
    return list(json.loads(resource.inputs["policy"])["Statement"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def stack_domain(stack: str) -> str:
    return str(load_program_stack(PROJECT_DIR, stack).config["iot-multi-region:deviceDomain"])


@pytest.fixture(params=["dev", "prod"])
def stack(request: pytest.FixtureRequest) -> tuple[str, StackGraph, list[str]]:
    name = request.param
    return name, request.getfixturevalue(f"{name}_graph"), configured_regions(name)


def test_every_region_has_its_own_regional_api_and_function(stack: Any) -> None:
    _, graph, regions = stack
    for type_ in (f"{APIGW}/restApi:RestApi", f"{APIGW}/stage:Stage",
                  "aws:lambda/function:Function", "aws:wafv2/webAcl:WebAcl",
                  "aws:secretsmanager/secret:Secret", f"{APIGW}/domainName:DomainName"):
        found = [r for r in graph.of_type(type_) if "-cvm" in r.name]
        assert sorted(str(r.region) for r in found) == sorted(regions), type_
    for region in regions:
        api = in_region(graph, f"{APIGW}/restApi:RestApi", region, "-api")
        assert api.inputs["endpointConfiguration"]["types"] == "REGIONAL"
        assert api.inputs["disableExecuteApiEndpoint"] is True


def test_methods_validate_bodies_against_the_schema_models(stack: Any) -> None:
    _, graph, regions = stack
    for region in regions:
        api = in_region(graph, f"{APIGW}/restApi:RestApi", region, "-api")
        validator = in_region(graph, f"{APIGW}/requestValidator:RequestValidator", region,
                              "-validator")
        assert validator.inputs["validateRequestBody"] is True
        assert validator.inputs["restApi"] == api.id
        for route, (model_name, schema_file) in cvm_component.ROUTES.items():
            method = in_region(graph, f"{APIGW}/method:Method", region, f"-{route}-post")
            model = in_region(graph, f"{APIGW}/model:Model", region, f"-{route}-model")
            resource = in_region(graph, f"{APIGW}/resource:Resource", region, f"-{route}-resource")
            assert method.inputs["httpMethod"] == "POST"
            assert method.inputs["requestValidatorId"] == validator.id
            assert method.inputs["requestModels"] == {"application/json": model_name}
            assert model.inputs["name"] == model_name
            assert json.loads(model.inputs["schema"]) == json.loads(schema_file.read_text())
            assert resource.inputs["pathPart"] == route and resource.inputs["restApi"] == api.id


def test_stage_traces_logs_to_kms_and_is_throttled(stack: Any) -> None:
    _, graph, regions = stack
    for region in regions:
        api = in_region(graph, f"{APIGW}/restApi:RestApi", region, "-api")
        stage = in_region(graph, f"{APIGW}/stage:Stage", region, "-stage")
        logs = in_region(graph, "aws:cloudwatch/logGroup:LogGroup", region, "-access-logs")
        key = next(r for r in graph.of_type("aws:kms/key:Key")
                   if r.name == f"region-{region}-key")
        assert stage.inputs["xrayTracingEnabled"] is True and stage.inputs["restApi"] == api.id
        assert stage.inputs["accessLogSettings"]["destinationArn"] == logs.outputs["arn"]
        assert logs.inputs["kmsKeyId"] == key.outputs["arn"]
        log_format = json.loads(stage.inputs["accessLogSettings"]["format"])
        assert {"requestId", "ip", "status", "wafStatus"} <= set(log_format)
        assert not any("input.body" in value or "requestBody" in value
                       for value in log_format.values())
        throttling = in_region(graph, f"{APIGW}/methodSettings:MethodSettings", region,
                               "-throttling")
        assert throttling.inputs["methodPath"] == "*/*"
        assert throttling.inputs["stageName"] == stage.inputs["stageName"]
        settings = throttling.inputs["settings"]
        assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (20, 40)
        assert settings["dataTraceEnabled"] is False and settings["loggingLevel"] == "OFF"
        # The stacks own API Gateway's account setting (apiGatewayAccount: manage): the role
        # as AWS documents it - trusted by API Gateway, the managed push-to-CloudWatch policy
        # (the setting serves every API of the region) - all three kept on delete.
        account = in_region(graph, f"{APIGW}/account:Account", region, "-api-account")
        role = in_region(graph, "aws:iam/role:Role", region, "-api-logging-role")
        assert account.inputs["cloudwatchRoleArn"] == role.outputs["arn"]
        assert json.loads(role.inputs["assumeRolePolicy"])["Statement"] == [{
            "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
            "Action": "sts:AssumeRole"}]
        attachment = in_region(graph, "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                               region, "-api-logging-policy")
        assert attachment.inputs["role"] == role.outputs["name"]
        assert attachment.inputs["policyArn"] == \
            "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
        assert all(r.options["retainOnDelete"] for r in (account, role, attachment))


def test_waf_guards_the_stage_with_a_rate_rule_and_managed_groups(stack: Any) -> None:
    _, graph, regions = stack
    for region in regions:
        stage = in_region(graph, f"{APIGW}/stage:Stage", region, "-stage")
        acl = in_region(graph, "aws:wafv2/webAcl:WebAcl", region, "-waf")
        association = in_region(graph, "aws:wafv2/webAclAssociation:WebAclAssociation", region,
                                "-waf-association")
        assert association.inputs["resourceArn"] == stage.outputs["arn"]
        assert stage.outputs["arn"].endswith(
            f"/restapis/{stage.inputs['restApi']}/stages/{stage.inputs['stageName']}")
        assert association.inputs["webAclArn"] == acl.outputs["arn"]
        assert acl.inputs["scope"] == "REGIONAL" and "allow" in acl.inputs["defaultAction"]
        rules = {rule["name"]: rule for rule in acl.inputs["rules"]}
        rate = rules["rate-per-ip"]["statement"]["rateBasedStatement"]
        assert (rate["limit"], rate["aggregateKeyType"]) == (100, "IP")
        response = rules["rate-per-ip"]["action"]["block"]["customResponse"]
        assert response["responseCode"] == 429
        [body] = acl.inputs["customResponseBodies"]
        assert body["key"] == response["customResponseBodyKey"]
        assert json.loads(body["content"])["statusCode"] == 429
        managed = {name for name, rule in rules.items()
                   if "managedRuleGroupStatement" in rule["statement"]}
        assert managed == set(cvm_component.WAF_MANAGED_RULE_GROUPS)
        overrides = rules["AWSManagedRulesCommonRuleSet"]["statement"][
            "managedRuleGroupStatement"]["ruleActionOverrides"]
        assert overrides == [{"name": "NoUserAgent_HEADER", "actionToUse": {"count": {}}}]
        logging = in_region(
            graph, "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration", region,
            "-waf-logging")
        waf_logs = in_region(graph, "aws:cloudwatch/logGroup:LogGroup", region, "-waf-logs")
        assert logging.inputs["logDestinationConfigs"] == [waf_logs.outputs["arn"]]
        assert waf_logs.inputs["name"].startswith("aws-waf-logs-") and waf_logs.inputs["kmsKeyId"]


def test_api_invokes_this_regions_function_only_from_its_stage(stack: Any) -> None:
    _, graph, regions = stack
    for region in regions:
        api = in_region(graph, f"{APIGW}/restApi:RestApi", region, "-api")
        function = in_region(graph, "aws:lambda/function:Function", region, "-function")
        for route in cvm_component.ROUTES:
            integration = in_region(graph, f"{APIGW}/integration:Integration", region,
                                    f"-{route}-integration")
            assert integration.inputs["type"] == "AWS_PROXY"
            assert integration.inputs["uri"] == function.outputs["invokeArn"]
        permission = in_region(graph, "aws:lambda/permission:Permission", region, "-invoke")
        assert permission.inputs["principal"] == "apigateway.amazonaws.com"
        assert permission.inputs["function"] == function.inputs["name"]
        assert permission.inputs["sourceArn"] == (
            f"arn:aws:execute-api:{region}:123456789012:{api.id}/{cvm_component.STAGE_NAME}/POST/*")


def test_custom_domain_latency_record_and_the_edges_health_design(stack: Any) -> None:
    name, graph, regions = stack
    domain_name = f"provision.{stack_domain(name)}"
    primary = load_program_stack(PROJECT_DIR, name).config["iot-multi-region:primaryRegion"]
    for region in regions:
        domain = in_region(graph, f"{APIGW}/domainName:DomainName", region, "-domain")
        assert domain.inputs["domainName"] == domain_name
        assert domain.inputs["securityPolicy"] == "TLS_1_2"
        assert domain.inputs["endpointConfiguration"]["types"] == "REGIONAL"
        validation = in_region(graph, "aws:acm/certificateValidation:CertificateValidation",
                               region, "-domain-cert-validation")
        assert domain.inputs["regionalCertificateArn"] == validation.inputs["certificateArn"]
        mapping = in_region(graph, f"{APIGW}/basePathMapping:BasePathMapping", region,
                            "-domain-mapping")
        assert mapping.inputs["domainName"] == domain_name
        record = in_region(graph, "aws:route53/record:Record", region, "-latency-record")
        assert record.inputs["name"] == domain_name and record.inputs["type"] == "A"
        assert record.inputs["latencyRoutingPolicies"] == [{"region": region}]
        assert record.inputs["aliases"][0]["name"] == domain.outputs["regionalDomainName"]
        calculated = in_region(graph, "aws:route53/healthCheck:HealthCheck", region,
                               "-cvm-health-check")
        assert record.inputs["healthCheckId"] == calculated.id
        assert calculated.inputs["type"] == "CALCULATED"
        alarm_check = in_region(graph, "aws:route53/healthCheck:HealthCheck", region,
                                "-alarm-health-check")
        tcp_check = in_region(graph, "aws:route53/healthCheck:HealthCheck", region,
                              "-tcp-health-check")
        control = in_region(graph, "aws:route53/healthCheck:HealthCheck", region,
                            "-evacuation-control")  # the operator's switch (tools/evacuate.py)
        assert sorted(calculated.inputs["childHealthchecks"]) == sorted([alarm_check.id,
                                                                         tcp_check.id, control.id])
        assert calculated.inputs["childHealthThreshold"] == 3
        assert control.inputs["childHealthThreshold"] == 0
        assert "invertHealthcheck" in control.options.get("ignoreChanges", [])
        alarm = in_region(graph, "aws:cloudwatch/metricAlarm:MetricAlarm", region, "-api-health")
        api = in_region(graph, f"{APIGW}/restApi:RestApi", region, "-api")
        assert alarm_check.inputs["cloudwatchAlarmName"] == alarm.inputs["name"]
        assert alarm_check.inputs["cloudwatchAlarmRegion"] == region
        assert alarm.inputs["dimensions"] == {"ApiName": api.inputs["name"],
                                              "Stage": cvm_component.STAGE_NAME}
        assert (tcp_check.inputs["fqdn"], tcp_check.inputs["port"]) == (
            domain.outputs["regionalDomainName"], 443)
    # One region-less owner for the validation record ACM asks for in every region; it was
    # the primary region's CVM's child, and keeps that URN as an alias.
    [record] = [r for r in graph.of_type("aws:route53/record:Record")
                if "domain-validation" in r.name or r.name.startswith("cvm-global")]
    assert record.name == "cvm-global-acm-validation" and record.region == "global"
    assert record.aliases == (
        f"urn:pulumi:{name}::iot-multi-region::iotmr:regional:RegionalStack"
        f"$iotmr:cvm:CertificateVendingMachine$aws:route53/record:Record::"
        f"region-{primary}-cvm-domain-validation",)


def test_function_environment_points_at_this_regions_resources(stack: Any) -> None:
    name, graph, regions = stack
    for region in regions:
        function = in_region(graph, "aws:lambda/function:Function", region, "-function")
        secret = in_region(graph, "aws:secretsmanager/secret:Secret", region, "-salts")
        key = next(r for r in graph.of_type("aws:kms/key:Key") if r.name == f"region-{region}-key")
        env = function.inputs["environment"]["variables"]
        assert env["SALTS_SECRET_ARN"] == secret.outputs["arn"]
        assert f":{region}:" in env["SALTS_SECRET_ARN"]
        assert secret.inputs["kmsKeyId"] == key.outputs["arn"]
        assert env["DEVICE_ENDPOINT"] == stack_domain(name)
        assert env["PROVISIONING_TABLE_NAME"].endswith("-cvm-provisioning")
        assert env["INVENTORY_TABLE_NAME"].endswith("-device-inventory")
        assert env["LEGACY_BATCHES"] == "" and "ROOT_CA_BUNDLE_PEM" not in env
        assert int(env["CLAIM_STALE_SECONDS"]) > function.inputs["timeout"]
        assert function.inputs["tracingConfig"] == {"mode": "Active"}
        assert function.inputs["handler"] == "cvm_registration.app.handler"
        assert function.inputs["kmsKeyArn"] == key.outputs["arn"]


def test_function_role_is_least_privilege(stack: Any) -> None:
    _, graph, regions = stack
    for region in regions:
        policy = in_region(graph, "aws:iam/rolePolicy:RolePolicy", region, "-function-policy")
        secret = in_region(graph, "aws:secretsmanager/secret:Secret", region, "-salts")
        found = {s["Sid"]: s for s in statements(policy)}
        actions = [a for s in found.values() for a in as_list(s["Action"])]
        assert not any(a.endswith(":*") or a == "*" for a in actions)
        assert "iot:CreateKeysAndCertificate" not in actions  # no legacy batch configured
        star = {sid for sid, s in found.items() if s["Resource"] == "*"}
        assert star == {"Tracing", "IssueCertificates"}
        assert found["ReadBatchSalts"]["Resource"] == secret.outputs["arn"]
        assert found["DecryptBatchSalts"]["Condition"]["StringEquals"][
            "kms:EncryptionContext:SecretARN"] == secret.outputs["arn"]
        for sid in ("Things", "Certificates", "CertificateToThing"):
            assert f":iot:{region}:" in found[sid]["Resource"]
        # The inventory is read, checked and written whole (transaction Put), never updated.
        assert sorted(as_list(found["WriteInventory"]["Action"])) == [
            "dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem"]
        assert found["ClaimAndCommitRecords"]["Resource"].endswith("-cvm-provisioning")
        assert f":dynamodb:{region}:" in found["ClaimAndCommitRecords"]["Resource"]
        # The shared table's allow-list entries are the fleet functions' only (one evaluator).
        table = found["ClaimAndCommitRecords"]["Resource"]
        document = {"Statement": statements(policy)}
        for action in ("dynamodb:GetItem", "dynamodb:UpdateItem"):
            assert allowed(document, action, table, {"dynamodb:LeadingKeys": ["sensor-1"]}), action
            assert not allowed(document, action, table, {"dynamodb:LeadingKeys": ["fleet#SN-1"]}), action


def test_every_429_says_when_to_retry(stack: Any) -> None:
    """The stage's throttling and the WAF's rate rule answer 429 with Retry-After, as the
    function's 409 and 503 do: a device following the contract does not retry at once."""
    _, graph, regions = stack
    for region in regions:
        [throttled] = [r for r in graph.of_type(f"{APIGW}/response:Response")
                       if r.inputs.get("region") == region and r.inputs["responseType"] == "THROTTLED"]
        assert throttled.inputs["responseParameters"] == {"gatewayresponse.header.Retry-After": "'1'"}
        acl = in_region(graph, "aws:wafv2/webAcl:WebAcl", region, "-waf")
        [rate] = [r for r in acl.inputs["rules"] if "rateBasedStatement" in r["statement"]]
        headers = rate["action"]["block"]["customResponse"]["responseHeaders"]
        assert headers == [{"name": "Retry-After", "value": "60"}]


def test_cvm_settings_reach_the_graph() -> None:
    graph = evaluate_program(PROJECT_DIR, "dev", config_overrides={"cvm": {
        "provisioningDomain": "register.dev.example.com", "wafRateLimit": 500,
        "throttleRateLimit": 5, "throttleBurstLimit": 10, "legacyBatches": ["B2019"],
        "thingNamePrefix": "thing_"}})
    for region in configured_regions("dev"):
        env = in_region(graph, "aws:lambda/function:Function", region, "-function").inputs[
            "environment"]["variables"]
        assert (env["LEGACY_BATCHES"], env["THING_NAME_PREFIX"]) == ("B2019", "thing_")
        policy = in_region(graph, "aws:iam/rolePolicy:RolePolicy", region, "-function-policy")
        found = {s["Sid"]: s for s in statements(policy)}
        assert "iot:CreateKeysAndCertificate" in found["IssueCertificates"]["Action"]
        assert found["Things"]["Resource"].endswith(":thing/thing_*")
        acl = in_region(graph, "aws:wafv2/webAcl:WebAcl", region, "-waf")
        assert acl.inputs["rules"][0]["statement"]["rateBasedStatement"]["limit"] == 500
        settings = in_region(graph, f"{APIGW}/methodSettings:MethodSettings", region,
                             "-throttling").inputs["settings"]
        assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (5, 10)
        assert in_region(graph, f"{APIGW}/domainName:DomainName", region, "-domain").inputs[
            "domainName"] == "register.dev.example.com"
    # Without apiGatewayAccount: manage, the account-wide setting is left alone.
    assert not [r for r in graph.of_type(f"{APIGW}/account:Account")]


def test_stacks_evaluate_without_a_cvm_section() -> None:
    graph = evaluate_program(PROJECT_DIR, "prod", drop_keys=("cvm",))
    regions = configured_regions("prod")
    stages = [r for r in graph.of_type(f"{APIGW}/stage:Stage") if "-cvm" in r.name]
    assert sorted(str(r.region) for r in stages) == sorted(regions)
    assert graph.of_type(f"{APIGW}/account:Account") == []


def test_bad_cvm_settings_fail_the_config_with_one_line_each(project_dir: Path) -> None:
    raw = {k.split(":", 1)[1]: v for k, v in
           load_program_stack(project_dir, "dev").config.items() if k.startswith("iot-multi")}
    raw["cvm"] = {"wafRateLimit": 5, "legacyBatches": ["ok", "bad batch"], "throtleRateLimit": 1}
    from components.config import ConfigError

    with pytest.raises(ConfigError) as failure:
        parse_stack_config(raw, capabilities=CAPABILITIES, project_dir=project_dir)
    assert failure.value.problems == [
        "iot-multi-region:cvm.throtleRateLimit: unknown field; did you mean 'throttleRateLimit'?",
        "iot-multi-region:cvm.wafRateLimit: 5 must be a whole number from 10 to 2000000000",
        "iot-multi-region:cvm.legacyBatches: 'bad batch' is not a batch name "
        "(1-64 of A-Z a-z 0-9 _ . -)",
    ]


def test_dashboard_and_alarms_read_the_metrics_the_function_publishes(stack: Any) -> None:
    _, graph, regions = stack
    published = metrics.CVM.metrics  # what the function may publish (the contract)
    for region in regions:
        dashboard = json.loads(in_region(graph, "aws:cloudwatch/dashboard:Dashboard", region,
                                         "-dashboard").inputs["dashboardBody"])
        ours = {m[1] for w in dashboard["widgets"] for m in w["properties"]["metrics"]
                if isinstance(m, list) and m and m[0] == metrics.CVM.namespace}
        assert ours and ours <= published
        alarm = in_region(graph, "aws:cloudwatch/metricAlarm:MetricAlarm", region, "-success-rate")
        queried = {q["metric"]["metricName"] for q in alarm.inputs["metricQueries"]
                   if "metric" in q}
        assert queried == set(monitoring.SUCCESS_RATE_INPUTS.values()) and queried <= published
        for suffix, metric in (("-attempts", metrics.Cvm.ATTEMPTS_PER_DEVICE),
                               ("-undo-failed", metrics.Cvm.UNDO_FAILED)):
            alarm = in_region(graph, "aws:cloudwatch/metricAlarm:MetricAlarm", region, suffix)
            assert alarm.inputs["metricName"] == metric and metric in published
            assert alarm.inputs["dimensions"] == metrics.CVM.dimensions


@pytest.mark.parametrize("schema_file, model", [
    (cvm_component.REGISTRATION_SCHEMA, RegistrationRequest),
    (cvm_component.ROTATION_SCHEMA, RotationRequest)])
def test_gateway_model_and_function_model_accept_the_same_shape(schema_file: Path,
                                                                model: Any) -> None:
    gateway = json.loads(schema_file.read_text())
    function = model.model_json_schema()
    assert gateway["additionalProperties"] is False
    assert function.get("additionalProperties") is False
    assert sorted(gateway["required"]) == sorted(function["required"])
    assert set(gateway["properties"]) == set(function["properties"])
    for name, rule in gateway["properties"].items():
        declared = function["properties"][name]
        theirs = next((t for t in declared.get("anyOf", []) if t.get("type") != "null"), declared)
        # Both accept null for an optional field, or neither does.
        types = rule["type"] if isinstance(rule["type"], list) else [rule["type"]]
        assert ("null" in types) == any(t.get("type") == "null" for t in declared.get("anyOf", [])), name
        assert [t for t in types if t != "null"] == [theirs.get("type")], name
        for keyword in ("minLength", "maxLength", "pattern", "minimum", "maximum"):
            assert rule.get(keyword) == theirs.get(keyword), (name, keyword)


def test_every_body_the_models_admit_passes_the_wafs_8_kb_body_rule() -> None:
    """AWSManagedRulesCommonRuleSet's SizeRestrictions_BODY blocks a body over 8 KB: the
    largest valid registration and rotation, a PEM's line breaks escaped, must fit."""
    from lambdas.cvm_registration.models.requests import CSR_MAX_LENGTH, MAX_BODY_BYTES

    assert "SizeRestrictions_BODY" not in cvm_component.WAF_COUNT_ONLY_RULES.get(
        "AWSManagedRulesCommonRuleSet", ())  # the rule blocks, so the models must stay under it
    lines = ["A" * 63] * (CSR_MAX_LENGTH // 64)
    csr = "\n".join(lines).ljust(CSR_MAX_LENGTH, "A")
    largest = [
        {"device_uid": "u" * 128, "device_token": "a" * 64, "device_uid_2": "v" * 128, "csr": csr},
        {"device_uid": "u" * 128, "csr": csr, "timestamp": 2 ** 40, "signature": "s" * 1024}]
    for body in largest:
        assert len(json.dumps(body).encode()) <= MAX_BODY_BYTES <= 8192


def test_gateway_responses_are_json_after_aws_substitution() -> None:
    # AWS substitutes variables as they are (no VTL, no escaping): the bodies must be JSON for
    # any message, which only the quoted messageString guarantees.
    message = 'object has missing required properties (["device_token"])'
    for response_type, (status, template) in cvm_component.GATEWAY_RESPONSES.items():
        assert not template_problems(template), response_type
        body = json.loads(render_template(template, {
            "$context.error.message": message, "$context.error.messageString": json.dumps(message)}))
        assert body["status"] == "ERROR" and body.get("statusCode", status) == status, response_type
