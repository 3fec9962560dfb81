"""Device Defender audits in every region through the region's own aws-native provider
(mocks): the account singleton as configured, a daily audit of this design's checks,
least-privilege roles, opt-in mitigations."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.audit.checks import CHECKS, enabled_checks
from components.audit.settings import AuditSettings, parse_settings
from tests.support.stacks import configured_regions
from tools.harness import RecordedResource, StackGraph, evaluate_program

CONFIG = "aws-native:iot:AccountAuditConfiguration"
SCHEDULED = "aws-native:iot:ScheduledAudit"
MITIGATION = "aws-native:iot:MitigationAction"
NATIVE_PROVIDER = "pulumi:providers:aws-native"
# AWS's managed policy for the audit role (its document, from the AWS managed policy reference).
MANAGED_AUDIT_ACTIONS = {
    "iot:GetLoggingOptions", "iot:GetV2LoggingOptions", "iot:ListCACertificates",
    "iot:ListCertificates", "iot:DescribeCACertificate", "iot:DescribeCertificate",
    "iot:ListPolicies", "iot:GetPolicy", "iot:GetEffectivePolicies", "iot:ListRoleAliases",
    "iot:DescribeRoleAlias", "cognito-identity:GetIdentityPoolRoles", "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies", "iam:GetRole", "iam:GetPolicy", "iam:GetPolicyVersion",
    "iam:GetRolePolicy", "iam:GenerateServiceLastAccessedDetails",
    "iam:GetServiceLastAccessedDetails"}


def regional_stack_region(graph: StackGraph, resource: RecordedResource) -> str:
    [stack] = [a for a in graph.ancestors(resource) if a.type == "iotmr:regional:RegionalStack"]
    return stack.name.removeprefix("region-")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_native_resource_uses_its_regions_own_provider(stack, request):
    graph = request.getfixturevalue(f"{stack}_graph")
    providers = {p.urn: p for p in graph.of_type(NATIVE_PROVIDER)}
    assert sorted(p.inputs["region"] for p in providers.values()) == sorted(configured_regions(stack))
    native = [r for r in graph.resources if r.type.startswith("aws-native:")]
    assert native
    for resource in native:
        assert resource.provider, f"{resource.name} uses the default aws-native provider"
        provider = providers[resource.provider.rsplit("::", 1)[0]]
        assert resource.region == provider.inputs["region"] == regional_stack_region(graph, resource)


def test_the_harness_places_a_native_resource_by_its_provider():
    import pulumi
    import pulumi_aws_native as aws_native

    from tools.harness import evaluate

    def program() -> None:
        provider = aws_native.Provider("p", region="ap-southeast-2")
        aws_native.iot.ScheduledAudit("pinned", frequency="DAILY", target_check_names=["X"],
                                      opts=pulumi.ResourceOptions(provider=provider))
        aws_native.iot.ScheduledAudit("unpinned", frequency="DAILY", target_check_names=["X"])

    graph = evaluate(program)
    assert graph.named("pinned").region == "ap-southeast-2"
    assert graph.named("unpinned").region is None


def _configuration(graph: StackGraph, region: str) -> RecordedResource:
    [config] = [c for c in graph.of_type(CONFIG) if c.region == region]
    return config


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_managed_configuration_states_every_check_and_is_retained(stack, request):
    graph = request.getfixturevalue(f"{stack}_graph")
    for region in configured_regions(stack):
        config = _configuration(graph, region)
        checks = config.inputs["auditCheckConfigurations"]
        assert len(checks) == len(CHECKS) == 17  # every check AWS has, on or off
        on = {name for name, value in checks.items() if value["enabled"]}
        assert len(on) == len(enabled_checks(certificate_age=False)) == 14
        assert "iotRoleAliasOverlyPermissiveCheck" not in on
        assert checks["deviceCertificateExpiringCheck"]["configuration"] == {
            "certExpirationThresholdInDays": "30"}
        assert config.options["retainOnDelete"] is True and not config.options["importId"]
        [audit_role] = [r for r in graph.of_type("aws:iam/role:Role")
                        if r.inputs.get("name") == f"iotmr-{stack}-{region}-audit"]
        assert config.inputs["roleArn"] == audit_role.outputs["arn"]
        [topic] = [t for t in graph.of_type("aws:sns/topic:Topic") if t.region == region]
        target = config.inputs["auditNotificationTargetConfigurations"]["sns"]
        assert target["targetArn"] == topic.outputs["arn"] and target["enabled"] is True


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_daily_audit_of_exactly_the_checks_the_configuration_enables(stack, request):
    graph = request.getfixturevalue(f"{stack}_graph")
    for region in configured_regions(stack):
        [audit] = [a for a in graph.of_type(SCHEDULED) if a.region == region]
        assert audit.inputs["frequency"] == "DAILY"
        assert audit.inputs["scheduledAuditName"] == f"iotmr-{stack}-{region}-daily"
        checks = _configuration(graph, region).inputs["auditCheckConfigurations"]
        by_field = {c.field.replace("_", ""): c.name for c in CHECKS}
        enabled = {by_field[name.lower()] for name, value in checks.items() if value["enabled"]}
        assert set(audit.inputs["targetCheckNames"]) == enabled
        assert {"key": "environment", "value": stack} in audit.inputs["tags"]


def _role_policy(graph: StackGraph, role_name: str) -> dict[str, Any]:
    [role] = [r for r in graph.of_type("aws:iam/role:Role") if r.inputs.get("name") == role_name]
    [policy] = [p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy")
                if p.inputs["role"] == role.id]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "iot.amazonaws.com"}]
    assert trust[0]["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    return json.loads(policy.inputs["policy"])


def test_audit_role_reads_a_scoped_subset_of_the_managed_policy(dev_graph):
    region = "eu-west-1"
    statements = _role_policy(dev_graph, f"iotmr-dev-{region}-audit")["Statement"]
    actions = {a for s in statements for a in s["Action"]}
    assert actions <= MANAGED_AUDIT_ACTIONS
    # Only the role-alias checks (off: no role aliases here) need these.
    assert not actions & {"iot:ListRoleAliases", "iot:DescribeRoleAlias",
                          "iam:GenerateServiceLastAccessedDetails"}
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in statements)
    for statement in statements:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if resources == ["*"]:
            assert all(a.split(":")[1].startswith(("List", "Get")) and "Logging" in a
                       or a.split(":")[1].startswith("List") for a in statement["Action"])
        else:
            assert all(f":{region}:123456789012:" in r or r.startswith("arn:aws:iam::")
                       for r in resources), statement


def test_notification_role_may_only_publish_to_the_alert_topic(dev_graph):
    region = "us-west-2"
    statements = _role_policy(dev_graph, f"iotmr-dev-{region}-audit-notify")["Statement"]
    [publish] = [s for s in statements if s["Action"] == "sns:Publish"]
    assert publish["Resource"] == f"arn:aws:sns:{region}:123456789012:iotmr-dev-{region}-alerts"
    [kms] = [s for s in statements if s["Sid"] == "EncryptFindings"]
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": f"sns.{region}.amazonaws.com"}}


def test_mitigations_are_opt_in(dev_graph, prod_graph):
    assert dev_graph.of_type(MITIGATION) == []
    for region in configured_regions("prod"):
        [action] = [m for m in prod_graph.of_type(MITIGATION) if m.region == region]
        assert action.inputs["actionParams"] == {
            "updateDeviceCertificateParams": {"action": "DEACTIVATE"}}
        role_name = f"iotmr-prod-{region}-audit-fix-cert"
        assert len(role_name) <= 64
        [statement] = _role_policy(prod_graph, role_name)["Statement"]
        assert statement["Action"] == "iot:UpdateCertificate"
        assert statement["Resource"] == f"arn:aws:iot:{region}:123456789012:cert/*"


def _dev(**overrides: Any) -> StackGraph:
    return evaluate_program(".", "dev", config_overrides={"regions": ["eu-west-1"], **overrides})


def test_adopt_imports_the_existing_configuration_as_it_is():
    graph = _dev(iotAccountSettings={"auditConfiguration": "adopt"})
    config = _configuration(graph, "eu-west-1")
    assert config.options["importId"] == "123456789012"
    assert config.options["retainOnDelete"] is True
    assert set(config.options["ignoreChanges"]) == {
        "auditCheckConfigurations", "auditNotificationTargetConfigurations", "roleArn"}
    assert not [m for _, m in graph.diagnostics if "Device Defender audit checks" in m]


def test_leave_declares_no_configuration_but_still_the_daily_audit():
    graph = _dev(iotAccountSettings={"auditConfiguration": "leave"})
    assert graph.of_type(CONFIG) == []
    assert len(graph.of_type(SCHEDULED)) == 1


def test_manage_warns_which_checks_it_turns_off_and_reset_on_delete_is_honoured():
    graph = _dev(audit={"resetOnDelete": True, "deviceCertificateAgeDays": 730})
    config = _configuration(graph, "eu-west-1")
    assert config.options["retainOnDelete"] is False
    assert config.inputs["auditCheckConfigurations"]["deviceCertificateAgeCheck"] == {
        "enabled": True, "configuration": {"certAgeThresholdInDays": "730"}}
    [warning] = [m for level, m in graph.diagnostics if "Device Defender audit checks" in m]
    assert "IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK" in warning
    assert "DEVICE_CERTIFICATE_AGE_CHECK" not in warning


@pytest.mark.parametrize("raw,expected,problem", [
    (None, AuditSettings(), None),
    ({"deviceCertificateExpiringDays": 45, "mitigations": ["deactivateRevokedCaCertificates"]},
     AuditSettings(device_certificate_expiring_days=45,
                   mitigations=("deactivateRevokedCaCertificates",)), None),
    ({"deviceCertificateExpiringDays": 7}, AuditSettings(), "from 30 to 3652"),
    ({"mitigations": ["quarantine"]}, AuditSettings(), "'quarantine' is not a mitigation"),
    ({"resetOnDelete": "maybe"}, AuditSettings(), "must be true or false"),
    ({"schedule": "weekly"}, AuditSettings(), "unknown setting"),
])
def test_audit_settings(raw, expected, problem):
    reported: list[tuple[str, str]] = []
    assert parse_settings(raw, lambda f, m: reported.append((f, m))) == expected
    if problem is None:
        assert reported == []
    else:
        assert len(reported) == 1 and problem in reported[0][1], reported
