"""Fleet provisioning in every region of the real stacks (harness mocks): the declared
resources, their wiring, and what each IAM / IoT policy allows, evaluated."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.fleet_provisioning import component as fleet_component
from components.fleet_provisioning.iam_documents import (
    PROVISIONING_CERTIFICATE_ACTIONS,
    PROVISIONING_THING_ACTIONS,
)
from components.fleet_provisioning.settings import FleetSettings, parse_settings
from components.fleet_provisioning.template import TEMPLATE_NAME_MAX, template_name
from lambdas.fleet_provisioning_hook import items as hook_items
from lambdas.fleet_provisioning_recorder import logic as recorder_logic
from tests.support.fleet_emulator import DeclaredFleet, filter_matches
from tests.support.fleet_iam import allowed, document, trust_allows
from tests.support.stacks import PROJECT_DIR, configured_regions
from tools import installer
from tools.harness import ACCOUNT_ID, StackGraph, evaluate_program

COGNITO = ("Federated", "cognito-identity.amazonaws.com")
# The managed policy AWS suggests for the provisioning role (AWSIoTThingsRegistration, v3).
MANAGED_THINGS_REGISTRATION = {
    "iot:AddThingToThingGroup", "iot:AttachPolicy", "iot:AttachPrincipalPolicy",
    "iot:AttachThingPrincipal", "iot:CreateCertificateFromCsr", "iot:CreatePolicy",
    "iot:CreateThing", "iot:DescribeCertificate", "iot:DescribeThing", "iot:DescribeThingGroup",
    "iot:DescribeThingType", "iot:DetachPolicy", "iot:DetachThingPrincipal", "iot:GetPolicy",
    "iot:ListAttachedPolicies", "iot:ListPolicyPrincipals", "iot:ListPrincipalPolicies",
    "iot:ListPrincipalThings", "iot:ListTargetsForPolicy", "iot:ListThingGroupsForThing",
    "iot:ListThingPrincipals", "iot:RegisterCertificate", "iot:RegisterThing",
    "iot:RemoveThingFromThingGroup", "iot:UpdateCertificate", "iot:UpdateThing",
    "iot:UpdateThingGroupsForThing", "iot:AddThingToBillingGroup", "iot:DescribeBillingGroup",
    "iot:RemoveThingFromBillingGroup",
}
# Actions the installer must never get, whatever the resource.
FORBIDDEN_FOR_INSTALLERS = sorted(MANAGED_THINGS_REGISTRATION | {
    "iot:Publish", "iot:Connect", "iot:CreateKeysAndCertificate", "iot:CreateProvisioningTemplate",
    "iot:UpdateProvisioningTemplate", "iot:DescribeEndpoint", "iot:ListThings", "sts:AssumeRole",
    "dynamodb:GetItem", "lambda:InvokeFunction", "cognito-idp:AdminCreateUser"})


@pytest.fixture(params=["dev", "prod"])
def stack(request: pytest.FixtureRequest) -> tuple[str, StackGraph, list[str]]:
    return (request.param, request.getfixturevalue(f"{request.param}_graph"),
            configured_regions(request.param))


def fleets(stack: tuple[str, StackGraph, list[str]]) -> list[DeclaredFleet]:
    _, graph, regions = stack
    return [DeclaredFleet(graph, region) for region in regions]


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return list(policy["Statement"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_every_region_has_the_whole_capability(stack: tuple[str, StackGraph, list[str]]) -> None:
    _, graph, regions = stack
    for type_ in ("aws:cognito/userPool:UserPool", "aws:cognito/userPoolClient:UserPoolClient",
                  "aws:cognito/identityPool:IdentityPool",
                  "aws:cognito/identityPoolRoleAttachment:IdentityPoolRoleAttachment",
                  "aws:iot/provisioningTemplate:ProvisioningTemplate",
                  "aws:lambda/eventSourceMapping:EventSourceMapping"):
        assert sorted(str(r.region) for r in graph.of_type(type_) if "fleet" in r.name) == \
            sorted(regions), type_
    for fleet in fleets(stack):
        # Each lookup follows a declared reference and asserts it resolves to one resource.
        assert fleet.hook.region == fleet.region and fleet.recorder.region == fleet.region
        assert fleet.role_attachment and fleet.user_pool_client and fleet.provisioning_role


def test_user_pool_is_admin_only_with_required_totp_and_threat_protection(
        stack: tuple[str, StackGraph, list[str]]) -> None:
    name = stack[0]
    for fleet in fleets(stack):
        pool = fleet.user_pool.inputs
        assert pool["adminCreateUserConfig"]["allowAdminCreateUserOnly"] is True
        assert pool["mfaConfiguration"] == "ON"
        assert pool["softwareTokenMfaConfiguration"] == {"enabled": True}
        assert "smsConfiguration" not in pool  # TOTP only
        assert pool["userPoolAddOns"]["advancedSecurityMode"] == "ENFORCED"
        assert pool["userPoolTier"] == "PLUS"  # threat protection needs the Plus plan
        password = pool["passwordPolicy"]
        assert password["minimumLength"] >= 12
        assert all(password[k] is True for k in ("requireLowercase", "requireUppercase",
                                                 "requireNumbers", "requireSymbols"))
        assert pool["deletionProtection"] == ("ACTIVE" if name == "prod" else "INACTIVE")
        client = fleet.user_pool_client.inputs
        assert client["generateSecret"] is False
        assert sorted(client["explicitAuthFlows"]) == ["ALLOW_REFRESH_TOKEN_AUTH",
                                                       "ALLOW_USER_SRP_AUTH"]
        assert client["preventUserExistenceErrors"] == "ENABLED"
        [group] = [g for g in fleet.groups if g.inputs["name"] == installer.INSTALLERS_GROUP]
        assert group.inputs["name"] == installer.INSTALLERS_GROUP == "installers"


def test_identity_pool_gives_only_installers_the_installer_role(
        stack: tuple[str, StackGraph, list[str]]) -> None:
    for fleet in fleets(stack):
        pool = fleet.identity_pool.inputs
        assert pool["allowUnauthenticatedIdentities"] is False
        assert pool["allowClassicFlow"] is False
        [provider] = pool["cognitoIdentityProviders"]
        assert provider["providerName"] == fleet.user_pool.outputs["endpoint"] == \
            f"cognito-idp.{fleet.region}.amazonaws.com/{fleet.user_pool.id}"
        assert provider["clientId"] == fleet.user_pool_client.id
        assert provider["serverSideTokenCheck"] is True
        attachment = fleet.role_attachment.inputs
        assert set(attachment["roles"]) == {"authenticated"}  # no unauthenticated role
        [mapping] = attachment["roleMappings"]
        assert (mapping["type"], mapping["ambiguousRoleResolution"]) == ("Token", "Deny")
        [group] = [g for g in fleet.groups if g.inputs["name"] == installer.INSTALLERS_GROUP]
        assert group.inputs["roleArn"] == attachment["roles"]["authenticated"]


def test_installer_role_allows_one_action_on_one_arn(
        stack: tuple[str, StackGraph, list[str]]) -> None:
    all_fleets = fleets(stack)
    for fleet in all_fleets:
        role_arn = fleet.role_attachment.inputs["roles"]["authenticated"]
        policy = fleet.role_policy(role_arn)
        [statement] = statements(policy)
        assert as_list(statement["Action"]) == ["iot:CreateProvisioningClaim"]
        assert as_list(statement["Resource"]) == [fleet.template_arn]
        assert allowed(policy, "iot:CreateProvisioningClaim", fleet.template_arn)
        for other in all_fleets:
            if other is not fleet:
                assert not allowed(policy, "iot:CreateProvisioningClaim", other.template_arn)
        assert not allowed(policy, "iot:CreateProvisioningClaim",
                           fleet.template_arn.replace("-fleet", "-other"))
        assert not allowed(policy, "iot:CreateProvisioningClaim", "*")
        for action in FORBIDDEN_FOR_INSTALLERS:
            assert not allowed(policy, action, fleet.template_arn), action
            assert not allowed(policy, action, "*"), action


def test_installer_role_trusts_only_authenticated_identities_of_its_pool(
        stack: tuple[str, StackGraph, list[str]]) -> None:
    for fleet in fleets(stack):
        trust = fleet.role(fleet.role_attachment.inputs["roles"]["authenticated"]).inputs[
            "assumeRolePolicy"]
        pool_id = fleet.identity_pool.id
        ok = {"cognito-identity.amazonaws.com:aud": pool_id,
              "cognito-identity.amazonaws.com:amr": ["authenticated", "cognito-idp..."]}
        action = "sts:AssumeRoleWithWebIdentity"
        assert trust_allows(trust, COGNITO, action, ok)
        assert not trust_allows(trust, COGNITO, action,
                                {**ok, "cognito-identity.amazonaws.com:aud": "eu-west-1:other"})
        assert not trust_allows(trust, COGNITO, action,
                                {**ok, "cognito-identity.amazonaws.com:amr": ["unauthenticated"]})
        assert not trust_allows(trust, COGNITO, "sts:AssumeRole", ok)
        assert not trust_allows(trust, ("Service", "iot.amazonaws.com"), action, ok)


def test_template_has_the_hook_and_the_hook_only_answers_this_template(
        stack: tuple[str, StackGraph, list[str]]) -> None:
    for fleet in fleets(stack):
        template = fleet.template.inputs
        assert template["type"] == "FLEET_PROVISIONING" and template["enabled"] is True
        assert len(template["name"]) <= TEMPLATE_NAME_MAX
        assert template["preProvisioningHook"] == {"targetArn": fleet.hook.outputs["arn"],
                                                   "payloadVersion": "2020-04-01"}
        [permission] = fleet.hook_permissions
        assert permission.inputs["principal"] == "iot.amazonaws.com"
        assert permission.inputs["action"] == "lambda:InvokeFunction"
        assert permission.inputs["sourceArn"] == fleet.template_arn == \
            f"arn:aws:iot:{fleet.region}:{ACCOUNT_ID}:provisioningtemplate/{template['name']}"
        assert permission.inputs["sourceAccount"] == ACCOUNT_ID
        hook = fleet.hook.inputs
        variables = hook["environment"]["variables"]
        assert variables["TEMPLATE_ARN"] == fleet.template_arn
        assert variables["PROVISIONING_TABLE_NAME"].endswith("-cvm-provisioning")
        assert variables["INVENTORY_TABLE_NAME"].endswith("-device-inventory")
        assert hook["timeout"] <= 5 and hook["tracingConfig"] == {"mode": "Active"}
        assert int(variables["HOOK_BUDGET_MS"]) / 1000 < hook["timeout"]


def test_template_body_is_valid_and_refers_only_to_what_it_declares(
        stack: tuple[str, StackGraph, list[str]]) -> None:
    for fleet in fleets(stack):
        body = json.loads(fleet.template.inputs["templateBody"])  # valid JSON
        declared = set(body["Parameters"]) | set(body["Resources"])
        found = refs(body)
        assert found and set(found) <= declared, set(found) - declared
        resources = body["Resources"]
        [thing] = [r for r in resources.values() if r["Type"] == "AWS::IoT::Thing"]
        [certificate] = [r for r in resources.values() if r["Type"] == "AWS::IoT::Certificate"]
        [policy] = [r for r in resources.values() if r["Type"] == "AWS::IoT::Policy"]
        assert thing["Properties"]["ThingName"] == {"Ref": "SerialNumber"}
        assert certificate["Properties"] == {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                                             "Status": "ACTIVE"}
        assert set(policy["Properties"]) == {"PolicyName"}  # never an inline policy
        device_policy = fleet.iot_policy_named(policy["Properties"]["PolicyName"])
        assert device_policy.name.endswith("-device-policy")  # the edge's device policy


def refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["Ref"]] if set(value) == {"Ref"} else []
        return own + [name for item in value.values() for name in refs(item)]
    if isinstance(value, list):
        return [name for item in value for name in refs(item)]
    return []


def test_provisioning_role_can_do_what_the_template_needs_and_little_else(
        stack: tuple[str, StackGraph, list[str]]) -> None:
    for fleet in fleets(stack):
        iot = f"arn:aws:iot:{fleet.region}:{ACCOUNT_ID}"
        role = fleet.provisioning_role.inputs
        source = {"aws:SourceAccount": ACCOUNT_ID, "aws:SourceArn": fleet.template_arn}
        assert trust_allows(role["assumeRolePolicy"], ("Service", "iot.amazonaws.com"),
                            "sts:AssumeRole", source)
        assert not trust_allows(role["assumeRolePolicy"], ("Service", "iot.amazonaws.com"),
                                "sts:AssumeRole", {**source, "aws:SourceAccount": "999999999999"})
        assert not trust_allows(role["assumeRolePolicy"], ("Service", "iot.amazonaws.com"),
                                "sts:AssumeRole",
                                {**source, "aws:SourceArn": source["aws:SourceArn"].replace(
                                    fleet.region, "ap-south-1")})
        policy = fleet.provisioning_policy
        granted = {a for s in statements(policy) for a in as_list(s["Action"])}
        assert granted < MANAGED_THINGS_REGISTRATION  # strictly narrower than the managed one
        assert "*" not in {r for s in statements(policy) for r in as_list(s["Resource"])}
        device_policy = json.loads(fleet.template.inputs["templateBody"])["Resources"]["policy"][
            "Properties"]["PolicyName"]
        for action in PROVISIONING_THING_ACTIONS:
            assert allowed(policy, action, f"{iot}:thing/SN-1")
        for action in PROVISIONING_CERTIFICATE_ACTIONS:
            assert allowed(policy, action, f"{iot}:cert/abc")
        assert allowed(policy, "iot:AttachThingPrincipal", f"{iot}:cert/abc",
                       {"iot:thingArn": f"{iot}:thing/SN-1"})
        assert allowed(policy, "iot:GetPolicy", f"{iot}:policy/{device_policy}")
        assert not allowed(policy, "iot:GetPolicy", f"{iot}:policy/admin")
        for action in ("iot:CreatePolicy", "iot:DeleteThing", "iot:AddThingToThingGroup",
                       "iot:RegisterCertificate", "iot:DetachPolicy", "iot:Publish"):
            assert not allowed(policy, action, f"{iot}:thing/SN-1"), action
            assert not allowed(policy, action, f"{iot}:cert/abc"), action
        assert not allowed(policy, "iot:CreateThing",
                           f"arn:aws:iot:ap-south-1:{ACCOUNT_ID}:thing/SN-1")


def test_claim_policy_allows_only_this_templates_provisioning_topics(
        stack: tuple[str, StackGraph, list[str]]) -> None:
    for fleet in fleets(stack):
        iot = f"arn:aws:iot:{fleet.region}:{ACCOUNT_ID}"
        policy = fleet.claim_policy
        prefix = fleet.hook.inputs["environment"]["variables"]["CLAIM_CLIENT_ID_PREFIX"]
        name = fleet.template_name
        assert allowed(policy, "iot:Connect", f"{iot}:client/{prefix}SN-1")
        assert not allowed(policy, "iot:Connect", f"{iot}:client/SN-1")  # a device's id
        for api in ("$aws/certificates/create", "$aws/certificates/create-from-csr",
                    f"$aws/provisioning-templates/{name}/provision"):
            for fmt in ("json", "cbor"):
                assert allowed(policy, "iot:Publish", f"{iot}:topic/{api}/{fmt}")
                for reply in ("accepted", "rejected"):
                    assert allowed(policy, "iot:Subscribe", f"{iot}:topicfilter/{api}/{fmt}/{reply}")
                    assert allowed(policy, "iot:Receive", f"{iot}:topic/{api}/{fmt}/{reply}")
        for topic in ("$aws/provisioning-templates/other/provision/json", "dt/iotmr/SN-1/x",
                      "$aws/things/SN-1/shadow/update", "$aws/events/presence/connected/SN-1"):
            assert not allowed(policy, "iot:Publish", f"{iot}:topic/{topic}"), topic
            assert not allowed(policy, "iot:Subscribe", f"{iot}:topicfilter/{topic}"), topic
        for action in ("iot:UpdateThingShadow", "iot:GetThingShadow", "iot:RetainPublish"):
            assert not allowed(policy, action, f"{iot}:topic/$aws/certificates/create/json")


def test_hook_and_recorder_roles_touch_only_fleet_items_of_the_shared_table(
        stack: tuple[str, StackGraph, list[str]]) -> None:
    for fleet in fleets(stack):
        provisioning = fleet.table("-cvm-provisioning")
        inventory = fleet.table("-device-inventory")
        arn = lambda table: f"arn:aws:dynamodb:{fleet.region}:{ACCOUNT_ID}:table/{table.inputs['name']}"  # noqa: E731
        fleet_key = {"dynamodb:LeadingKeys": ["fleet#SN-1"]}
        cvm_key = {"dynamodb:LeadingKeys": ["device-uid-123"]}
        hook_policy = fleet.role_policy(fleet.hook.inputs["role"])
        for action in ("dynamodb:BatchGetItem", "dynamodb:UpdateItem"):
            assert allowed(hook_policy, action, arn(provisioning), fleet_key), action
            assert not allowed(hook_policy, action, arn(provisioning), cvm_key), action
        assert allowed(hook_policy, "dynamodb:BatchGetItem", arn(inventory))
        assert allowed(hook_policy, "dynamodb:ConditionCheckItem", arn(inventory))
        for action in ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"):
            assert not allowed(hook_policy, action, arn(inventory)), action
        recorder_policy = fleet.role_policy(fleet.recorder.inputs["role"])
        assert allowed(recorder_policy, "dynamodb:UpdateItem", arn(provisioning), fleet_key)
        assert not allowed(recorder_policy, "dynamodb:UpdateItem", arn(provisioning), cvm_key)
        assert allowed(recorder_policy, "dynamodb:PutItem", arn(inventory))
        assert not allowed(recorder_policy, "dynamodb:DeleteItem", arn(inventory))
        assert allowed(recorder_policy, "dynamodb:GetRecords",
                       fleet.stream_arn(provisioning))


def test_recorder_is_fed_only_this_regions_claims(stack: tuple[str, StackGraph, list[str]]) -> None:
    for fleet in fleets(stack):
        trigger = fleet.recorder_trigger.inputs
        assert trigger["functionResponseTypes"] == ["ReportBatchItemFailures"]
        queue_arns = [q.outputs["arn"] for q in fleet.graph.of_type("aws:sqs/queue:Queue")
                      if q.region == fleet.region and "fleet-recorder" in q.inputs["name"]]
        assert trigger["destinationConfig"]["onFailure"]["destinationArn"] in queue_arns
        [pattern] = [json.loads(f["pattern"]) for f in trigger["filterCriteria"]["filters"]]
        image = {"kind": {"S": "FLEET_SERIAL"}, "state": {"S": "CLAIMED"},
                 "claimRegion": {"S": fleet.region}}
        assert filter_matches(pattern, {"eventName": "MODIFY", "dynamodb": {"NewImage": image}})
        for changed in ({"claimRegion": {"S": "elsewhere-1"}}, {"state": {"S": "PROVISIONED"}},
                        {"kind": {"S": "CVM_DEVICE"}}):
            assert not filter_matches(pattern, {"eventName": "MODIFY",
                                                "dynamodb": {"NewImage": {**image, **changed}}})
        assert not filter_matches(pattern, {"eventName": "REMOVE", "dynamodb": {"NewImage": image}})


def test_allow_list_conventions_agree_everywhere() -> None:
    assert fleet_component.ALLOW_LIST_KEY_PREFIX == hook_items.KEY_PREFIX == \
        recorder_logic.KEY_PREFIX == installer.ALLOW_LIST_KEY_PREFIX == "fleet#"
    assert fleet_component.ALLOW_LIST_KIND == hook_items.KIND == recorder_logic.KIND == \
        installer.ALLOW_LIST_KIND
    assert fleet_component.CLAIMED_STATE == hook_items.CLAIMED == recorder_logic.CLAIMED == \
        installer.CLAIMED_STATE
    assert hook_items.ALLOWED == recorder_logic.ALLOWED == installer.ALLOWED_STATE
    assert (hook_items.PROVISIONED, hook_items.CONFLICT) == \
        (recorder_logic.PROVISIONED, recorder_logic.CONFLICT)
    assert installer.INSTALLERS_GROUP == fleet_component.INSTALLERS_GROUP


def test_template_names_fit_the_36_character_limit() -> None:
    assert template_name("iotmr-prod-ap-southeast-2") == "iotmr-prod-ap-southeast-2-fleet"
    long = template_name("a-very-long-application-name-prod-ap-southeast-2")
    assert len(long) == 36 and long == template_name("a-very-long-application-name-prod-ap-southeast-2")
    assert long != template_name("a-very-long-application-name-prod-ap-southeast-1")


def test_settings_default_and_every_problem_reported() -> None:
    problems: list[tuple[str, str]] = []
    report = lambda field, message: problems.append((field, message))  # noqa: E731
    assert parse_settings(None, report) == FleetSettings() and problems == []
    parsed = parse_settings({"passwordMinimumLength": 16, "claimClientIdPrefix": "claim_"}, report)
    assert (parsed.password_minimum_length, parsed.claim_client_id_prefix) == (16, "claim_")
    assert problems == []
    parse_settings({"passwordMinimumLength": 8, "hookBudgetMilliseconds": 4800,
                    "claimClientIdPrefix": "bad prefix/", "claimRetryAfterSeconds": True,
                    "colour": "blue"}, report)
    assert sorted(f for f, _ in problems) == ["claimClientIdPrefix", "claimRetryAfterSeconds",
                                             "colour", "hookBudgetMilliseconds",
                                             "passwordMinimumLength"]
    problems.clear()
    parse_settings(["not", "an", "object"], report)
    assert problems and problems[0][0] == ""


def test_settings_reach_the_resources() -> None:
    graph = evaluate_program(PROJECT_DIR, "dev", config_overrides={
        "iot-multi-region:fleetProvisioning": {"passwordMinimumLength": 20,
                                               "claimClientIdPrefix": "claim_",
                                               "hookBudgetMilliseconds": 2500}})
    fleet = DeclaredFleet(graph, configured_regions("dev")[0])
    assert fleet.user_pool.inputs["passwordPolicy"]["minimumLength"] == 20
    variables = fleet.hook.inputs["environment"]["variables"]
    assert (variables["CLAIM_CLIENT_ID_PREFIX"], variables["HOOK_BUDGET_MS"]) == ("claim_", "2500")
    iot = f"arn:aws:iot:{fleet.region}:{ACCOUNT_ID}"
    assert allowed(fleet.claim_policy, "iot:Connect", f"{iot}:client/claim_SN-1")
    assert not allowed(fleet.claim_policy, "iot:Connect", f"{iot}:client/provision-SN-1")
    assert document(fleet.claim_policy)  # parsed
