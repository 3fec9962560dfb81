"""One "does this resource policy let anyone outside the account in" check, reused by every
service's public-policy guardrail (policy.semantics.exposure holds the judgement)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from pulumi_policy import ResourceValidationArgs

from policy.semantics import exposure

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
