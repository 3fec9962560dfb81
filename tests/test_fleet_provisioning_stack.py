"""Fleet provisioning in every region of the real stacks (harness mocks): the declared
resources, their wiring, and what each IAM / IoT policy allows, evaluated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from components.fleet_provisioning import component as fleet_component
from components.fleet_provisioning.iam_documents import (
    PROVISIONING_CERTIFICATE_ACTIONS,
    PROVISIONING_THING_ACTIONS,
)
from components.fleet_provisioning.settings import FleetSettings, parse_settings
from components.fleet_provisioning.template import TEMPLATE_NAME_MAX, template_name
from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.fleet_allow_list import Attr, State
from tests.support.stacks import PROJECT_DIR, configured_regions
from tools import installer
from tools.harness import ACCOUNT_ID, GLOBAL, RecordedResource, StackGraph, evaluate_program
from tools.local.emulation.policy import allowed, document, trust_allows
from tools.local.emulation.streams import matches

TEMPLATE = "aws:iot/provisioningTemplate:ProvisioningTemplate"
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


def only(resources: list[RecordedResource], what: str) -> RecordedResource:
    if len(resources) != 1:
        raise LookupError(f"{what}: expected one, the graph declares "
                          f"{[r.name for r in resources] or 'none'}")
    return resources[0]


@dataclass(frozen=True)
class DeclaredFleet:
    """One region's fleet-provisioning resources, found by following the declared wiring."""

    graph: StackGraph
    region: str

    def _of(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.graph.of_type(type_) if r.region in (self.region, GLOBAL)]

    def _by_arn(self, type_: str, arn: str) -> RecordedResource:
        return only([r for r in self._of(type_) if r.outputs.get("arn") == arn], f"{type_} {arn}")

    def _here(self, type_: str, what: str, **inputs: Any) -> RecordedResource:
        return only([r for r in self.graph.of_type(type_) if r.region == self.region
                     and all(r.inputs.get(k) == v for k, v in inputs.items())], what)

    @property
    def template(self) -> RecordedResource:
        return self._here(TEMPLATE, "template")

    @property
    def template_name(self) -> str:
        return str(self.template.inputs["name"])

    @property
    def template_arn(self) -> str:
        return str(self.template.outputs["arn"])

    @property
    def template_body(self) -> dict[str, Any]:
        return dict(json.loads(self.template.inputs["templateBody"]))

    @property
    def hook(self) -> RecordedResource:
        return self._by_arn("aws:lambda/function:Function",
                            self.template.inputs["preProvisioningHook"]["targetArn"])

    @property
    def hook_permissions(self) -> list[RecordedResource]:
        names = (self.hook.outputs["name"], self.hook.outputs["arn"])
        return [p for p in self.graph.of_type("aws:lambda/permission:Permission")
                if p.region == self.region and p.inputs.get("function") in names]

    def role(self, arn: str) -> RecordedResource:
        return self._by_arn("aws:iam/role:Role", arn)

    def role_policy(self, arn: str) -> dict[str, Any]:
        role = self.role(arn)
        return dict(json.loads(only([p for p in self.graph.of_type("aws:iam/rolePolicy:RolePolicy")
                                     if p.inputs.get("role") == role.id],
                                    f"inline policy of {role.name}").inputs["policy"]))

    @property
    def provisioning_role(self) -> RecordedResource:
        return self.role(self.template.inputs["provisioningRoleArn"])

    @property
    def provisioning_policy(self) -> dict[str, Any]:
        return self.role_policy(self.template.inputs["provisioningRoleArn"])

    def iot_policy_named(self, name: str) -> RecordedResource:
        return self._here("aws:iot/policy:Policy", f"IoT policy {name}", name=name)

    @property
    def device_policy_name(self) -> str:
        names = [r["Properties"]["PolicyName"] for r in self.template_body["Resources"].values()
                 if r["Type"] == "AWS::IoT::Policy"]
        if len(names) != 1:
            raise LookupError(f"the template names {len(names)} policies")
        return str(names[0])

    @property
    def user_pool(self) -> RecordedResource:
        return self._here("aws:cognito/userPool:UserPool", "user pool")

    @property
    def user_pool_client(self) -> RecordedResource:
        return self._here("aws:cognito/userPoolClient:UserPoolClient", "app client",
                          userPoolId=self.user_pool.id)

    @property
    def groups(self) -> list[RecordedResource]:
        return [g for g in self.graph.of_type("aws:cognito/userGroup:UserGroup")
                if g.region == self.region and g.inputs["userPoolId"] == self.user_pool.id]

    @property
    def identity_pool(self) -> RecordedResource:
        return self._here("aws:cognito/identityPool:IdentityPool", "identity pool")

    @property
    def role_attachment(self) -> RecordedResource:
        return self._here("aws:cognito/identityPoolRoleAttachment:IdentityPoolRoleAttachment",
                          "identity pool role attachment", identityPoolId=self.identity_pool.id)

    def table(self, suffix: str) -> RecordedResource:
        return only([t for t in self.graph.of_type("aws:dynamodb/table:Table")
                     if str(t.inputs["name"]).endswith(suffix)], f"table {suffix}")

    def stream_arn(self, table: RecordedResource) -> str:
        if self.region == table.region:
            return str(table.outputs["streamArn"])
        return next(str(r["streamArn"]) for r in table.outputs["replicas"]
                    if r["regionName"] == self.region)

    @property
    def recorder_trigger(self) -> RecordedResource:
        return self._here("aws:lambda/eventSourceMapping:EventSourceMapping", "recorder trigger",
                          eventSourceArn=self.stream_arn(self.table("-cvm-provisioning")))

    @property
    def recorder(self) -> RecordedResource:
        return self._by_arn("aws:lambda/function:Function",
                            self.recorder_trigger.inputs["functionName"])


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
        # AWS does not document which ARN IoT presents when it invokes a hook, so the
        # permission may not depend on it: this account only ("source-account").
        assert "sourceArn" not in permission.inputs
        assert permission.inputs["sourceAccount"] == ACCOUNT_ID
        assert "statementId" not in permission.inputs  # provider-named: replacements never collide
        assert fleet.template_arn == \
            f"arn:aws:iot:{fleet.region}:{ACCOUNT_ID}:provisioningtemplate/{template['name']}"
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


