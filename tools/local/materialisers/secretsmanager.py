"""Secrets Manager secrets: declared empty (the owner's tool writes the value), with the
declared CMK. moto appends its own 6-character suffix to the ARN: the resolver learns it, so
a function's environment naming the declared ARN reaches this secret."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools.harness import RecordedResource
from tools.local.materialise import materialiser
from tools.local.materialisers import tag_list
from tools.local.world import Materialised, World


@materialiser("aws:secretsmanager/secret:Secret")
def secret(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    args: dict[str, Any] = {"Name": state["name"], "Tags": tag_list(state.get("tags"))}
    if state.get("description"):
        args["Description"] = state["description"]
    if state.get("kmsKeyId"):
        args["KmsKeyId"] = state["kmsKeyId"]
    created = system.client("secretsmanager", region).create_secret(**args)
    system.resolver.learn(resource.outputs.get("arn"), created["ARN"])
    system.resolver.learn(resource.id, created["ARN"])  # a secret's id is its ARN
    return [Materialised(resource.type, resource.name, region, state["name"])]
