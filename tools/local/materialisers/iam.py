"""IAM roles and their policies (global: created once, whatever regions the run has)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools.harness import GLOBAL, RecordedResource
from tools.local.materialise import materialiser
from tools.local.materialisers import GLOBAL_SERVICE_REGION, tag_list
from tools.local.world import Materialised, World


def _iam(system: World) -> Any:
    return system.client("iam", GLOBAL_SERVICE_REGION)


@materialiser("aws:iam/role:Role")
def role(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    args: dict[str, Any] = {"RoleName": state["name"],
                            "AssumeRolePolicyDocument": state["assumeRolePolicy"],
                            "Tags": tag_list(state.get("tags"))}
    for key, arg in (("description", "Description"), ("path", "Path")):
        if state.get(key):
            args[arg] = state[key]
    if state.get("maxSessionDuration"):
        args["MaxSessionDuration"] = int(state["maxSessionDuration"])
    created = _iam(system).create_role(**args)["Role"]
    system.resolver.learn(resource.id, created["RoleName"])  # a role's id is its name
    system.resolver.learn(resource.outputs.get("arn"), created["Arn"])
    return [Materialised(resource.type, resource.name, GLOBAL, created["RoleName"])]


@materialiser("aws:iam/rolePolicy:RolePolicy")
def role_policy(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    name = state.get("name") or resource.name
    _iam(system).put_role_policy(RoleName=state["role"], PolicyName=name,
                                 PolicyDocument=state["policy"])
    return [Materialised(resource.type, resource.name, GLOBAL, f"{state['role']}/{name}")]


@materialiser("aws:iam/policy:Policy")
def managed_policy(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    created = _iam(system).create_policy(PolicyName=state["name"],
                                         PolicyDocument=state["policy"])["Policy"]
    system.resolver.learn(resource.id, created["Arn"])  # a managed policy's id is its ARN
    system.resolver.learn(resource.outputs.get("arn"), created["Arn"])
    return [Materialised(resource.type, resource.name, GLOBAL, created["Arn"])]


@materialiser("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
def role_policy_attachment(resource: RecordedResource, system: World
                           ) -> Iterable[Materialised]:
    state = system.state(resource)
    _iam(system).attach_role_policy(RoleName=state["role"], PolicyArn=state["policyArn"])
    return [Materialised(resource.type, resource.name, GLOBAL, f"{state['role']}+{state['policyArn']}")]