def test_the_stack_declares_no_claim_policy(stack: tuple[str, StackGraph, list[str]]) -> None:
    """A claim from CreateProvisioningClaim cannot carry a policy of ours (README, "What a
    claim may do"): none is declared. What the emulation lets a claim do (its template's
    provisioning API only) is tested with the emulation (docs/emulation.md)."""
    _, graph, _ = stack
    assert not [p.name for p in graph.of_type("aws:iot/policy:Policy") if "claim" in p.name]


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
        # the recorder reads who holds the entry now (a superseded claim is evicted)
        assert allowed(recorder_policy, "dynamodb:GetItem", arn(provisioning), fleet_key)
        assert not allowed(recorder_policy, "dynamodb:GetItem", arn(provisioning), cvm_key)


def test_the_hook_reads_this_regions_registry_and_changes_nothing_there(
        stack: tuple[str, StackGraph, list[str]]) -> None:
    """Before a stale claim passes on, the hook asks the registry (read only, this region)."""
    for fleet in fleets(stack):
        hook_policy = fleet.role_policy(fleet.hook.inputs["role"])
        iot = f"arn:aws:iot:{fleet.region}:{ACCOUNT_ID}"
        assert allowed(hook_policy, "iot:ListThingPrincipals", f"{iot}:thing/SN-1")
        assert allowed(hook_policy, "iot:DescribeCertificate", f"{iot}:cert/{'a' * 64}")
        other = "us-east-2" if fleet.region != "us-east-2" else "eu-west-1"
        assert not allowed(hook_policy, "iot:ListThingPrincipals",
                           f"arn:aws:iot:{other}:{ACCOUNT_ID}:thing/SN-1")
        for action in ("iot:UpdateCertificate", "iot:AttachThingPrincipal",
                       "iot:DetachThingPrincipal", "iot:DeleteThing", "iot:CreateThing"):
            assert not allowed(hook_policy, action, f"{iot}:cert/{'a' * 64}"), action
            assert not allowed(hook_policy, action, f"{iot}:thing/SN-1"), action


def test_recorder_is_fed_only_this_regions_claims(stack: tuple[str, StackGraph, list[str]]) -> None:
    for fleet in fleets(stack):
        trigger = fleet.recorder_trigger.inputs
        assert trigger["functionResponseTypes"] == ["ReportBatchItemFailures"]
        queue_arns = [q.outputs["arn"] for q in fleet.graph.of_type("aws:sqs/queue:Queue")
                      if q.region == fleet.region and "fleet-recorder" in q.inputs["name"]]
        assert trigger["destinationConfig"]["onFailure"]["destinationArn"] in queue_arns
        [pattern] = [json.loads(f["pattern"]) for f in trigger["filterCriteria"]["filters"]]
        image = {Attr.KIND: {"S": allow_list.KIND}, Attr.STATE: {"S": State.CLAIMED},
                 Attr.CLAIM_REGION: {"S": fleet.region}}
        assert matches([pattern], {"eventName": "MODIFY", "dynamodb": {"NewImage": image}})
        for changed in ({"claimRegion": {"S": "elsewhere-1"}}, {"state": {"S": "PROVISIONED"}},
                        {"kind": {"S": "CVM_DEVICE"}},
                        # the records of the serial a certificate or a claim holds
                        {"kind": {"S": allow_list.CERTIFICATE_KIND}},
                        {"kind": {"S": allow_list.CLAIM_KIND}}):
            assert not matches([pattern], {"eventName": "MODIFY",
                                                "dynamodb": {"NewImage": {**image, **changed}}})
        assert not matches([pattern], {"eventName": "REMOVE", "dynamodb": {"NewImage": image}})


def test_the_installer_tool_names_the_declared_group() -> None:
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
                    "claimClientIdPrefix": "bad prefix/", "claimRetryAfterSeconds": 600,
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
