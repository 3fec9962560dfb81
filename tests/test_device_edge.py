"""The regional device edge, evaluated under mocks: dev, prod, 20 regions, imported certs."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import botocore.session
from botocore.model import StringShape
import pytest

from components.capabilities import CAPABILITIES
from components.config import ConfigError, StackConfig, parse_stack_config
from components.edge.component import IOT_LOG_GROUP_NAME
from components.edge.settings import IotAccountSettings
from components.edge.settings import parse as parse_account_settings
from tests.support.snapshots import TWENTY_REGION_OVERRIDES
from tools.harness import GLOBAL, RecordedResource, StackGraph, evaluate_program

EDGE = "iotmr:edge:DeviceEdge"
DOMAIN_CONFIG = "aws:iot/domainConfiguration:DomainConfiguration"
CA = "aws:iot/caCertificate:CaCertificate"
RECORD = "aws:route53/record:Record"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
LOGGING = "aws:iot/loggingOptions:LoggingOptions"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ACM_CERT = "aws:acm/certificate:Certificate"
ACM_VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
EVENTS = "aws:iot/eventConfigurations:EventConfigurations"
IOT_POLICY = "aws:iot/policy:Policy"

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEV_REGIONS = ("eu-west-1", "us-west-2")
IMPORTED_ARNS = {
    region: f"arn:aws:acm:{region}:123456789012:certificate/{i:08d}-1111-2222-3333-444455556666"
    for i, region in enumerate(DEV_REGIONS)
}
VALIDATION_ARN = ("arn:aws:acm:us-west-2:123456789012:certificate/"
                  "99999999-1111-2222-3333-444455556666")


def stack_config(graph_stack: str, **overrides: Any) -> StackConfig:
    """The StackConfig the program parsed for a stack (re-parsed from its YAML)."""
    from tools.harness import load_program_stack

    spec = load_program_stack(PROJECT_DIR, graph_stack)
    prefix = f"{spec.project}:"
    raw = {k[len(prefix):]: v for k, v in spec.config.items() if k.startswith(prefix)}
    raw.update(overrides)
    return parse_stack_config(raw, capabilities=CAPABILITIES, project_dir=PROJECT_DIR)


@pytest.fixture(scope="module")
def imported_graph() -> StackGraph:
    return evaluate_program(PROJECT_DIR, "dev", config_overrides={
        "serverCertificateMode": "imported",
        "importedServerCertificateArns": IMPORTED_ARNS,
        "importedValidationCertificateArns": {"us-west-2": VALIDATION_ARN},
        "tlsSecurityPolicy": "IoTSecurityPolicy_TLS13_1_3_2022_10",
    })


def edge_region(graph: StackGraph, resource: RecordedResource) -> str:
    """The region of the DeviceEdge a resource belongs to (also for global route53/iam)."""
    for ancestor in graph.ancestors(resource):
        if ancestor.type == EDGE:
            return ancestor.name.removeprefix("region-").removesuffix("-edge")
    raise AssertionError(f"{resource.name} is not inside a DeviceEdge")


def in_edge(graph: StackGraph, resource: RecordedResource) -> bool:
    return any(a.type == EDGE for a in graph.ancestors(resource))


def per_region(graph: StackGraph, type_: str) -> dict[str, list[RecordedResource]]:
    found: dict[str, list[RecordedResource]] = {}
    for resource in graph.of_type(type_):
        if in_edge(graph, resource):
            found.setdefault(edge_region(graph, resource), []).append(resource)
    return found


def one_per_region(graph: StackGraph, type_: str,
                   regions: tuple[str, ...] | list[str]) -> dict[str, RecordedResource]:
    found = per_region(graph, type_)
    assert sorted(found) == sorted(regions), f"{type_} regions {sorted(found)}"
    assert all(len(v) == 1 for v in found.values()), {k: len(v) for k, v in found.items()}
    return {region: resources[0] for region, resources in found.items()}


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's wire marker of a secret value


def plain(value: Any) -> Any:
    """A recorded input with its secret wrapper (if the provider marks it secret) removed."""
    if isinstance(value, dict) and SECRET_SIG in value:
        return value["value"]
    return value


def botocore_enum(service: str, shape: str) -> set[str]:
    """The values an AWS API accepts for an enum shape, from botocore's model."""
    found = botocore.session.get_session().get_service_model(service).shape_for(shape)
    assert isinstance(found, StringShape)
    return set(found.enum)


