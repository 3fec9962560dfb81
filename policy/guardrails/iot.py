"""AWS IoT Core: device and claim policies judged as IoT evaluates them, CA registration,
TLS, rules, logging, fleet provisioning templates and custom authorizers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Policy, PolicyResource, ResourceValidationArgs, Severity, StackValidationArgs

from components.facts import THING_IS_ATTACHED_KEY, THING_NAME_VARIABLE, TLS_SECURITY_POLICIES
from policy.semantics import globs, templates
from policy.semantics import iot as iot_policy
from policy.semantics.documents import DocumentError, parse, plain, statements

from ._common import (
    get,
    home_accounts,
    parsed_documents,
    resource_guardrail,
    resource_region,
    stack_guardrail,
    truthy,
)

IOT_POLICY = "aws:iot/policy:Policy"
CA_CERTIFICATE = "aws:iot/caCertificate:CaCertificate"
DOMAIN_CONFIGURATION = "aws:iot/domainConfiguration:DomainConfiguration"
TOPIC_RULE = "aws:iot/topicRule:TopicRule"
LOGGING_OPTIONS = "aws:iot/loggingOptions:LoggingOptions"
PROVISIONING_TEMPLATE = "aws:iot/provisioningTemplate:ProvisioningTemplate"
AUTHORIZER = "aws:iot/authorizer:Authorizer"
JITR_TOPIC_PREFIX = "$aws/events/certificates/registered/"

# A claim certificate may only ask for a certificate and run one named template.
_CLAIM_PATHS = (
    re.compile(r"^topic(filter)?/\$aws/certificates/create(-from-csr)?/[^*?]*(\*)?$"),
    re.compile(r"^topic(filter)?/\$aws/provisioning-templates/[^/*?#+]+/provision/[^*?]*(\*)?$"),
)
_CLAIM_ACTIONS = frozenset({"iot:connect", "iot:publish", "iot:subscribe", "iot:receive"})


def _documents(args: ResourceValidationArgs) -> Iterator[tuple[Mapping[str, Any] | None, str | None]]:
    for _, document, problem in parsed_documents(args.props, ["policy"]):
        yield document, problem


def is_claim_policy(name: str, props: Mapping[str, Any]) -> bool:
    """Fleet provisioning claim policies: named or tagged as such (`claim` in the logical or
    physical name, or in a tag key or value), or granting topics only within the fleet
    provisioning topics (whatever they are called)."""
    names = [name, str(props.get("name") or "")]
    tags = props.get("tags")
    if isinstance(tags, Mapping):
        names += [f"{k}={v}" for k, v in tags.items()]
    if any("claim" in n.lower() for n in names):
        return True
    try:
        document = parse(props.get("policy"))
    except DocumentError:
        return False
    paths = [iot_policy.resource_path(r) for s in statements(document) if s.allows
             for r in s.resources or ()]
    topics = [p for p in paths if not p.startswith("client/")]
    return bool(topics) and all(any(c.match(p) for c in _CLAIM_PATHS) for p in topics)


def _claim(args: ResourceValidationArgs) -> bool:
    return is_claim_policy(args.name, args.props)


def _no_wildcard_action(args: ResourceValidationArgs) -> Iterator[str]:
    for document, problem in _documents(args):
        if problem:
            yield problem
        for where, pattern in iot_policy.wildcard_actions(document):
            yield (f"{where}: Allow grants {pattern!r}, more than one data-plane action; list the "
                   "IoT actions one by one")
        for where, pattern in iot_policy.unknown_actions(document):
            yield (f"{where}: Allow grants {pattern!r}, which the IAM action database does not "
                   "know: what it allows cannot be judged, so it is refused (after review, add it "
                   "to SUPPLEMENT in policy/semantics/actions.py)")


def _no_account_wide_resource(args: ResourceValidationArgs) -> Iterator[str]:
    claim = _claim(args)
    for document, _ in _documents(args):
        for where, resource in iot_policy.account_wide(document):
            if claim and iot_policy.resource_path(resource).startswith("client/"):
                continue  # a claim certificate belongs to no thing; its topics are checked
            yield (f"{where}: Allow on {resource!r} covers every client/thing/topic of the "
                   "account; scope it with the thing-name policy variable")


def _device_isolation(args: ResourceValidationArgs) -> Iterator[str]:
    if _claim(args):
        return  # see iot-claim-policy-fleet-provisioning-only
    for document, _ in _documents(args):
        for reach in iot_policy.cross_device_reach(document):
            yield str(reach)


def _connect_bound_to_thing(args: ResourceValidationArgs) -> Iterator[str]:
    if _claim(args):
        return  # a claim certificate is attached to no thing; see iot-claim-policy-*
    for document, _ in _documents(args):
        for statement, granted in iot_policy.iter_actions(document):
            if iot_policy.CONNECT in granted:
                for problem in iot_policy.connect_bound_to_thing(statement):
                    yield f"{statement.where}: {problem}"


def _deny_without_mqtt_wildcards(args: ResourceValidationArgs) -> Iterator[str]:
    for document, _ in _documents(args):
        for where, resource in iot_policy.literal_mqtt_wildcards_in_deny(document):
            yield (f"{where}: Deny on {resource!r}: IoT policies treat MQTT wildcards literally, "
                   "so this denies nothing real; use '*' (policy wildcard) in Deny statements")


def _claim_fleet_provisioning_only(args: ResourceValidationArgs) -> Iterator[str]:
    if not _claim(args):
        return
    for document, _ in _documents(args):
        for statement, granted in iot_policy.iter_actions(document):
            iot_granted = {a for a in granted if a.startswith("iot:")}
            extra = sorted(iot_granted - _CLAIM_ACTIONS)
            if extra or len(granted) != len(iot_granted):
                yield (f"{statement.where}: claim policy grants "
                       f"{len(granted) - len(iot_granted & _CLAIM_ACTIONS)} action(s) beyond "
                       "connect/publish/subscribe/receive; claims may only use the fleet "
                       "provisioning topics")
            if statement.not_resources is not None:
                yield f"{statement.where}: claim policy uses NotResource"
                continue
            for resource in statement.resources or ():
                path = iot_policy.resource_path(resource)
                if path.startswith("client/"):
                    continue  # iot:Connect; a claim has no thing to bind the client id to
                if not any(p.match(path) for p in _CLAIM_PATHS):
                    yield (f"{statement.where}: claim policy allows {resource!r}; only "
                           "$aws/certificates/create[-from-csr]/* and "
                           "$aws/provisioning-templates/<template>/provision/* are allowed")


def _ca_sni_only(args: ResourceValidationArgs) -> Iterator[str]:
    mode = args.props.get("certificateMode") or "DEFAULT"
    if mode != "SNI_ONLY":
        yield f"certificateMode is {mode!r}; register the CA with SNI_ONLY"


def _domain_tls12(args: ResourceValidationArgs) -> Iterator[str]:
    policy = get(args.props, "tlsConfig", "securityPolicy")
    if policy not in TLS_SECURITY_POLICIES:
        yield (f"tlsConfig.securityPolicy is {policy!r}; set one of "
               f"{', '.join(TLS_SECURITY_POLICIES)}")


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


# --- fleet provisioning -------------------------------------------------------------------

def _template_type(props: Mapping[str, Any]) -> str:
    return str(props.get("type") or "FLEET_PROVISIONING").upper()


def _pre_provisioning_hook(args: ResourceValidationArgs) -> Iterator[str]:
    if _template_type(args.props) != "FLEET_PROVISIONING":
        return  # JITP templates take no hook
    if not get(args.props, "preProvisioningHook", "targetArn"):
        yield ("fleet provisioning template has no preProvisioningHook.targetArn: any holder of "
               "the claim certificate could register any device (validate serials/allow-list "
               "in a hook Lambda)")


def template_policies(body: Any) -> list[tuple[str, Any, Any]]:
    """(resource name, PolicyName, PolicyDocument) of the AWS::IoT::Policy resources of a
    provisioning template body (JSON text or object)."""
    template = parse(body)
    resources = get(template, "Resources")
    found = []
    if isinstance(resources, Mapping):
        for name, resource in resources.items():
            if isinstance(resource, Mapping) and str(resource.get("Type")) == "AWS::IoT::Policy":
                properties = resource.get("Properties")
                properties = properties if isinstance(properties, Mapping) else {}
                found.append((str(name), properties.get("PolicyName"),
                              properties.get("PolicyDocument")))
    return found


def _device_policies(resources: list[PolicyResource]) -> dict[str | None, list[PolicyResource]]:
    by_region: dict[str | None, list[PolicyResource]] = {}
    for r in resources:
        if r.resource_type == IOT_POLICY and not is_claim_policy(r.name, r.props):
            by_region.setdefault(resource_region(r), []).append(r)
    return by_region


def _template_policy_scoped(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    devices = _device_policies(list(args.resources))
    for template in args.resources:
        if template.resource_type != PROVISIONING_TEMPLATE:
            continue
        region = resource_region(template)
        candidates = devices.get(region, [])
        try:
            policies = template_policies(template.props.get("templateBody"))
        except DocumentError as error:
            yield f"templateBody is {error}", template.urn
            continue
        if not policies:
            yield ("template attaches no AWS::IoT::Policy: provisioned certificates would get no "
                   "(or a later, unchecked) policy", template.urn)
        pseudo = {"AWS::Region": region or "*", "AWS::Partition": "aws",
                  "AWS::AccountId": next(iter(home_accounts(template)), "*")}
        for name, policy_name, document in policies:
            if policy_name is not None:
                try:
                    policy_name = templates.resolve(policy_name, pseudo)
                except templates.Unresolvable:
                    pass
                if not isinstance(policy_name, str) or globs.has_wildcard(policy_name):
                    yield (f"{name}: PolicyName {json.dumps(plain(policy_name))} is chosen at provisioning "
                           "time (a parameter the device sends); name the device policy", template.urn)
                elif policy_name not in {str(c.props.get("name") or "") for c in candidates}:
                    yield (f"{name}: PolicyName {policy_name!r} is not a device policy this stack "
                           f"declares in {region}; attach the device policy", template.urn)
                continue
            try:
                # Fn::Join / Fn::Sub evaluated; a parameter the device sends becomes `*`.
                template_document = parse(templates.resolve(plain(document), pseudo))
            except templates.Unresolvable as error:
                yield (f"{name}: PolicyDocument uses {error}: what it grants cannot be judged",
                       template.urn)
                continue
            except DocumentError as error:
                yield f"{name}: PolicyDocument is {error}", template.urn
                continue
            if not statements(template_document):
                yield (f"{name}: PolicyDocument has no statement the pack can read (an IoT policy "
                       "document is an object with Statement)", template.urn)
                continue
            if not candidates:
                yield (f"{name}: inline PolicyDocument but no device policy in {region} to "
                       "compare it with", template.urn)
                continue
            gaps = [iot_policy.policy_covers(_document_or_none(c.props.get("policy")), template_document)
                    for c in candidates]
            best = min(gaps, key=len)
            if best:
                yield (f"{name}: the template's policy grants more than the device policy: "
                       f"{'; '.join(best[:4])}", template.urn)


def _document_or_none(value: Any) -> Mapping[str, Any] | None:
    try:
        return parse(value)
    except DocumentError:
        return None  # iot-policy-* report the broken device policy itself


def _authorizer_signing(args: ResourceValidationArgs) -> Iterator[str]:
    if truthy(args.props.get("signingDisabled")):
        yield ("signingDisabled is true: anyone can present any token to the authorizer Lambda "
               "(enable token signing with tokenSigningPublicKeys)")
    elif not args.props.get("tokenSigningPublicKeys"):
        yield "token signing needs tokenSigningPublicKeys and a tokenKeyName"


POLICIES: list[Policy] = [
    resource_guardrail(
        "iot-policy-no-wildcard-action",
        "IoT policies grant actions one by one: no iot:*, no pattern reaching more than one "
        "data-plane action, no NotAction, no action the IAM action database does not know",
        ["IOT_POLICY_OVERLY_PERMISSIVE_CHECK"], [IOT_POLICY], _no_wildcard_action),
    resource_guardrail(
        "iot-policy-no-wildcard-resource",
        "IoT policies never allow a resource covering every client/thing/topic of the account "
        "(`*`, `topic/*`, `topicfilter/#`, `arn:aws:iot:*:*:*`, NotResource)",
        ["IOT_POLICY_OVERLY_PERMISSIVE_CHECK"], [IOT_POLICY], _no_account_wide_resource),
    resource_guardrail(
        "iot-policy-device-isolation",
        "No device can reach another device's client id, topics or thing (resources matched "
        "as IoT matches them, policy variables filled per device)",
        ["IOT_POLICY_OVERLY_PERMISSIVE_CHECK", "CONFLICTING_CLIENT_IDS_CHECK",
         "DEVICE_CERTIFICATE_SHARED_CHECK"], [IOT_POLICY], _device_isolation,
        severity=Severity.CRITICAL),
    resource_guardrail(
        "iot-connect-bound-to-thing",
        f"iot:Connect is bound to client/{THING_NAME_VARIABLE} with {THING_IS_ATTACHED_KEY} = true "
        "(claim policies excepted)",
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
    resource_guardrail(
        "iot-provisioning-template-pre-provisioning-hook",
        "Fleet provisioning templates validate devices with a pre-provisioning hook",
        ["AWS IoT fleet provisioning: pre-provisioning hooks",
         "IOT_POLICY_OVERLY_PERMISSIVE_CHECK (claim certificates)"],
        [PROVISIONING_TEMPLATE], _pre_provisioning_hook),
    stack_guardrail(
        "iot-provisioning-template-policy-scoped",
        "A provisioning template attaches the stack's device policy (by literal name) or an "
        "inline policy no broader than it",
        ["IOT_POLICY_OVERLY_PERMISSIVE_CHECK", "CONFLICTING_CLIENT_IDS_CHECK"],
        _template_policy_scoped, severity=Severity.CRITICAL),
    resource_guardrail(
        "iot-authorizer-signing-enabled",
        "IoT custom authorizers verify token signatures (signingDisabled false, public keys set)",
        ["AWS IoT custom authentication: token signing (signingDisabled=false)"],
        [AUTHORIZER], _authorizer_signing),
]

