"""Does a resource policy refuse every request made without TLS?

A TLS-only statement counts when it denies *every* action of the service on *every*
resource the policy governs to *every* principal whenever `aws:SecureTransport` is false,
and nothing else narrows it: a Deny of only `s3:PutObject`, of the bucket but not its
objects, of one role, or of another queue's ARN denies almost nothing. Several statements
may share the work (one for the bucket, one for its objects).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import globs
from .documents import Statement, statements
from .exposure import everyone


def _everyone(statement: Statement) -> bool:
    return statement.not_principal is None and everyone(statement.principal)


def _only_insecure_transport(statement: Statement) -> bool:
    """Its conditions all say aws:SecureTransport is false, and there is at least one."""
    if not statement.conditions:
        return False
    for condition in statement.conditions:
        if condition.key != "aws:securetransport" or condition.base != "bool" \
                or condition.set_qualifier or not condition.values \
                or not all(v.strip().lower() == "false" for v in condition.values):
            return False
    return True


def _every_action(statement: Statement, service: str) -> bool:
    if statement.actions is None:
        return False  # NotAction: some actions stay allowed over plain HTTP
    return any(globs.covers(a.strip(), f"{service}:*", ignore_case=True) for a in statement.actions)


def tls_only_statements(document: Mapping[str, Any] | None, service: str) -> list[Statement]:
    """The Deny statements that refuse every action of `service` without TLS, to everyone."""
    return [s for s in statements(document)
            if s.denies and _everyone(s) and _only_insecure_transport(s) and _every_action(s, service)
            and s.not_resources is None]


def uncovered(document: Mapping[str, Any] | None, service: str, arns: Iterable[str]) -> list[str]:
    """The ARNs (of the resource and, for S3, its objects) no TLS-only Deny covers; every
    ARN listed when the policy has no TLS-only Deny at all."""
    found = tls_only_statements(document, service)
    return [arn for arn in arns
            if not any(any(globs.covers(r.strip(), arn) for r in (s.resources or ("*",)))
                       for s in found)]


def partition_of(document: Mapping[str, Any] | None, default: str = "aws") -> str:
    """The partition the policy's own ARNs are in (`aws`, `aws-cn`, ...)."""
    for statement in statements(document):
        for resource in statement.resources or ():
            parts = resource.strip().split(":")
            if len(parts) > 2 and parts[0] == "arn" and parts[1] and not globs.has_wildcard(parts[1]):
                return parts[1]
    return default
