"""IAM roles and their policies (global: created once, whatever regions the run has)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools.harness import GLOBAL, RecordedResource
from tools.local.materialise import materialiser
from tools.local.materialisers import GLOBAL_SERVICE_REGION, tag_list
from tools.local.system import LocalSystem, Materialised


def _iam(system: LocalSystem) -> Any:
    return system.client("iam", GLOBAL_SERVICE_REGION)


@materialiser("aws:iam/role:Role")
def role(resource: RecordedResource, system: LocalSystem) -> Iterable[Materialised]:
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
def role_policy(resource: RecordedResource, system: LocalSystem) -> Iterable[Materialised]:
    state = system.state(resource)
    name = state.get("name") or resource.name
    _iam(system).put_role_policy(RoleName=state["role"], PolicyName=name,
                                 PolicyDocument=state["policy"])
    return [Materialised(resource.type, resource.name, GLOBAL, f"{state['role']}/{name}")]


@materialiser("aws:iam/policy:Policy")
def managed_policy(resource: RecordedResource, system: LocalSystem) -> Iterable[Materialised]:
    state = system.state(resource)
    created = _iam(system).create_policy(PolicyName=state["name"],
                                         PolicyDocument=state["policy"])["Policy"]
    system.resolver.learn(resource.id, created["Arn"])  # a managed policy's id is its ARN
    system.resolver.learn(resource.outputs.get("arn"), created["Arn"])
    return [Materialised(resource.type, resource.name, GLOBAL, created["Arn"])]


def _aws_managed_policy(arn: str, account_id: str) -> None:
    """Make AWS's managed policy `arn` exist in moto, as it exists in every AWS account.

    moto knows AWS's managed policies only when told to load all of them (about a thousand,
    slow); the stack attaches one (API Gateway's CloudWatch role). Load just that one, from
    moto's own copy of AWS's documents, into the in-process server's IAM backend. A name moto
    does not know stays unknown, and the attach then fails as it would in AWS."""
    import json

    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy, iam_backends

    if ":iam::aws:policy/" not in arn:
        return
    data = json.loads(aws_managed_policies_data).get(arn.rsplit("/", 1)[1])
    backend = iam_backends[account_id]["global"]
    if data is not None and arn not in backend.managed_policies:
        policy = AWSManagedPolicy.from_data(arn.rsplit("/", 1)[1], account_id,
                                            GLOBAL_SERVICE_REGION, data)
        backend.managed_policies[policy.arn] = policy


@materialiser("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
def role_policy_attachment(resource: RecordedResource, system: LocalSystem
                           ) -> Iterable[Materialised]:
    state = system.state(resource)
    account_id = system.client("sts", GLOBAL_SERVICE_REGION).get_caller_identity()["Account"]
    _aws_managed_policy(state["policyArn"], account_id)
    _iam(system).attach_role_policy(RoleName=state["role"], PolicyArn=state["policyArn"])
    return [Materialised(resource.type, resource.name, GLOBAL, f"{state['role']}+{state['policyArn']}")]
