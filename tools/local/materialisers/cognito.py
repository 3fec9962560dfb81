"""Cognito: user pools (password policy, MFA, admin-only sign-up as declared), app clients,
groups (with their roles) and identity pools. moto names pools and clients itself: the
resolver learns the ids, so the identity pool's provider (`cognito-idp.<region>.amazonaws
.com/<pool id>`) and client id resolve to the runtime pool. moto has no identity-pool roles:
the fleet-provisioning emulation chooses the role from the declared role attachment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tools.harness import RecordedResource
from tools.local.materialise import materialiser, not_materialised
from tools.local.world import Materialised, World


def _password_policy(policy: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, name in (("minimumLength", "MinimumLength"),
                      ("temporaryPasswordValidityDays", "TemporaryPasswordValidityDays"),
                      ("passwordHistorySize", "PasswordHistorySize")):
        if policy.get(key) is not None:
            out[name] = int(policy[key])
    for key, name in (("requireUppercase", "RequireUppercase"),
                      ("requireLowercase", "RequireLowercase"),
                      ("requireNumbers", "RequireNumbers"), ("requireSymbols", "RequireSymbols")):
        if policy.get(key) is not None:
            out[name] = bool(policy[key])
    return out


@materialiser("aws:cognito/userPool:UserPool")
def user_pool(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    idp = system.client("cognito-idp", region)
    args: dict[str, Any] = {
        "PoolName": state["name"],
        "MfaConfiguration": state.get("mfaConfiguration") or "OFF",
        "UserPoolTags": {str(k): str(v) for k, v in (state.get("tags") or {}).items()}}
    if state.get("passwordPolicy"):
        args["Policies"] = {"PasswordPolicy": _password_policy(state["passwordPolicy"])}
    admin = state.get("adminCreateUserConfig") or {}
    if admin:
        args["AdminCreateUserConfig"] = {
            "AllowAdminCreateUserOnly": bool(admin.get("allowAdminCreateUserOnly"))}
    if state.get("autoVerifiedAttributes"):
        args["AutoVerifiedAttributes"] = list(state["autoVerifiedAttributes"])
    add_ons = state.get("userPoolAddOns") or {}
    if add_ons.get("advancedSecurityMode"):
        args["UserPoolAddOns"] = {"AdvancedSecurityMode": add_ons["advancedSecurityMode"]}
    usernames = state.get("usernameConfiguration") or {}
    if "caseSensitive" in usernames:
        args["UsernameConfiguration"] = {"CaseSensitive": bool(usernames["caseSensitive"])}
    created = idp.create_user_pool(**args)["UserPool"]
    if (state.get("softwareTokenMfaConfiguration") or {}).get("enabled"):
        idp.set_user_pool_mfa_config(
            UserPoolId=created["Id"], MfaConfiguration=args["MfaConfiguration"],
            SoftwareTokenMfaConfiguration={"Enabled": True})
    system.resolver.learn(resource.id, created["Id"])
    system.resolver.learn(resource.outputs.get("arn"), created["Arn"])
    return [Materialised(resource.type, resource.name, region, created["Id"])]


@materialiser("aws:cognito/userPoolClient:UserPoolClient")
def user_pool_client(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    args: dict[str, Any] = {"UserPoolId": state["userPoolId"], "ClientName": state["name"],
                            "GenerateSecret": bool(state.get("generateSecret"))}
    for key, name in (("explicitAuthFlows", "ExplicitAuthFlows"),
                      ("supportedIdentityProviders", "SupportedIdentityProviders")):
        if state.get(key):
            args[name] = list(state[key])
    if state.get("preventUserExistenceErrors"):
        args["PreventUserExistenceErrors"] = state["preventUserExistenceErrors"]
    created = system.client("cognito-idp", region).create_user_pool_client(**args)["UserPoolClient"]
    system.resolver.learn(resource.id, created["ClientId"])
    return [Materialised(resource.type, resource.name, region, created["ClientId"])]


@materialiser("aws:cognito/userGroup:UserGroup")
def user_group(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    args: dict[str, Any] = {"UserPoolId": state["userPoolId"], "GroupName": state["name"]}
    for key, name in (("description", "Description"), ("roleArn", "RoleArn")):
        if state.get(key):
            args[name] = state[key]
    if state.get("precedence") is not None:
        args["Precedence"] = int(state["precedence"])
    system.client("cognito-idp", region).create_group(**args)
    return [Materialised(resource.type, resource.name, region, state["name"])]


@materialiser("aws:cognito/identityPool:IdentityPool")
def identity_pool(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    providers = [{"ProviderName": p["providerName"], "ClientId": p["clientId"],
                  "ServerSideTokenCheck": bool(p.get("serverSideTokenCheck"))}
                 for p in state.get("cognitoIdentityProviders") or []]
    created = system.client("cognito-identity", region).create_identity_pool(
        IdentityPoolName=state["identityPoolName"],
        AllowUnauthenticatedIdentities=bool(state.get("allowUnauthenticatedIdentities")),
        AllowClassicFlow=bool(state.get("allowClassicFlow")),
        CognitoIdentityProviders=providers,
        IdentityPoolTags={str(k): str(v) for k, v in (state.get("tags") or {}).items()})
    system.resolver.learn(resource.id, created["IdentityPoolId"])
    return [Materialised(resource.type, resource.name, region, created["IdentityPoolId"])]


not_materialised("aws:cognito/identityPoolRoleAttachment:IdentityPoolRoleAttachment",
                 "moto has no identity-pool roles: the fleet emulation picks the role from the "
                 "declared attachment")
