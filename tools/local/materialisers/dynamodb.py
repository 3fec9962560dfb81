"""DynamoDB tables: a global table becomes one regional table per replica region of the run
(same name, streams as declared); the global-tables emulation replicates between them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tools.harness import RecordedResource
from tools.local.materialise import materialiser
from tools.local.materialisers import tag_list
from tools.local.system import LocalSystem, Materialised


def _index(spec: Mapping[str, Any]) -> dict[str, Any]:
    if spec.get("keySchemas"):  # pulumi-aws v7's form (hashKey/rangeKey are deprecated)
        keys = [{"AttributeName": k["attributeName"], "KeyType": k["keyType"]}
                for k in spec["keySchemas"]]
    else:
        keys = [{"AttributeName": spec["hashKey"], "KeyType": "HASH"}]
        if spec.get("rangeKey"):
            keys.append({"AttributeName": spec["rangeKey"], "KeyType": "RANGE"})
    projection: dict[str, Any] = {"ProjectionType": spec.get("projectionType") or "ALL"}
    if spec.get("nonKeyAttributes"):
        projection["NonKeyAttributes"] = list(spec["nonKeyAttributes"])
    return {"IndexName": spec["name"], "KeySchema": keys, "Projection": projection}


def table_regions(state: Mapping[str, Any], declared_region: str) -> dict[str, Mapping[str, Any]]:
    """region -> its replica settings ({} for the table's own region)."""
    regions: dict[str, Mapping[str, Any]] = {declared_region: {}}
    for replica in state.get("replicas") or []:
        regions[str(replica["regionName"])] = replica
    return regions


def create_table_args(state: Mapping[str, Any], replica: Mapping[str, Any]) -> dict[str, Any]:
    keys = [{"AttributeName": state["hashKey"], "KeyType": "HASH"}]
    if state.get("rangeKey"):
        keys.append({"AttributeName": state["rangeKey"], "KeyType": "RANGE"})
    args: dict[str, Any] = {
        "TableName": state["name"],
        "KeySchema": keys,
        "AttributeDefinitions": [{"AttributeName": a["name"], "AttributeType": a["type"]}
                                 for a in state.get("attributes") or []],
        "BillingMode": state.get("billingMode") or "PROVISIONED",
        "Tags": tag_list(state.get("tags")),
    }
    if args["BillingMode"] == "PROVISIONED":
        args["ProvisionedThroughput"] = {"ReadCapacityUnits": int(state.get("readCapacity") or 1),
                                         "WriteCapacityUnits": int(state.get("writeCapacity") or 1)}
    if state.get("globalSecondaryIndexes"):
        args["GlobalSecondaryIndexes"] = [_index(i) for i in state["globalSecondaryIndexes"]]
    if state.get("localSecondaryIndexes"):
        args["LocalSecondaryIndexes"] = [_index({**i, "hashKey": state["hashKey"]})
                                         for i in state["localSecondaryIndexes"]]
    if state.get("streamEnabled"):
        args["StreamSpecification"] = {"StreamEnabled": True,
                                       "StreamViewType": state.get("streamViewType")}
    sse = state.get("serverSideEncryption") or {}
    if sse.get("enabled"):
        key = replica.get("kmsKeyArn") if replica else sse.get("kmsKeyArn")
        args["SSESpecification"] = {"Enabled": True, "SSEType": "KMS",
                                    **({"KMSMasterKeyId": key} if key else {})}
    protected = replica.get("deletionProtectionEnabled") if replica else None
    if protected is None:
        protected = state.get("deletionProtectionEnabled")
    args["DeletionProtectionEnabled"] = bool(protected)
    return args


@materialiser("aws:dynamodb/table:Table", spans_regions=True)
def table(resource: RecordedResource, system: LocalSystem) -> Iterable[Materialised]:
    state = system.state(resource)
    made = []
    declared_replicas = {r.get("regionName"): r for r in resource.outputs.get("replicas") or []}
    for region, replica in table_regions(state, str(resource.region)).items():
        if region not in system.regions:
            continue
        dynamodb = system.client("dynamodb", region)
        description = dynamodb.create_table(**create_table_args(state, replica))["TableDescription"]
        pitr = replica.get("pointInTimeRecovery") if replica else \
            (state.get("pointInTimeRecovery") or {}).get("enabled")
        if pitr:
            dynamodb.update_continuous_backups(
                TableName=state["name"],
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
        ttl = state.get("ttl") or {}
        if ttl.get("enabled"):
            dynamodb.update_time_to_live(TableName=state["name"], TimeToLiveSpecification={
                "Enabled": True, "AttributeName": ttl["attributeName"]})
        declared = declared_replicas.get(region) or resource.outputs
        system.resolver.learn(declared.get("streamArn"), description.get("LatestStreamArn"))
        made.append(Materialised(resource.type, resource.name, region, state["name"]))
    return made