GRAPHS = ["dev", "prod", "twenty"]


@pytest.fixture(params=GRAPHS)
def any_graph(request: pytest.FixtureRequest) -> tuple[StackGraph, StackConfig]:
    if request.param == "twenty":
        graph = request.getfixturevalue("twenty_region_graph")
        return graph, stack_config("dev", **TWENTY_REGION_OVERRIDES)
    graph = request.getfixturevalue(f"{request.param}_graph")
    return graph, stack_config(request.param)


def test_every_region_has_one_domain_configuration_with_its_own_certificate(any_graph) -> None:
    graph, config = any_graph
    domains = one_per_region(graph, DOMAIN_CONFIG, config.regions)
    validations = one_per_region(graph, ACM_VALIDATION, config.regions)
    certificates = one_per_region(graph, ACM_CERT, config.regions)
    for region, domain in domains.items():
        inputs = domain.inputs
        assert inputs["serviceType"] == "DATA"
        assert inputs["domainName"] == config.device_domain
        assert inputs["status"] == "ENABLED"
        assert inputs["tlsConfig"] == {"securityPolicy": config.tls_security_policy}
        assert inputs["authenticationType"] == "AWS_X509"
        assert "validationCertificateArn" not in inputs  # ACM certs are publicly trusted
        certificate_arn = validations[region].inputs["certificateArn"]
        assert inputs["serverCertificateArns"] == [certificate_arn]
        assert certificate_arn.startswith(f"arn:aws:acm:{region}:")
        assert certificates[region].inputs["domainName"] == config.device_domain
        assert certificates[region].inputs["validationMethod"] == "DNS"


def test_every_region_registers_our_ca_for_auto_registration(any_graph) -> None:
    graph, config = any_graph
    for region, ca in one_per_region(graph, CA, config.regions).items():
        assert ca.inputs["certificateMode"] == "SNI_ONLY"
        assert ca.inputs["active"] is True
        assert ca.inputs["allowAutoRegistration"] is True
        assert plain(ca.inputs["caCertificatePem"]) == config.ca_certificate_pem
        assert "PRIVATE KEY" not in plain(ca.inputs["caCertificatePem"])
        assert "verificationCertificatePem" not in ca.inputs


