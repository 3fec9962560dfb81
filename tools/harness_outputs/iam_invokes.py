"""IAM invokes answered as the provider answers them, so policies a program builds with
`aws.iam.get_policy_document[_output]` or reads with `aws.iam.get_policy[_output]` reach the
policy runner as real JSON, not as empty strings."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from policy.semantics.managed_policies import AWS_MANAGED_POLICIES, managed_policy_name
from tools.harness import PARTITION, register_call


def _interpolate(text: str) -> str:
    # The provider's escape for IAM policy variables: &{aws:username} -> ${aws:username}.
    return text.replace("&{", "${")


def _one_or_many(values: Sequence[str]) -> str | list[str]:
    """The provider writes a one-element set as a string and sorts larger ones in reverse."""
    items = [_interpolate(str(v)) for v in values]
    return items[0] if len(items) == 1 else sorted(items, reverse=True)


def _principals(entries: Sequence[Mapping[str, Any]]) -> str | dict[str, Any]:
    by_type: dict[str, list[str]] = {}
    for entry in entries:
        by_type.setdefault(str(entry.get("type")), []).extend(
            str(i) for i in entry.get("identifiers") or [])
    if set(by_type) == {"*"} and set(by_type["*"]) == {"*"}:
        return "*"
    return {kind: _one_or_many(sorted(set(ids))) for kind, ids in by_type.items()}


def _statement(raw: Mapping[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = {}
    if raw.get("sid"):
        statement["Sid"] = raw["sid"]
    statement["Effect"] = raw.get("effect") or "Allow"
    for source, target in (("actions", "Action"), ("notActions", "NotAction"),
                           ("resources", "Resource"), ("notResources", "NotResource")):
        if raw.get(source):
            statement[target] = _one_or_many(raw[source])
    for source, target in (("principals", "Principal"), ("notPrincipals", "NotPrincipal")):
        if raw.get(source):
            statement[target] = _principals(raw[source])
    conditions: dict[str, dict[str, list[str]]] = {}
    for condition in raw.get("conditions") or []:
        block = conditions.setdefault(str(condition["test"]), {})
        block.setdefault(str(condition["variable"]), []).extend(
            str(v) for v in condition.get("values") or [])
    if conditions:
        statement["Condition"] = {test: {key: _one_or_many(values)
                                         for key, values in block.items()}
                                  for test, block in conditions.items()}
    return statement


def _merge(base: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statements with a Sid replace the base statement of the same Sid; others append."""
    merged = list(base)
    for statement in extra:
        sid = statement.get("Sid")
        index = next((i for i, s in enumerate(merged) if sid and s.get("Sid") == sid), None)
        if index is None:
            merged.append(statement)
        else:
            merged[index] = statement
    return merged


def _statements_of(document: Any) -> list[dict[str, Any]]:
    parsed = json.loads(document) if isinstance(document, str) else document
    found = parsed.get("Statement", []) if isinstance(parsed, dict) else []
    return [found] if isinstance(found, dict) else list(found)


@register_call("aws:iam/getPolicyDocument:getPolicyDocument")
def policy_document(args: Mapping[str, Any]) -> dict[str, Any]:
    statements: list[dict[str, Any]] = []
    for source in args.get("sourcePolicyDocuments") or []:
        statements = _merge(statements, _statements_of(source))
    statements = _merge(statements, [_statement(s) for s in args.get("statements") or []])
    for override in args.get("overridePolicyDocuments") or []:
        statements = _merge(statements, _statements_of(override))
    document: dict[str, Any] = {"Version": args.get("version") or "2012-10-17"}
    if args.get("policyId"):
        document["Id"] = args["policyId"]
    document["Statement"] = statements
    text = json.dumps(document, indent=2)
    minified = json.dumps(document, separators=(",", ":"))
    return {"json": text, "minifiedJson": minified,
            "id": str(int(hashlib.sha256(minified.encode()).hexdigest()[:8], 16))}


@register_call("aws:iam/getPolicy:getPolicy")
def managed_policy(args: Mapping[str, Any]) -> dict[str, Any]:
    """AWS managed policies from policy.semantics.managed_policies; anything else fails the
    way the provider fails for a policy it cannot find."""
    arn = str(args.get("arn") or "")
    name = (managed_policy_name(arn) or "") if arn else str(args.get("name") or "")
    if name not in AWS_MANAGED_POLICIES:
        raise LookupError(f"no IAM policy found matching {arn or name!r} (the offline harness "
                          "knows the AWS managed policies of the pack's snapshot, "
                          "policy/semantics/managed_policies.py, only)")
    arn = arn or f"arn:{PARTITION}:iam::aws:policy/{name}"
    return {"arn": arn, "name": name, "path": "/", "description": f"AWS managed policy {name}",
            "policy": json.dumps(AWS_MANAGED_POLICIES[name]),
            "policyId": "ANPA" + hashlib.sha256(arn.encode()).hexdigest()[:17].upper(),
            "attachmentCount": 0, "tags": {}, "id": arn,
            "pathPrefix": args.get("pathPrefix")}
