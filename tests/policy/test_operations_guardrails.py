"""The operations guardrails with the engine's provider argument: aws-native resources on an
explicit regional provider pass, the default provider or a foreign region fail; the scheduled
audit is matched to its own region's configuration."""

from __future__ import annotations

from pulumi_policy import PolicyProviderResource, PolicyResource

from tools.policy_check import wire_props
from policy.guardrails.operations import check_property

from .operations_cases import REQUIRED, SCHEDULED, audit_configuration, checks
from .support import BY_NAME, _config, _options, resource_violations, urn

NAME = "aws-native-explicit-regional-provider"
PROPS = {"frequency": "DAILY", "targetCheckNames": ["LOGGING_DISABLED_CHECK"]}


def native_provider(region: str | None, name: str = "region-eu-west-1-aws-native") -> PolicyProviderResource:
    props = {"region": region} if region else {}
    return PolicyProviderResource("pulumi:providers:aws-native", wire_props(props),
                                  urn("pulumi:providers:aws-native", name), name)


def test_explicit_regional_provider_passes():
    assert resource_violations(NAME, SCHEDULED, PROPS, prov=native_provider("eu-west-1")) == []


def test_default_or_regionless_or_foreign_provider_fails():
    default = native_provider("eu-west-1", name="default_1_84_0")
    assert "default aws-native provider" in resource_violations(NAME, SCHEDULED, PROPS, prov=default)[0]
    assert "names no region" in resource_violations(NAME, SCHEDULED, PROPS, prov=native_provider(None))[0]
    [foreign] = resource_violations(NAME, SCHEDULED, PROPS, prov=native_provider("sa-east-1"),
                                    config={"allowedRegions": ["eu-west-1"]})
    assert "lands in sa-east-1" in foreign


def test_check_property_names_match_the_cloud_control_schema():
    import pulumi_aws_native as aws_native

    from components.audit.checks import CHECKS

    # The SDK's snake_case argument is Cloud Control's camelCase property.
    for check in CHECKS:
        camel = check.field.split("_")[0] + "".join(w.title() for w in check.field.split("_")[1:])
        assert check_property(check.name).lower() == camel.lower(), check.name
    assert hasattr(aws_native.iot.AccountAuditConfigurationAuditCheckConfigurationsArgs,
                   "io_t_policy_potential_mis_configuration_check")
    assert check_property("IOT_POLICY_POTENTIAL_MIS_CONFIGURATION_CHECK") == \
        "ioTPolicyPotentialMisConfigurationCheck"


def test_scheduled_audit_is_judged_against_its_own_regions_configuration():
    from pulumi_policy import StackValidationArgs

    def resource(type_: str, props: dict, region: str, logical: str) -> PolicyResource:
        return PolicyResource(type_, wire_props(props), urn(type_, logical), logical, _options(),
                              native_provider(region, f"region-{region}-aws-native"), None, [], {})

    narrow = audit_configuration(auditCheckConfigurations=checks(*REQUIRED[1:]))
    resources = [
        resource("aws-native:iot:AccountAuditConfiguration", audit_configuration(), "eu-west-1", "c1"),
        resource("aws-native:iot:AccountAuditConfiguration", narrow, "us-west-2", "c2"),
        resource(SCHEDULED, {"targetCheckNames": REQUIRED}, "eu-west-1", "a1"),
        resource(SCHEDULED, {"targetCheckNames": REQUIRED}, "us-west-2", "a2"),
    ]
    policy = BY_NAME["iot-scheduled-audit-checks-enabled"]
    found: list[tuple[str, str | None]] = []
    policy.validate(StackValidationArgs(resources, _config(policy.name, None), {}),
                    lambda message, where=None: found.append((message, where)))
    assert [(where, check_property(REQUIRED[0]) in message or REQUIRED[0] in message)
            for message, where in found] == [(resources[3].urn, True)]