def test_latency_records_cover_every_region_once_each_with_a_health_check(any_graph) -> None:
    graph, config = any_graph
    records = one_per_region(graph, RECORD, config.regions)
    all_checks = per_region(graph, HEALTH_CHECK)
    assert sorted(all_checks) == sorted(config.regions)
    checks = {region: next(c for c in found if c.inputs["type"] == "CALCULATED"
                           and c.inputs.get("childHealthchecks"))
              for region, found in all_checks.items()}
    alarms = one_per_region(graph, ALARM, config.regions)
    device_domain_records = [r for r in graph.of_type(RECORD)
                             if r.inputs["name"] == config.device_domain]
    assert sorted(device_domain_records, key=lambda r: r.urn) == \
        sorted(records.values(), key=lambda r: r.urn)
    identifiers = Counter(r.inputs["setIdentifier"] for r in device_domain_records)
    assert identifiers == Counter(config.regions)
    for region, record in records.items():
        inputs = record.inputs
        assert inputs["name"] == config.device_domain
        assert inputs["zoneId"] == config.hosted_zone_id
        assert inputs["type"] == "CNAME"
        assert inputs["ttl"] == 60
        assert inputs["setIdentifier"] == region
        assert inputs["latencyRoutingPolicies"] == [{"region": region}]
        [target] = inputs["records"]
        assert target.endswith(f"-ats.iot.{region}.amazonaws.com")
        assert inputs["healthCheckId"] == checks[region].id
        # Healthy only while every child is: the alarm check, the TCP check and the
        # operator's evacuation control.
        children = {c.inputs["type"]: c for c in all_checks[region] if c is not checks[region]}
        assert sorted(children) == ["CALCULATED", "CLOUDWATCH_METRIC", "TCP"]
        calculated = checks[region].inputs
        assert len(calculated["childHealthchecks"]) == 3
        assert calculated["childHealthThreshold"] == 3
        assert sorted(calculated["childHealthchecks"]) == sorted(c.id for c in children.values())
        tcp = children["TCP"].inputs
        assert tcp["fqdn"] == target and tcp["port"] == 8883
        check = children["CLOUDWATCH_METRIC"].inputs
        assert check["cloudwatchAlarmRegion"] == region
        assert check["cloudwatchAlarmName"] == alarms[region].inputs["name"]
        assert check["insufficientDataHealthStatus"] == "LastKnownStatus"
        alarm = alarms[region].inputs
        assert alarm["namespace"] == "AWS/IoT"
        assert alarm["metricName"] == "Connect.ServerError"
        assert alarm["statistic"] == "Sum"  # Route53 refuses extended statistics
        assert alarm["period"] >= 60       # and high-resolution alarms
        assert alarm["treatMissingData"] == "notBreaching"


def test_every_region_has_an_evacuation_control_pulumi_leaves_to_the_operator(any_graph) -> None:
    """Healthy by default (no children, threshold 0), `Inverted` only by the tool, whose
    ids the stack exports per region, beside the combined check's."""
    graph, config = any_graph
    for region, found in per_region(graph, HEALTH_CHECK).items():
        controls = [c for c in found if c.name.endswith("-edge-evacuation-control")]
        assert len(controls) == 1, region
        control = controls[0]
        assert control.inputs["type"] == "CALCULATED"
        assert control.inputs.get("childHealthchecks") in (None, [])
        assert control.inputs["childHealthThreshold"] == 0
        assert control.inputs.get("invertHealthcheck") is False
        assert "invertHealthcheck" in control.options.get("ignoreChanges", [])
        exported = graph.outputs["regions"][region]["evacuation"]["device"]
        assert exported["controlId"] == control.id
        combined = next(c for c in found if c.name.endswith("-edge-health-check"))
        assert exported["healthCheckId"] == combined.id
        assert control.id in combined.inputs["childHealthchecks"]


def test_latency_regions_and_alarm_regions_are_ones_route53_accepts(any_graph) -> None:
    graph, config = any_graph
    latency_regions = botocore_enum("route53", "ResourceRecordSetRegion")
    alarm_regions = botocore_enum("route53", "CloudWatchRegion")
    for record in graph.of_type(RECORD):
        for policy in record.inputs.get("latencyRoutingPolicies", []):
            assert policy["region"] in latency_regions
    alarm_checks = [c for c in graph.of_type(HEALTH_CHECK)
                    if c.inputs["type"] == "CLOUDWATCH_METRIC" and in_edge(graph, c)]
    assert len(alarm_checks) == len(config.regions)
    for check in alarm_checks:
        assert check.inputs["cloudwatchAlarmRegion"] in alarm_regions


