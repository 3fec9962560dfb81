"""One "does this resource policy let anyone outside the account in" check, reused by every
service's public-policy guardrail (policy.semantics.exposure holds the judgement)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs

from policy.semantics import exposure, transport

from ._common import home_accounts, parsed_documents

Check = Callable[[ResourceValidationArgs], Iterator[str]]


def resource_policy_check(keys_by_type: Mapping[str, tuple[str, ...]],
                          kinds: frozenset[str] = frozenset(
                              {"public", "cross-account", "service-unscoped",
                               "not-principal"})) -> Check:
    """A check reporting every exposure of the policy documents found under `keys_by_type`
    (resource type -> the property names holding its resource policy)."""

    def check(args: ResourceValidationArgs) -> Iterator[str]:
        keys = keys_by_type.get(args.resource_type, ())
        for key, document, problem in parsed_documents(args.props, keys):
            if problem:
                yield problem
                continue
            home = exposure.home_accounts_of(document, home_accounts(args))
            for finding in exposure.findings(document, home):
                if finding.kind in kinds:
                    yield f"{key} {finding}"

    return check


def tls_only_problem(policies: Iterable[Any], service: str, arns: Callable[[Any], list[str]]) -> str | None:
    """None when one of the resource's policies (a separate policy resource replaces the
    inline one, so any may be the effective one) denies every `service` action on every ARN
    `arns(document)` names to everyone without TLS; else what is missing."""
    gaps: list[str] = []
    for policy in policies:
        for _, document, problem in parsed_documents({"policy": policy}, ["policy"]):
            if problem:
                continue
            missing = transport.uncovered(document, service, arns(document))
            if not missing:
                return None
            if transport.tls_only_statements(document, service):
                gaps.append(f"its aws:SecureTransport Deny does not cover {', '.join(missing)}")
    if gaps:
        return "; ".join(dict.fromkeys(gaps))
    return (f"no statement denies every {service} action ({service}:* or *) to every principal "
            "when aws:SecureTransport is false (a Deny of some actions, of one principal or "
            "with further conditions denies almost nothing)")
