"""Cognito: no guest identities, MFA required."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Policy, ResourceValidationArgs

from ._common import resource_guardrail, truthy

IDENTITY_POOL = "aws:cognito/identityPool:IdentityPool"
USER_POOL = "aws:cognito/userPool:UserPool"


def _no_unauthenticated(args: ResourceValidationArgs) -> Iterator[str]:
    if truthy(args.props.get("allowUnauthenticatedIdentities")):
        yield "allowUnauthenticatedIdentities is true: anyone on the internet gets AWS credentials"


def _mfa_on(args: ResourceValidationArgs) -> Iterator[str]:
    mode = args.props.get("mfaConfiguration") or "OFF"
    if mode != "ON":
        yield f"mfaConfiguration is {mode!r}; require MFA (ON)"


POLICIES: list[Policy] = [
    resource_guardrail(
        "cognito-no-unauthenticated-identities",
        "Identity pools allow no unauthenticated identities",
        ["AwsSolutions-COG7", "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK"],
        [IDENTITY_POOL], _no_unauthenticated),
    resource_guardrail(
        "cognito-mfa-required", "User pools require MFA",
        ["AwsSolutions-COG2"], [USER_POOL], _mfa_on),
]