def test_iot_logging_is_on_with_a_least_privilege_role(any_graph) -> None:
    graph, config = any_graph
    logging = one_per_region(graph, LOGGING, config.regions)
    roles = one_per_region(graph, ROLE, config.regions)
    role_policies = one_per_region(graph, ROLE_POLICY, config.regions)
    groups = one_per_region(graph, LOG_GROUP, config.regions)
    regional_keys = {r.region: r for r in graph.of_type("aws:kms/key:Key")
                     if (p := graph.by_urn().get(r.parent_urn or "")) is not None
                     and p.type == "iotmr:regional:RegionalStack"}
    for region in config.regions:
        options = logging[region].inputs
        assert options["defaultLogLevel"] in ("WARN", "INFO")
        assert not options.get("disableAllLogs")
        # Retained with the setting and provider-named (no collision when declared again).
        assert "name" not in roles[region].inputs
        assert options["roleArn"] == roles[region].outputs["arn"]
        assert logging[region].options["retainOnDelete"] and roles[region].options["retainOnDelete"]
        assert role_policies[region].options["retainOnDelete"]
        trust = json.loads(roles[region].inputs["assumeRolePolicy"])
        [statement] = trust["Statement"]
        assert statement["Principal"] == {"Service": "iot.amazonaws.com"}
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
        assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == \
            f"arn:aws:iot:{region}:123456789012:*"
        group_arn = f"arn:aws:logs:{region}:123456789012:log-group:{IOT_LOG_GROUP_NAME}"
        policy = json.loads(role_policies[region].inputs["policy"])
        assert policy["Statement"]
        for stmt in policy["Statement"]:
            assert stmt["Effect"] == "Allow"
            for action in stmt["Action"]:
                assert action.startswith("logs:") and "*" not in action
            for resource in stmt["Resource"]:
                assert resource.startswith(group_arn + ":"), resource
        granted = {a for s in policy["Statement"] for a in s["Action"]}
        assert {"logs:CreateLogStream", "logs:PutLogEvents"} <= granted
        assert "logs:CreateLogGroup" not in granted
        group = groups[region].inputs
        assert group["name"] == IOT_LOG_GROUP_NAME
        assert group["retentionInDays"] == config.log_retention_days
        assert group["kmsKeyId"] == regional_keys[region].outputs["arn"]


def test_every_edge_resource_lands_in_its_region(any_graph) -> None:
    graph, config = any_graph
    edges = graph.of_type(EDGE)
    assert len(edges) == len(config.regions)
    for resource in graph.custom_resources():
        if not in_edge(graph, resource):
            continue
        region = edge_region(graph, resource)
        if resource.module in ("iam", "route53"):
            assert resource.region == GLOBAL
        else:
            assert resource.region == region, f"{resource.name} lands in {resource.region}"


def test_event_configurations_turn_on_thing_and_certificate_events(any_graph) -> None:
    graph, config = any_graph
    valid = botocore_enum("iot", "EventType")
    for events in one_per_region(graph, EVENTS, config.regions).values():
        settings = events.inputs["eventConfigurations"]
        assert set(settings) <= valid
        assert settings["THING"] is True and settings["CERTIFICATE"] is True


def test_device_policy_exists_in_every_region_for_that_region(any_graph) -> None:
    graph, config = any_graph
    for region, policy in one_per_region(graph, IOT_POLICY, config.regions).items():
        document = json.loads(policy.inputs["policy"])
        for statement in document["Statement"]:
            for resource in statement["Resource"]:
                assert resource.startswith(f"arn:aws:iot:{region}:123456789012:")


def test_one_global_acm_validation_record_serves_every_region(any_graph) -> None:
    graph, config = any_graph
    # Outside every component: the global validation record (other capabilities, e.g. the
    # CVM's provisioning domain, own their records inside their components).
    validation_records = [r for r in graph.of_type(RECORD)
                          if r.parent_urn is None or "DeviceDomainValidation" in r.parent_urn]
    assert len(validation_records) == 1
    [record] = validation_records
    assert record.inputs["type"] == "CNAME"
    assert record.inputs["zoneId"] == config.hosted_zone_id
    assert not record.inputs.get("setIdentifier")
    # The logical name does not depend on which region is primary.
    assert not any(region in record.name for region in config.regions)
    name = record.inputs["name"].rstrip(".")
    assert name.endswith("." + config.device_domain)
    for validation in graph.of_type(ACM_VALIDATION):
        if in_edge(graph, validation):
            assert validation.inputs["validationRecordFqdns"] == [name]


