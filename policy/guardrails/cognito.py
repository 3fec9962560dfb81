"""Cognito: no guest identities, no classic flow, admin-only sign-up, strong passwords,
MFA required, threat protection enforced, no user-existence leaks."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Policy, PolicyConfigSchema, ResourceValidationArgs, Severity

from ._common import ADVISORY, config, get, number, resource_guardrail, truthy

IDENTITY_POOL = "aws:cognito/identityPool:IdentityPool"
IDENTITY_POOL_ROLES = "aws:cognito/identityPoolRoleAttachment:IdentityPoolRoleAttachment"
USER_POOL = "aws:cognito/userPool:UserPool"
USER_POOL_CLIENT = "aws:cognito/userPoolClient:UserPoolClient"
DEFAULT_MIN_PASSWORD_LENGTH = 8
MAX_TEMPORARY_PASSWORD_DAYS = 7


def _no_unauthenticated(args: ResourceValidationArgs) -> Iterator[str]:
    if args.resource_type == IDENTITY_POOL_ROLES:
        if get(args.props, "roles", "unauthenticated"):
            yield "roles.unauthenticated gives guest identities AWS credentials"
    elif truthy(args.props.get("allowUnauthenticatedIdentities")):
        yield "allowUnauthenticatedIdentities is true: anyone on the internet gets AWS credentials"


def _no_classic_flow(args: ResourceValidationArgs) -> Iterator[str]:
    if truthy(args.props.get("allowClassicFlow")):
        yield ("allowClassicFlow is true: the basic (classic) flow lets a client pick any role the "
               "pool's roles trust, bypassing role mappings")


def _mfa_on(args: ResourceValidationArgs) -> Iterator[str]:
    mode = args.props.get("mfaConfiguration") or "OFF"
    if mode != "ON":
        yield f"mfaConfiguration is {mode!r}; require MFA (ON)"


def _password_policy(args: ResourceValidationArgs) -> Iterator[str]:
    minimum = number(config(args, "minimumLength", DEFAULT_MIN_PASSWORD_LENGTH)) or 0
    policy = get(args.props, "passwordPolicy")
    length = number(get(policy, "minimumLength"))
    if length is None or length < minimum:
        yield (f"passwordPolicy.minimumLength is {length if length is not None else 'unset'}; "
               f"require at least {minimum:g}")
    missing = [flag for flag in ("requireLowercase", "requireUppercase", "requireNumbers",
                                 "requireSymbols") if not truthy(get(policy, flag))]
    if missing:
        yield f"passwordPolicy does not require {', '.join(missing)}"
    days = number(get(policy, "temporaryPasswordValidityDays"))
    if days is not None and days > MAX_TEMPORARY_PASSWORD_DAYS:
        yield (f"temporaryPasswordValidityDays is {days:g}; at most "
               f"{MAX_TEMPORARY_PASSWORD_DAYS} days")


def _threat_protection(args: ResourceValidationArgs) -> Iterator[str]:
    mode = get(args.props, "userPoolAddOns", "advancedSecurityMode")
    if mode != "ENFORCED":
        yield (f"userPoolAddOns.advancedSecurityMode is {mode!r}; ENFORCED blocks compromised "
               "credentials and risky sign-ins")
    elif str(args.props.get("userPoolTier") or "").upper() in ("LITE", "ESSENTIALS"):
        yield "threat protection needs userPoolTier PLUS; AWS refuses ENFORCED on this tier"


def _admin_only_sign_up(args: ResourceValidationArgs) -> Iterator[str]:
    if truthy(config(args, "allowSelfSignUp", False)):
        return
    if not truthy(get(args.props, "adminCreateUserConfig", "allowAdminCreateUserOnly")):
        yield ("self sign-up is on (adminCreateUserConfig.allowAdminCreateUserOnly is not true): "
               "anyone can create a user and, through an identity pool, get credentials")


def _prevent_user_existence_errors(args: ResourceValidationArgs) -> Iterator[str]:
    if str(args.props.get("preventUserExistenceErrors") or "") != "ENABLED":
        yield ("preventUserExistenceErrors is not ENABLED: sign-in and recovery errors tell "
               "whether a user name exists")


PASSWORD_SCHEMA = PolicyConfigSchema(properties={
    "minimumLength": {"type": "integer", "minimum": 6, "default": DEFAULT_MIN_PASSWORD_LENGTH,
                      "description": "shortest allowed passwordPolicy.minimumLength"},
})
SIGN_UP_SCHEMA = PolicyConfigSchema(properties={
    "allowSelfSignUp": {"type": "boolean", "default": False,
                        "description": "true where users may register themselves"},
})

POLICIES: list[Policy] = [
    resource_guardrail(
        "cognito-no-unauthenticated-identities",
        "Identity pools give no credentials to unauthenticated (guest) identities",
        ["AwsSolutions-COG7", "CKV_AWS_366", "Security Hub Cognito.2",
         "AWS Config cognito-identity-pool-unauth-access-check",
         "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK"],
        [IDENTITY_POOL, IDENTITY_POOL_ROLES], _no_unauthenticated),
    resource_guardrail(
        "cognito-identity-pool-no-classic-flow",
        "Identity pools use the enhanced auth flow only (no basic/classic flow)",
        ["Amazon Cognito identity pools: enhanced (simplified) authflow",
         "AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK"],
        [IDENTITY_POOL], _no_classic_flow),
    resource_guardrail(
        "cognito-mfa-required", "User pools require MFA",
        ["AwsSolutions-COG2", "Security Hub Cognito.5"], [USER_POOL], _mfa_on),
    resource_guardrail(
        "cognito-password-policy",
        "User pools require long passwords with every character class and short-lived "
        "temporary passwords",
        ["AwsSolutions-COG1", "Security Hub Cognito.3"], [USER_POOL], _password_policy,
        severity=Severity.MEDIUM, config_schema=PASSWORD_SCHEMA),
    resource_guardrail(
        "cognito-threat-protection",
        "User pools enforce threat protection (advanced security ENFORCED)",
        ["AwsSolutions-COG3", "Security Hub Cognito.1",
         "AWS Config cognito-user-pool-advanced-security-enabled"],
        [USER_POOL], _threat_protection, severity=Severity.MEDIUM),
    resource_guardrail(
        "cognito-admin-only-sign-up",
        "User pools allow only administrators to create users (policy config "
        "`allowSelfSignUp` opts out)",
        ["Amazon Cognito security best practices: disable self-service sign-up when not needed"],
        [USER_POOL], _admin_only_sign_up, config_schema=SIGN_UP_SCHEMA),
    resource_guardrail(
        "cognito-client-prevent-user-existence-errors",
        "User pool clients do not reveal whether a user exists (advisory)",
        ["Amazon Cognito: managing user existence error responses"],
        [USER_POOL_CLIENT], _prevent_user_existence_errors, level=ADVISORY,
        severity=Severity.LOW),
]
