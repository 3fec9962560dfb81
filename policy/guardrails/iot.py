"""AWS IoT Core: device policies, claim policies, CA registration, TLS, rules and logging."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Policy, ResourceValidationArgs, Severity, StackValidationArgs

from ._common import (
    actions,
    allows,
    get,
    parsed_documents,
    resource_guardrail,
    resource_region,
    resources,
    stack_guardrail,
    statements,
    truthy,
)

IOT_POLICY = "aws:iot/policy:Policy"
CA_CERTIFICATE = "aws:iot/caCertificate:CaCertificate"
DOMAIN_CONFIGURATION = "aws:iot/domainConfiguration:DomainConfiguration"
TOPIC_RULE = "aws:iot/topicRule:TopicRule"
LOGGING_OPTIONS = "aws:iot/loggingOptions:LoggingOptions"

# The 2022 policies are the only ones that refuse TLS 1.0/1.1 (AWS IoT's exact casing).
TLS12_SECURITY_POLICIES = (
    "IoTSecurityPolicy_TLS13_1_2_2022_10",
    "IoTSecurityPolicy_TLS13_1_3_2022_10",
    "IoTSecurityPolicy_TLS12_1_2_2022_10",
)
THING_CLIENT_ID = "${iot:Connection.Thing.ThingName}"
IS_ATTACHED = "iot:Connection.Thing.IsAttached"
JITR_TOPIC_PREFIX = "$aws/events/certificates/registered/"

_IOT_ARN = re.compile(r"^arn:[^:]+:iot:[^:]*:[^:]*:(?P<kind>[A-Za-z]+)/(?P<name>.*)$")
_CLAIM_TOPICS = (
    re.compile(r"^\$aws/certificates/create(-from-csr)?/.+$"),
    re.compile(r"^\$aws/provisioning-templates/[^/*#+$]+/provision/.+$"),
)
_TOPIC_ACTIONS = ("iot:Publish", "iot:Subscribe", "iot:Receive", "iot:RetainPublish")


def _documents(args: ResourceValidationArgs) -> Iterator[tuple[Mapping[str, Any] | None, str | None]]:
    for _, document, error in parsed_documents(args.props, ["policy"]):
        yield document, error


def _covers(action_patterns: list[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in action_patterns)


def is_claim_policy(args: ResourceValidationArgs) -> bool:
    """Fleet provisioning claim policies are named or tagged as such (`claim` in the logical or
    physical name, or in a tag key or value)."""
    names = [args.name, str(args.props.get("name") or "")]
    tags = args.props.get("tags")
    if isinstance(tags, Mapping):
        names += [f"{k}={v}" for k, v in tags.items()]
    return any("claim" in n.lower() for n in names)


def _no_wildcard_action(args: ResourceValidationArgs) -> Iterator[str]:
    for document, error in _documents(args):
        if error:
            yield error
        for statement in statements(document):
            if not allows(statement):
                continue
            if "NotAction" in statement:
                yield "an Allow statement uses NotAction, which grants every other IoT action"
            for action in actions(statement):
                if "*" in action or "?" in action:
                    yield f"Allow grants wildcard action {action!r}; list the IoT actions one by one"


def _broad_resource(resource: str, claim: bool) -> bool:
    if resource.strip() == "*":
        return True
    match = _IOT_ARN.match(resource)
    if match is None:
        return resource.endswith(":*")  # arn:aws:iot:region:account:*
    name = match.group("name")
    if claim and match.group("kind") == "client" and name == "*":
        return False  # claim certificates belong to no thing yet; their topics are checked instead
    return name in ("*", "#", "+")


def _no_wildcard_resource(args: ResourceValidationArgs) -> Iterator[str]:
    claim = is_claim_policy(args)
    for document, _ in _documents(args):
        for statement in statements(document):
            if not allows(statement):
                continue
            for resource in resources(statement):
                if _broad_resource(resource, claim):
                    yield (f"Allow on resource {resource!r} covers every client/topic; scope it to "
                           "ARNs with the thing-name policy variable")


def _connect_bound_to_thing(args: ResourceValidationArgs) -> Iterator[str]:
    if is_claim_policy(args):
        return  # a claim certificate is attached to no thing; see iot-claim-policy-*
    for document, _ in _documents(args):
        for statement in statements(document):
            if not allows(statement) or not _covers(actions(statement), "iot:Connect"):
                continue
            for resource in resources(statement):
                match = _IOT_ARN.match(resource)
                if match is None or match.group("kind") != "client" or match.group("name") != THING_CLIENT_ID:
                    yield (f"iot:Connect on {resource!r}: the client id must be bound to "
                           f"client/{THING_CLIENT_ID}")
            condition = statement.get("Condition")
            attached = get(condition, "Bool", IS_ATTACHED) if isinstance(condition, Mapping) else None
            if not truthy(attached):
                yield (f"iot:Connect without Condition Bool {IS_ATTACHED} = true: a certificate "
                       "could connect as a thing it is not attached to")


def _deny_without_mqtt_wildcards(args: ResourceValidationArgs) -> Iterator[str]:
    for document, _ in _documents(args):
        for statement in statements(document):
            if statement.get("Effect") != "Deny":
                continue
            for resource in resources(statement):
                match = _IOT_ARN.match(resource)
                name = match.group("name") if match else resource
                if "#" in name or "+" in name:
                    yield (f"Deny on {resource!r}: IoT policies treat MQTT wildcards literally, so "
                           "this denies nothing real; use '*' (policy wildcard) in Deny statements")


def _claim_fleet_provisioning_only(args: ResourceValidationArgs) -> Iterator[str]:
    if not is_claim_policy(args):
        return
    allowed_actions = {"iot:connect", *(a.lower() for a in _TOPIC_ACTIONS)}
    for document, _ in _documents(args):
        for statement in statements(document):
            if not allows(statement):
                continue
            for action in actions(statement):
                if action.lower() not in allowed_actions:
                    yield f"claim policy grants {action!r}; claims may only connect and use the " \
                          "fleet provisioning topics"
            for resource in resources(statement):
                match = _IOT_ARN.match(resource)
                kind = match.group("kind") if match else ""
                if kind == "client":
                    continue  # iot:Connect; a claim has no thing to bind the client id to
                name = match.group("name") if match else resource
                if kind not in ("topic", "topicfilter") or not any(p.match(name) for p in _CLAIM_TOPICS):
                    yield (f"claim policy allows {resource!r}; only $aws/certificates/create/* "
                           "and $aws/provisioning-templates/<template>/provision/* are allowed")


def _ca_sni_only(args: ResourceValidationArgs) -> Iterator[str]:
    mode = args.props.get("certificateMode") or "DEFAULT"
    if mode != "SNI_ONLY":
        yield f"certificateMode is {mode!r}; register the CA with SNI_ONLY"


def _domain_tls12(args: ResourceValidationArgs) -> Iterator[str]:
    policy = get(args.props, "tlsConfig", "securityPolicy")
    if policy not in TLS12_SECURITY_POLICIES:
        yield (f"tlsConfig.securityPolicy is {policy!r}; set one of "
               f"{', '.join(TLS12_SECURITY_POLICIES)}")


def _topic_rule_error_action(args: ResourceValidationArgs) -> Iterator[str]:
    error_action = args.props.get("errorAction")
    if not isinstance(error_action, Mapping) or not any(v for v in error_action.values()):
        yield "topic rule has no errorAction: failed actions would be dropped silently"


_FROM = re.compile(r"\bFROM\s+'([^']*)'", re.IGNORECASE)


def jitr_topic_ca_ids(sql: str) -> set[str]:
    """CA ids whose certificate-registered events the rule's SQL selects."""
    return {t[len(JITR_TOPIC_PREFIX):] for t in _FROM.findall(sql or "")
            if t.startswith(JITR_TOPIC_PREFIX)}