def test_imported_mode_uses_configured_certificates_and_requests_none(imported_graph) -> None:
    graph = imported_graph
    assert [r for r in graph.of_type(ACM_CERT) if in_edge(graph, r)] == []
    assert [r for r in graph.of_type(ACM_VALIDATION) if in_edge(graph, r)] == []
    assert graph.of_type("iotmr:edge:DeviceDomainValidation") == []
    domains = one_per_region(graph, DOMAIN_CONFIG, DEV_REGIONS)
    for region, domain in domains.items():
        assert domain.inputs["serverCertificateArns"] == [IMPORTED_ARNS[region]]
        assert domain.inputs["tlsConfig"] == {
            "securityPolicy": "IoTSecurityPolicy_TLS13_1_3_2022_10"}
    assert domains["us-west-2"].inputs["validationCertificateArn"] == VALIDATION_ARN
    assert "validationCertificateArn" not in domains["eu-west-1"].inputs
    # DNS still routes every region.
    records = one_per_region(graph, RECORD, DEV_REGIONS)
    assert sorted(r.inputs["setIdentifier"] for r in records.values()) == sorted(DEV_REGIONS)


def test_regional_stack_exposes_what_jitr_needs(dev_graph) -> None:
    cas = one_per_region(dev_graph, CA, DEV_REGIONS)
    for region, outputs in dev_graph.outputs["regions"].items():
        assert outputs["caCertificateId"] == cas[region].id
        assert outputs["devicePolicyName"] == "iotmr-dev-device"


# --- config: importedValidationCertificateArns --------------------------------------------

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)


def parse_raw(**changes: Any) -> StackConfig:
    raw: dict[str, Any] = {
        "appName": "iotmr", "environment": "dev", "regions": list(DEV_REGIONS),
        "primaryRegion": "eu-west-1", "deviceDomain": "iot.example.com",
        "hostedZoneId": "Z0123456789ABCDEFGHIJ",
        "caCertificatePemFile": "certs/example-intermediate-ca.pem",
        "serverCertificateMode": "imported", "importedServerCertificateArns": IMPORTED_ARNS,
    }
    raw.update(changes)
    return parse_stack_config(raw, capabilities=CAPABILITIES, project_dir=PROJECT_DIR,
                              now=NOW)


def test_validation_certificates_parse_per_region() -> None:
    config = parse_raw(importedValidationCertificateArns={"us-west-2": VALIDATION_ARN})
    assert config.imported_validation_certificate_arns == {"us-west-2": VALIDATION_ARN}
    assert parse_raw().imported_validation_certificate_arns == {}


BAD_VALIDATION: list[tuple[str, dict[str, Any], str]] = [
    ("not a map", {"importedValidationCertificateArns": ["x"]}, "must be a map"),
    ("acm mode", {"serverCertificateMode": "acm", "importedServerCertificateArns": {},
                  "importedValidationCertificateArns": {"us-west-2": VALIDATION_ARN}},
     "only used with serverCertificateMode 'imported'"),
    ("unknown region", {"importedValidationCertificateArns": {"eu-central-1": VALIDATION_ARN}},
     "is not in regions"),
    ("not an ARN", {"importedValidationCertificateArns": {"us-west-2": "my-cert"}},
     "not an ACM certificate ARN"),
    ("ARN of another region", {"importedValidationCertificateArns": {
        "eu-west-1": VALIDATION_ARN}}, "request the certificate in 'eu-west-1'"),
]


@pytest.mark.parametrize("changes,phrase", [(c, p) for _, c, p in BAD_VALIDATION],
                         ids=[name for name, _, _ in BAD_VALIDATION])
