"""DynamoDB: backups, customer-managed encryption, replica coverage, deletion protection,
resource policies that let no one outside the account in."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Policy, PolicyConfigSchema, ResourceValidationArgs, StackValidationArgs

from ._common import (
    ADVISORY,
    ENVIRONMENT_SCHEMA,
    as_list,
    config,
    environment,
    get,
    is_customer_managed_key,
    is_prod,
    resource_guardrail,
    resource_region,
    stack_guardrail,
    truthy,
)
from ._exposure import resource_policy_check

TABLE = "aws:dynamodb/table:Table"
TABLE_REPLICA = "aws:dynamodb/tableReplica:TableReplica"
RESOURCE_POLICY = "aws:dynamodb/resourcePolicy:ResourcePolicy"


def _replicas(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in as_list(props.get("replicas")) if isinstance(r, Mapping)]


def _pitr(args: ResourceValidationArgs) -> Iterator[str]:
    props = args.props
    if args.resource_type == TABLE_REPLICA:
        if not truthy(props.get("pointInTimeRecovery")):
            yield "table replica has point-in-time recovery off"
        return
    if not truthy(get(props, "pointInTimeRecovery", "enabled")):
        yield "pointInTimeRecovery.enabled is not true"
    for replica in _replicas(props):
        if not truthy(replica.get("pointInTimeRecovery")):
            yield f"replica in {replica.get('regionName')} has pointInTimeRecovery off"


def _cmk(args: ResourceValidationArgs) -> Iterator[str]:
    props = args.props
    if args.resource_type == TABLE_REPLICA:
        if not is_customer_managed_key(props.get("kmsKeyArn")):
            yield "table replica has no customer-managed kmsKeyArn"
        return
    sse = props.get("serverSideEncryption")
    if not truthy(get(sse, "enabled")) or not is_customer_managed_key(get(sse, "kmsKeyArn")):
        yield ("serverSideEncryption must be enabled with a customer-managed kmsKeyArn (the "
               "default AWS-owned key gives no key policy or audit trail)")
    for replica in _replicas(props):
        if not is_customer_managed_key(replica.get("kmsKeyArn")):
            yield f"replica in {replica.get('regionName')} has no customer-managed kmsKeyArn"


def _deletion_protection(want_prod: bool) -> Any:
    def check(args: ResourceValidationArgs) -> Iterator[str]:
        tags = args.props.get("tags")
        if is_prod(environment(args, tags if isinstance(tags, Mapping) else None)) != want_prod:
            return
        if not truthy(args.props.get("deletionProtectionEnabled")):
            yield "deletionProtectionEnabled is not true"
        for replica in _replicas(args.props):
            if not truthy(replica.get("deletionProtectionEnabled")):
                yield f"replica in {replica.get('regionName')} has deletionProtectionEnabled off"
    return check


def _global_table_regions(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    configured = [r for r in as_list(config(args, "regions", [])) if isinstance(r, str)]
    wanted = set(configured) or ({resource_region(r) for r in args.resources} - {None})
    standalone: dict[str, set[str]] = {}
    for r in args.resources:
        if r.resource_type == TABLE_REPLICA:
            region = resource_region(r)
            if region:
                standalone.setdefault(str(r.props.get("globalTableArn")), set()).add(region)
    for r in args.resources:
        if r.resource_type != TABLE:
            continue
        covered = {str(replica.get("regionName")) for replica in _replicas(r.props)}
        covered |= standalone.get(str(r.props.get("arn")), set())
        if not covered:
            continue  # a single-region table, not a global table
        covered.add(str(resource_region(r)))
        missing = sorted(str(m) for m in wanted - covered)
        if missing:
            yield (f"global table {r.props.get('name') or r.name} has no replica in "
                   f"{', '.join(missing)}", r.urn)


REGIONS_SCHEMA = PolicyConfigSchema(properties={
    "regions": {"type": "array", "items": {"type": "string"}, "default": [],
                "description": "regions every global table must cover; empty = every region "
                               "the stack uses"},
})
ENV_SCHEMA = PolicyConfigSchema(properties={"environment": ENVIRONMENT_SCHEMA})

POLICIES: list[Policy] = [
    resource_guardrail(
        "dynamodb-pitr-enabled",
        "DynamoDB tables and every replica have point-in-time recovery",
        ["CKV_AWS_28", "CKV_AWS_165", "AwsSolutions-DDB3", "NIST.800.53.R5-DynamoDBPITREnabled",
         "AWS Config dynamodb-pitr-enabled"],
        [TABLE, TABLE_REPLICA], _pitr),
    resource_guardrail(
        "dynamodb-cmk-encryption",
        "DynamoDB tables and every replica are encrypted with a customer-managed KMS key",
        ["CKV_AWS_119", "AWS Config dynamodb-table-encrypted-kms"], [TABLE, TABLE_REPLICA], _cmk),
    stack_guardrail(
        "dynamodb-global-table-all-regions",
        "Every global table has a replica in every configured region (policy config `regions`, "
        "else every region the stack uses)",
        ["AWS Well-Architected REL10-BP01 (multi-region data)"], _global_table_regions,
        config_schema=REGIONS_SCHEMA),
    resource_guardrail(
        "dynamodb-deletion-protection-prod",
        "Production DynamoDB tables and replicas have deletion protection",
        ["AWS Config dynamodb-table-deletion-protection-enabled"],
        [TABLE, TABLE_REPLICA], _deletion_protection(True), config_schema=ENV_SCHEMA),
    resource_guardrail(
        "dynamodb-deletion-protection-dev",
        "Non-production DynamoDB tables should have deletion protection (advisory)",
        ["AWS Config dynamodb-table-deletion-protection-enabled"],
        [TABLE, TABLE_REPLICA], _deletion_protection(False), level=ADVISORY, config_schema=ENV_SCHEMA),
    resource_guardrail(
        "dynamodb-resource-policy-not-public",
        "Table and stream resource policies admit no one outside the account (shared "
        "resource-policy judgement)",
        ["IAM Access Analyzer external access findings (AWS::DynamoDB::Table, ::Stream)"],
        [RESOURCE_POLICY], resource_policy_check({RESOURCE_POLICY: ("policy",)})),
]
