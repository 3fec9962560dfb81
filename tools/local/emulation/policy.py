"""The one IAM / IoT policy evaluator of the emulations and the tests: explicit Deny wins, then
any Allow, else implicit deny; how it reads actions, resources, conditions and variables, with
the AWS pages: docs/emulation.md, "IAM and IoT policies". No NotPrincipal, boundaries or SCPs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from policy.semantics.globs import matches as like  # IAM's `*` and `?`: the pack's matcher

_VARIABLE = re.compile(r"\$\{([^}]+)\}")
Context = Mapping[str, Any]  # key -> a string, or a list of strings (multi-valued keys)


class AccessDenied(Exception):
    """The principal may not do this (a role it cannot assume, an action not granted)."""


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def document(value: str | Mapping[str, Any]) -> Mapping[str, Any]:
    return json.loads(value) if isinstance(value, str) else value


def _substitute(pattern: str, context: Context) -> str | None:
    values = [context.get(name.lower()) for name in _VARIABLE.findall(pattern)]
    if any(not isinstance(v, str) for v in values):
        return None
    found = iter(values)
    return _VARIABLE.sub(lambda _: str(next(found)), pattern)


def _matches_any(patterns: Iterable[Any], value: str, context: Context, *, case: bool) -> bool:
    concrete = (_substitute(str(p), context) for p in patterns)
    return any(c is not None and like(c, value, ignore_case=not case) for c in concrete)


def _single(operator: str, expected: list[str], actual: str) -> bool | None:
    """One value against the operator (None: an operator this evaluator does not know)."""
    if operator == "Bool":
        return actual.lower() in [v.lower() for v in expected]
    base = operator.replace("Not", "")
    if base in ("StringEquals", "ArnEquals"):
        hit = actual in expected
    elif base in ("StringLike", "ArnLike"):
        hit = any(like(v, actual) for v in expected)
    elif base == "StringEqualsIgnoreCase":
        hit = actual.lower() in [v.lower() for v in expected]
    else:
        return None
    return not hit if "Not" in operator else hit


def _condition_holds(operator: str, key: str, expected: Any, context: Context) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if key.lower() not in context:
        return qualifier == "ForAllValues" or "Not" in base
    wanted = [str(v) for v in _as_list(expected)]
    results = [_single(base, wanted, str(v)) for v in _as_list(context[key.lower()])]
    if any(r is None for r in results):
        return False
    if qualifier == "ForAnyValue":
        return any(results)
    if qualifier == "ForAllValues":
        return all(results)
    return len(results) == 1 and bool(results[0])


def _applies(statement: Mapping[str, Any], action: str, resource: str | None, context: Context,
             principal: tuple[str, str] | None) -> bool:
    if "Action" in statement and not _matches_any(_as_list(statement["Action"]), action, {},
                                                  case=False):
        return False
    if "NotAction" in statement and _matches_any(_as_list(statement["NotAction"]), action, {},
                                                 case=False):
        return False
    if resource is not None:
        if "Resource" in statement and not _matches_any(_as_list(statement["Resource"]),
                                                        resource, context, case=True):
            return False
        if "NotResource" in statement and _matches_any(_as_list(statement["NotResource"]),
                                                       resource, context, case=True):
            return False
    if principal is not None:
        declared = statement.get("Principal")
        if declared != "*" and not (isinstance(declared, Mapping)
                                    and principal[1] in _as_list(declared.get(principal[0]))):
            return False
    return all(_condition_holds(operator, key, expected, context)
               for operator, entries in (statement.get("Condition") or {}).items()
               for key, expected in entries.items())


def allows(documents: Iterable[str | Mapping[str, Any]], action: str, resource: str | None, *,
           context: Context | None = None, principal_service: str | None = None,
           principal: tuple[str, str] | None = None) -> bool:
    """Do the documents grant `action` on `resource` (None: a trust policy, no resource) to
    `principal` (kind, value), e.g. ("Service", "iot.amazonaws.com")?"""
    if principal_service is not None:
        principal = ("Service", principal_service)
    lowered = {k.lower(): v for k, v in (context or {}).items()}
    allowed = False
    for doc in documents:
        for statement in _as_list(document(doc).get("Statement")):
            if _applies(statement, action, resource, lowered, principal):
                if statement.get("Effect") == "Deny":
                    return False
                allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def allowed(policy: str | Mapping[str, Any], action: str, resource: str,
            context: Context | None = None) -> bool:
    return allows([policy], action, resource, context=context)


def trust_allows(policy: str | Mapping[str, Any], principal: tuple[str, str], action: str,
                 context: Context | None = None) -> bool:
    return allows([policy], action, None, context=context, principal=principal)


# --- roles a service assumes ------------------------------------------------------------------

def role_policies(iam: Any, role_arn: str) -> list[Mapping[str, Any]]:
    name = role_arn.rsplit("/", 1)[-1]
    found = [iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
             for p in iam.list_role_policies(RoleName=name)["PolicyNames"]]
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        found.append(iam.get_policy_version(PolicyArn=attached["PolicyArn"],
                                            VersionId=version)["PolicyVersion"]["Document"])
    return found


def assume(iam: Any, role_arn: str, *, service: str, source_account: str,
           source_arn: str) -> list[Mapping[str, Any]]:
    """The role's permission documents, if `service` acting for `source_arn` may assume it."""
    try:
        trust = iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]["AssumeRolePolicyDocument"]
    except ClientError as error:
        raise AccessDenied(f"{service} cannot assume {role_arn}: "
                           f"{error.response['Error']['Code']}") from None
    context = {"aws:SourceAccount": source_account, "aws:SourceArn": source_arn}
    if not allows([trust], "sts:AssumeRole", None, context=context, principal_service=service):
        raise AccessDenied(f"{role_arn} does not trust {service} for {source_arn}")
    return role_policies(iam, role_arn)


def require(documents: Iterable[Mapping[str, Any]], action: str, resource: str, who: str,
            context: Context | None = None) -> None:
    if not allows(documents, action, resource, context=context):
        raise AccessDenied(f"{who} is not allowed {action} on {resource}")


def permits(permissions: Iterable[Mapping[str, Any]], *, function_name: str, function_arn: str,
            principal: str, source_arn: str, source_account: str,
            action: str = "lambda:InvokeFunction") -> bool:
    """Lambda's resource policy: each declared `Permission` is the statement AddPermission
    writes (the service principal, ArnLike on AWS:SourceArn, StringEquals on
    AWS:SourceAccount)."""
    statements = []
    for permission in permissions:
        if permission.get("function") not in (function_name, function_arn):
            continue
        condition: dict[str, dict[str, str]] = {}
        if permission.get("sourceArn"):
            condition["ArnLike"] = {"AWS:SourceArn": str(permission["sourceArn"])}
        if permission.get("sourceAccount"):
            condition["StringEquals"] = {"AWS:SourceAccount": str(permission["sourceAccount"])}
        statements.append({"Effect": "Allow", "Principal": {"Service": permission.get("principal")},
                           "Action": permission.get("action"), "Resource": function_arn,
                           **({"Condition": condition} if condition else {})})
    return allows([{"Statement": statements}], action, function_arn,
                  context={"AWS:SourceArn": source_arn, "AWS:SourceAccount": source_account},
                  principal_service=principal)
