"""KMS keys, multi-region replicas and aliases."""

from __future__ import annotations

from collections.abc import Iterable

from tools.harness import RecordedResource
from tools.local.materialise import materialiser
from tools.local.materialisers import tag_list
from tools.local.world import Materialised, World


def _learn_key(system: World, resource: RecordedResource, key_id: str, arn: str) -> None:
    system.resolver.learn(resource.id, key_id)
    system.resolver.learn(resource.outputs.get("keyId"), key_id)
    system.resolver.learn(resource.outputs.get("arn"), arn)


@materialiser("aws:kms/key:Key")
def key(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    kms = system.client("kms", region)
    args = {"Description": state.get("description") or "", "MultiRegion": bool(state.get("multiRegion")),
            "Tags": tag_list(state.get("tags"), "TagKey", "TagValue")}
    if state.get("policy"):
        args["Policy"] = state["policy"]
    metadata = kms.create_key(**args)["KeyMetadata"]
    if state.get("enableKeyRotation"):
        kms.enable_key_rotation(KeyId=metadata["KeyId"])
    _learn_key(system, resource, metadata["KeyId"], metadata["Arn"])
    return [Materialised(resource.type, resource.name, region, metadata["KeyId"])]


@materialiser("aws:kms/replicaKey:ReplicaKey")
def replica_key(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    declared_primary = str(resource.outputs.get("primaryKeyArn", ""))
    primary = str(state.get("primaryKeyArn", ""))
    if primary != declared_primary:  # the primary is part of this run: replicate it
        primary_region, primary_id = primary.split(":")[3], primary.rsplit("/", 1)[-1]
        metadata = system.client("kms", primary_region).replicate_key(
            KeyId=primary_id, ReplicaRegion=region, Description=state.get("description") or "",
            Tags=tag_list(state.get("tags"), "TagKey", "TagValue"))["ReplicaKeyMetadata"]
    else:  # --regions left the primary out: a multi-region key of its own stands in
        metadata = system.client("kms", region).create_key(
            Description=state.get("description") or "", MultiRegion=True)["KeyMetadata"]
    _learn_key(system, resource, metadata["KeyId"], metadata["Arn"])
    return [Materialised(resource.type, resource.name, region, metadata["KeyId"])]


@materialiser("aws:kms/alias:Alias")
def alias(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    kms = system.client("kms", region)
    try:
        kms.create_alias(AliasName=state["name"], TargetKeyId=state["targetKeyId"])
    except kms.exceptions.AlreadyExistsException:
        # moto copies a key's aliases into the region of a replica; AWS does not.
        kms.update_alias(AliasName=state["name"], TargetKeyId=state["targetKeyId"])
    return [Materialised(resource.type, resource.name, region, state["name"])]