def _ca_id(props: Mapping[str, Any]) -> str | None:
    ca_id = props.get("id")
    if isinstance(ca_id, str) and ca_id:
        return ca_id
    arn = props.get("arn")
    if isinstance(arn, str) and "cacert/" in arn:
        return arn.rsplit("cacert/", 1)[1]
    return None


def _auto_registration_needs_jitr(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    rules: dict[str | None, set[str]] = {}
    for r in args.resources:
        if r.resource_type == TOPIC_RULE and truthy(r.props.get("enabled", True)):
            rules.setdefault(resource_region(r), set()).update(
                jitr_topic_ca_ids(str(r.props.get("sql") or "")))
    for r in args.resources:
        if r.resource_type != CA_CERTIFICATE or not truthy(r.props.get("allowAutoRegistration")):
            continue
        ca_id = _ca_id(r.props)
        region = resource_region(r)
        if ca_id is None:
            yield "CA allows auto-registration but its id is unknown, so no JITR rule can match", r.urn
        elif ca_id not in rules.get(region, set()):
            yield (f"CA {ca_id} allows auto-registration in {region} but no enabled topic rule there "
                   f"selects from '{JITR_TOPIC_PREFIX}{ca_id}': devices would stay "
                   "PENDING_ACTIVATION (turn auto-registration off or add the JITR rule)", r.urn)


def _logging_every_region(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    used = {resource_region(r) for r in args.resources} - {None}
    enabled: set[str] = set()
    for r in args.resources:
        if r.resource_type != LOGGING_OPTIONS:
            continue
        level = str(r.props.get("defaultLogLevel") or "").upper()
        if level == "DISABLED" or truthy(r.props.get("disableAllLogs")):
            yield f"IoT logging is {level or 'disabled'} in {resource_region(r)}", r.urn
        else:
            region = resource_region(r)
            if region:
                enabled.add(region)
    for region in sorted(r for r in used - enabled if r):
        yield (f"no enabled aws:iot/loggingOptions:LoggingOptions in {region}: AWS IoT would log "
               "nothing there", None)


POLICIES: list[Policy] = [
    resource_guardrail(
        "iot-policy-no-wildcard-action",
        "IoT policies list actions one by one: no iot:*, no partial wildcards, no NotAction",
        ["IOT_POLICY_OVERLY_PERMISSIVE_CHECK"], [IOT_POLICY], _no_wildcard_action),
    resource_guardrail(
        "iot-policy-no-wildcard-resource",
        "IoT policies never allow Resource \"*\" or a bare client/topic/topicfilter/thing wildcard",
        ["IOT_POLICY_OVERLY_PERMISSIVE_CHECK"], [IOT_POLICY], _no_wildcard_resource),
    resource_guardrail(
        "iot-connect-bound-to-thing",
        "iot:Connect is bound to client/${iot:Connection.Thing.ThingName} with "
        "iot:Connection.Thing.IsAttached = true (claim policies excepted)",
        ["IOT_POLICY_OVERLY_PERMISSIVE_CHECK", "CONFLICTING_CLIENT_IDS_CHECK"], [IOT_POLICY],
        _connect_bound_to_thing),
    resource_guardrail(
        "iot-deny-no-mqtt-wildcards",
        "Deny statements in IoT policies never use MQTT wildcards (# or +), which IoT policies "
        "match literally",
        ["IOT_POLICY_POTENTIAL_MIS_CONFIGURATION_CHECK"], [IOT_POLICY], _deny_without_mqtt_wildcards),
    resource_guardrail(
        "iot-claim-policy-fleet-provisioning-only",
        "Fleet provisioning claim policies (named/tagged 'claim') allow only $aws/certificates/"
        "create/* and $aws/provisioning-templates/<template>/provision/*",
        ["IOT_POLICY_OVERLY_PERMISSIVE_CHECK"], [IOT_POLICY], _claim_fleet_provisioning_only),
    resource_guardrail(
        "iot-ca-sni-only",
        "CA certificates are registered in SNI_ONLY mode",
        ["AWS IoT RegisterCACertificate certificateMode=SNI_ONLY (multi-account registration)"],
        [CA_CERTIFICATE], _ca_sni_only),
    stack_guardrail(
        "iot-ca-auto-registration-needs-jitr",
        "A CA allows auto-registration only where an enabled topic rule in its region selects "
        "$aws/events/certificates/registered/<that CA's id> (JITR)",
        ["AWS IoT JITR ($aws/events/certificates/registered/<caCertificateId>)",
         "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK (unmanaged certificates)"],
        _auto_registration_needs_jitr),
    resource_guardrail(
        "iot-domain-configuration-tls12",
        "IoT domain configurations use a TLS 1.2+ 2022 security policy",
        ["AWS IoT security policies (TLS12_1_2_2022_10 and newer)",
         "CKV_AWS_206 (same intent for API Gateway domains)"],
        [DOMAIN_CONFIGURATION], _domain_tls12),
    resource_guardrail(
        "iot-topic-rule-error-action",
        "Every IoT topic rule has an error action",
        ["AWS IoT Core developer guide: rule error actions"],
        [TOPIC_RULE], _topic_rule_error_action, severity=Severity.MEDIUM),
    stack_guardrail(
        "iot-logging-enabled-every-region",
        "AWS IoT logging is configured and not DISABLED in every region the stack uses",
        ["LOGGING_DISABLED_CHECK"], _logging_every_region),
]
