"""Resources the pack would otherwise never see, and grants that leave the account through
side doors.

* **Wrappers**: Cloud Control resources (`aws:cloudcontrol/resource:Resource`), CloudFormation stacks and stack sets, Serverless
  Application Repository stacks and every `aws-native` resource declare AWS resources the
  pack's typed guardrails do not read (a public bucket through Cloud Control is still a
  public bucket). Each wrapped type is refused unless `ALLOWED_WRAPPED_TYPES` lists it with
  the reason it is safe unjudged: adding a type is one reviewed line there.
* **Side doors**: EventBridge bus permissions to `*`, KMS grants to other accounts, pipes and
  event targets (and IoT rule actions) delivering into another account.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import Policy, ResourceValidationArgs, Severity, StackValidationArgs

from policy.semantics import exposure, templates

from ._common import as_list, get, home_accounts, resource_guardrail, stack_guardrail

CLOUD_CONTROL = "aws:cloudcontrol/resource:Resource"
CFN_STACK = "aws:cloudformation/stack:Stack"
CFN_STACK_SET = "aws:cloudformation/stackSet:StackSet"
SAR_STACK = "aws:serverlessrepository/cloudFormationStack:CloudFormationStack"
NATIVE_PREFIX = "aws-native:"

# CloudFormation type -> why the pack may let it through unjudged. One reviewed line per type;
# compared case-insensitively with Cloud Control type names, template `Type`s and aws-native
# tokens (`aws-native:iot:SecurityProfile` is AWS::IoT::SecurityProfile).
ALLOWED_WRAPPED_TYPES: dict[str, str] = {
    # AWS IoT Device Defender (issue 25): detect/audit configuration only; no resource policy,
    # no network exposure, no secret-bearing property.
    "AWS::IoT::SecurityProfile": "Device Defender detect: behaviors and alert targets (SNS + role)",
    "AWS::IoT::CustomMetric": "Device Defender custom metric definition",
    "AWS::IoT::Dimension": "Device Defender dimension (topic filter for behaviors)",
    "AWS::IoT::ScheduledAudit": "Device Defender audit schedule",
    "AWS::IoT::AccountAuditConfiguration": "Device Defender audit checks and notification target",
    "AWS::IoT::MitigationAction": "Device Defender mitigation: one action applied to a finding by an "
                                  "operator; its role is an aws:iam/role the IAM guardrails judge",
}
_ALLOWED = {k.lower() for k in ALLOWED_WRAPPED_TYPES}


def native_type(token: str) -> str:
    """`AWS::IoT::SecurityProfile` from `aws-native:iot:SecurityProfile` (case aside)."""
    _, module, kind = (token.split(":") + ["", ""])[:3]
    return f"AWS::{module}::{kind}"


def _refused(kind: str) -> bool:
    return kind.lower() not in _ALLOWED


def _wrapped(args: ResourceValidationArgs) -> Iterator[str]:
    how = ("the pack judges only typed pulumi-aws resources; declare it with pulumi-aws, or add "
           "it with a reason to ALLOWED_WRAPPED_TYPES in policy/guardrails/coverage.py after review")
    kind = args.resource_type
    if kind.startswith(NATIVE_PREFIX):
        if kind.startswith(f"{NATIVE_PREFIX}index:") or kind.startswith("pulumi:"):
            return
        cfn = native_type(kind)
        if _refused(cfn):
            yield f"{kind} ({cfn}) is declared through aws-native, which no guardrail reads; {how}"
    elif kind == CLOUD_CONTROL:
        type_name = str(args.props.get("typeName") or "")
        if _refused(type_name):
            yield f"Cloud Control resource of type {type_name or '?'} is not judged by any guardrail; {how}"
    elif kind in (CFN_STACK, CFN_STACK_SET):
        body = args.props.get("templateBody")
        if not body:
            yield ("CloudFormation template given by templateUrl: its resources cannot be judged; "
                   f"inline it (templateBody) or {how}")
            return
        template = templates.load(body)
        if template is None:
            yield "templateBody is not a JSON/YAML CloudFormation template"
            return
        for name, type_name in templates.resource_types(template):
            if _refused(type_name):
                yield f"CloudFormation resource {name} ({type_name}) is not judged by any guardrail; {how}"
    elif kind == SAR_STACK:
        yield (f"Serverless Application Repository stack {args.props.get('applicationId')!r}: the "
               f"application's resources cannot be judged; {how}")


# --- side doors ---------------------------------------------------------------------------

EVENT_PERMISSION = "aws:cloudwatch/eventPermission:EventPermission"
KMS_GRANT = "aws:kms/grant:Grant"


def _event_permission(args: ResourceValidationArgs) -> Iterator[str]:
    principal = str(args.props.get("principal") or "").strip()
    condition = args.props.get("condition")
    statement: dict[str, Any] = {
        "Effect": "Allow", "Principal": "*" if principal == "*" else {"AWS": principal},
        "Action": str(args.props.get("action") or "events:PutEvents"), "Resource": "*"}
    if isinstance(condition, Mapping):
        statement["Condition"] = {str(condition.get("type") or ""): {
            str(condition.get("key") or ""): str(condition.get("value") or "")}}
    document = {"Statement": [statement]}
    for finding in exposure.findings(document, home_accounts(args)):
        yield f"event bus permission {finding.detail}"


def _kms_grant(args: ResourceValidationArgs) -> Iterator[str]:
    home = set(home_accounts(args))
    for key in ("granteePrincipal", "retiringPrincipal"):
        value = str(args.props.get(key) or "").strip()
        if not value:
            continue
        if value == "*" or exposure.account_of(value) is None and not value.endswith(".amazonaws.com"):
            yield f"grant {key} {value!r} names no fixed principal"
            continue
        account = exposure.account_of(value)
        if account and home and account not in home:
            yield (f"grant {key} {value} is in account {account}, outside this stack's account(s) "
                   f"{', '.join(sorted(home))}: the key's use leaves the account")


_SQS_URL = re.compile(r"^https://sqs\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/(?P<account>\d{12})/")
# Resource type -> property paths whose ARNs (or queue URLs) receive the resource's data.
DELIVERY_TARGETS: dict[str, tuple[tuple[str, ...], ...]] = {
    "aws:pipes/pipe:Pipe": (("target",), ("enrichment",)),
    "aws:cloudwatch/eventTarget:EventTarget": (("arn",), ("deadLetterConfig",)),
    "aws:iot/topicRule:TopicRule": tuple((k,) for k in (
        "lambdas", "sqs", "sns", "kineses", "firehoses", "stepFunctions", "cloudwatchLogs",
        "republishes", "s3", "dynamodbv2s", "errorAction")),
    "aws:sns/topicSubscription:TopicSubscription": (("endpoint",),),
    "aws:scheduler/schedule:Schedule": (("target", "arn"),),
}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if str(key) != "roleArn":  # the role a service assumes is not where data goes
                yield from _strings(item)
    elif isinstance(value, Sequence) and not isinstance(value, bytes):
        for item in value:
            yield from _strings(item)


def delivery_accounts(value: Any) -> set[str]:
    found = set()
    for text in _strings(value):
        account = exposure.account_of(text)
        match = _SQS_URL.match(text.strip())
        if account:
            found.add(account)
        elif match:
            found.add(match.group("account"))
    return found


def _delivers_home(args: ResourceValidationArgs) -> Iterator[str]:
    home = set(home_accounts(args))
    if not home:
        return  # aws-home-account-declared fails the stack
    for path in DELIVERY_TARGETS.get(args.resource_type, ()):
        foreign = sorted(delivery_accounts(get(args.props, *path)) - home)
        if foreign:
            yield (f"{'.'.join(path)} delivers into account(s) {', '.join(foreign)}, outside this "
                   f"stack's account(s) {', '.join(sorted(home))}")


THING_PRINCIPAL_ATTACHMENT = "aws:iot/thingPrincipalAttachment:ThingPrincipalAttachment"


def _one_thing_per_certificate(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    things: dict[str, dict[str, str]] = {}
    for r in args.resources:
        if r.resource_type == THING_PRINCIPAL_ATTACHMENT:
            principal, thing = str(r.props.get("principal") or ""), str(r.props.get("thing") or "")
            things.setdefault(principal, {}).setdefault(thing, r.urn)
    for principal, attached in things.items():
        if len(attached) > 1:
            urns = list(attached.values())
            yield (f"certificate {principal} is attached to {len(attached)} things "
                   f"({', '.join(sorted(attached))}): a device holding it may act as each of them",
                   urns[-1])


POLICIES: list[Policy] = [
    resource_guardrail(
        "unjudged-resource-types-allow-listed",
        "Resources declared through wrappers no guardrail reads (Cloud Control, CloudFormation "
        "stacks and stack sets, Serverless Application Repository, aws-native) are refused "
        "unless their type is allow-listed with a reason",
        ["AWS Control Tower proactive controls (CloudFormation hooks judge wrapped types)",
         "IAM Access Analyzer (resource coverage)"],
        None, _wrapped, severity=Severity.HIGH),
    resource_guardrail(
        "events-permission-not-public",
        "EventBridge bus permissions admit no one outside the account ('*' needs an "
        "aws:PrincipalOrgID condition; no foreign accounts)",
        ["IAM Access Analyzer external access findings (AWS::Events::EventBus)"],
        [EVENT_PERMISSION], _event_permission, severity=Severity.CRITICAL),
    resource_guardrail(
        "kms-grant-home-account",
        "KMS grants name fixed principals of the stack's own account(s)",
        ["IAM Access Analyzer external access findings (AWS::KMS::Key grants)", "Security Hub KMS.5"],
        [KMS_GRANT], _kms_grant, severity=Severity.CRITICAL),
    resource_guardrail(
        "data-delivered-home",
        "Pipes, event targets, IoT rule actions, subscriptions and schedules deliver only into "
        "the stack's own account(s)",
        ["IAM Access Analyzer (data perimeter: resource perimeter)", "AWS data perimeter guidance"],
        list(DELIVERY_TARGETS), _delivers_home, severity=Severity.HIGH),
    stack_guardrail(
        "iot-certificate-one-thing",
        "Each certificate is attached to at most one thing",
        ["DEVICE_CERTIFICATE_SHARED_CHECK", "CONFLICTING_CLIENT_IDS_CHECK"],
        _one_thing_per_certificate, severity=Severity.HIGH),
]