def test_bad_validation_certificates_are_reported(changes: Mapping[str, Any],
                                                  phrase: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_raw(**changes)
    lines = [line for line in caught.value.problems if "importedValidationCertificateArns" in line]
    assert len(lines) == 1, caught.value.problems
    assert phrase in lines[0]


# --- real deploy and update safety ----------------------------------------------------------

def test_domain_configuration_is_deleted_before_it_is_replaced(any_graph) -> None:
    """Rotating the server certificate replaces the domain configuration; its fixed name
    (and AWS's one configuration per domain) rule out create-before-delete."""
    graph, config = any_graph
    for region, domain in one_per_region(graph, DOMAIN_CONFIG, config.regions).items():
        assert domain.options["deleteBeforeReplace"] is True, region
        assert domain.inputs["name"] == f"{config.app_name}-{config.environment}-devices"
    # The certificate itself is created before the old one is deleted: the old one is
    # deleted last, when the new domain configuration no longer uses it.
    for certificate in graph.of_type(ACM_CERT):
        assert certificate.options["deleteBeforeReplace"] is False
    for record in graph.of_type(RECORD):
        assert record.options["deleteBeforeReplace"] is False


# Every resource a deployed dev stack's DeviceEdge holds, as (type, logical name suffix):
# these URNs must not change (an alias would be needed, and there is none).
DEPLOYED_EDGE_CHILDREN = sorted([
    (ACM_CERT, "server-cert"), (CA, "ca"), (EVENTS, "events"), (ALARM, "connect-health"),
    (IOT_POLICY, "device-policy"), (ROLE, "iot-logging-role"),
    (HEALTH_CHECK, "tcp-health-check"), (LOG_GROUP, "iot-logs"),
    (ROLE_POLICY, "iot-logging-policy"), (HEALTH_CHECK, "alarm-health-check"),
    (ACM_VALIDATION, "server-cert-validation"), (LOGGING, "iot-logging"),
    (HEALTH_CHECK, "health-check"), (DOMAIN_CONFIG, "domain"), (RECORD, "latency-record"),
    (HEALTH_CHECK, "evacuation-control"),  # added by issue 24: new, nothing renamed
])


def test_deployed_edge_resources_keep_their_urns(dev_graph: StackGraph) -> None:
    for edge in dev_graph.of_type(EDGE):
        assert edge.urn.endswith(f"::{edge.name}") and "iotmr:edge:DeviceEdge" in edge.urn
        children = sorted((c.type, c.name.removeprefix(edge.name + "-"))
                          for c in dev_graph.children(edge))
        assert children == DEPLOYED_EDGE_CHILDREN
        for child in dev_graph.children(edge):
            assert child.urn.endswith(f"{child.type}::{child.name}")


SINGLETONS = (EVENTS, LOGGING)


def iot_log_groups(graph: StackGraph) -> list[RecordedResource]:
    return [g for g in graph.of_type(LOG_GROUP) if g.inputs["name"] == IOT_LOG_GROUP_NAME]


@pytest.fixture(scope="module")
def hands_off_graph() -> StackGraph:
    """The dev stack without its iotAccountSettings section: the shared-account default."""
    return evaluate_program(PROJECT_DIR, "dev", drop_keys=("iotAccountSettings",))


def test_by_default_no_account_wide_setting_is_touched(hands_off_graph: StackGraph) -> None:
    graph = hands_off_graph
    for type_ in SINGLETONS:
        assert graph.of_type(type_) == []
    assert iot_log_groups(graph) == []
    assert [r for r in graph.of_type(ROLE) if r.name.endswith("-iot-logging-role")] == []
    # Everything else of the edge (and JITR) is still there.
    assert len(graph.of_type(DOMAIN_CONFIG)) == len(DEV_REGIONS)
    jitr_machines = [m for m in graph.of_type("aws:sfn/stateMachine:StateMachine")
                     if m.name.endswith("-jitr-machine")]
    assert len(jitr_machines) == len(DEV_REGIONS)
    assert not [d for d in graph.diagnostics if "turned OFF" in d[1]]


def settings_graph(**settings: str) -> StackGraph:
    return evaluate_program(PROJECT_DIR, "dev", config_overrides={"iotAccountSettings": settings})


@pytest.fixture(scope="module")
def adopting_graph() -> StackGraph:
    return settings_graph(eventConfigurations="adopt", loggingOptions="manage",
                          iotLogGroup="adopt")


def test_adopt_turns_on_our_events_only_and_imports_the_log_group(
        adopting_graph: StackGraph) -> None:
    graph = adopting_graph
    for events in one_per_region(graph, EVENTS, DEV_REGIONS).values():
        assert events.inputs["eventConfigurations"] == {
                "THING": True, "CERTIFICATE": True, "THING_GROUP_MEMBERSHIP": True}
    groups = iot_log_groups(graph)
    assert len(groups) == len(DEV_REGIONS)
    for group in groups:
        assert group.options["importId"] == IOT_LOG_GROUP_NAME
        assert group.options["retainOnDelete"] is True
        assert sorted(group.options["ignoreChanges"]) == ["kmsKeyId", "retentionInDays", "tags"]
    assert not [d for d in graph.diagnostics if "turned OFF" in d[1]]


def test_manage_says_which_event_types_it_turns_off(dev_graph: StackGraph) -> None:
    valid = botocore_enum("iot", "EventType")
    warnings = [message for level, message in dev_graph.diagnostics if level == "WARNING"
                and "turned OFF" in message]
    assert sorted(w.split(":")[0] for w in warnings) == sorted(DEV_REGIONS)
    for events in one_per_region(dev_graph, EVENTS, DEV_REGIONS).values():
        declared = events.inputs["eventConfigurations"]
        assert set(declared) == valid  # every type stated, so the setting is all ours
        off = sorted(t for t, on in declared.items() if not on)
        assert any(", ".join(off) in w for w in warnings)
    for group in iot_log_groups(dev_graph):
        assert group.options["importId"] == "" and group.options["retainOnDelete"] is True


def test_logging_can_be_managed_while_someone_else_owns_the_group() -> None:
    graph = settings_graph(loggingOptions="manage")
    assert iot_log_groups(graph) == [] and graph.of_type(EVENTS) == []
    for logging in one_per_region(graph, LOGGING, DEV_REGIONS).values():
        assert logging.inputs["defaultLogLevel"] == "WARN"
        assert logging.inputs["roleArn"].endswith("-iot-logging-role")  # provider-named


@pytest.mark.parametrize("section, phrase", [
    ("manage", "must be a map"),
    ({"loggingOptions": "adopt"}, "'adopt' is not one of manage, leave; AWS keeps one logging"),
    ({"eventConfigurations": "own"}, "'own' is not one of manage, adopt, leave"),
    ({"logGroup": "manage"}, "unknown setting"),
])
def test_bad_account_settings_are_reported(section: Any, phrase: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_raw(serverCertificateMode="acm", importedServerCertificateArns={},
                  iotAccountSettings=section)
    lines = [line for line in caught.value.problems if "iotAccountSettings" in line]
    assert len(lines) == 1, caught.value.problems
    assert lines[0].startswith("iot-multi-region:iotAccountSettings")
    assert phrase in lines[0]


def test_account_settings_parse_with_safe_defaults() -> None:
    reports: list[tuple[str, str]] = []
    report = lambda field, message: reports.append((field, message))  # noqa: E731
    assert parse_account_settings(None, report) == IotAccountSettings(
        event_configurations="leave", logging_options="leave", iot_log_group="leave")
    assert parse_account_settings({"iotLogGroup": "adopt"}, report) == IotAccountSettings(
        iot_log_group="adopt")
    assert reports == []
    config = parse_raw(serverCertificateMode="acm", importedServerCertificateArns={})
    assert config.iot_account_settings == IotAccountSettings()
