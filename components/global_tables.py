"""DynamoDB global tables (version 2019.11.21) replicated to every configured region.

One multi-region customer-managed KMS key encrypts all three tables: the primary key lives
in the primary region and a replica key (same key material, same key id) in every other
region, so each table replica is encrypted with a key in its own region.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.account import AwsAccount
from components.iam import account_administers_key_statement, policy_document
from components.naming import DEVICE_DATA_TABLE, INVENTORY_TABLE, PROVISIONING_TABLE
from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts import inventory

# The inventory item (key, attributes, TTL) is lambdas/contracts/inventory.py: the table is
# declared from it, every writer builds its items with it (docs/data-model.md).
INVENTORY_TTL_ATTRIBUTE = inventory.TTL_ATTRIBUTE
# The provisioning table is shared: CVM device records and fleet allow-list entries, both
# keyed by `deviceUid` (lambdas/contracts/fleet_allow_list.py).
PROVISIONING_KEY = allow_list.TABLE_KEY


@dataclass(frozen=True)
class IndexSpec:
    """A sparse global secondary index on string keys, projecting only the listed attributes."""

    name: str
    hash_key: str
    range_key: str
    projected: tuple[str, ...]


@dataclass(frozen=True)
class TableSpec:
    logical: str
    hash_key: str
    range_key: str | None = None
    ttl_attribute: str | None = None
    indexes: tuple[IndexSpec, ...] = ()


INVENTORY = TableSpec(INVENTORY_TABLE, hash_key=inventory.TABLE_KEY,
                      ttl_attribute=inventory.TTL_ATTRIBUTE)
DEVICE_DATA = TableSpec(DEVICE_DATA_TABLE, hash_key="pk", range_key="sk", ttl_attribute="expiresAt")
# The fleet allow-list's index: administrators list the entries (kind = FLEET_SERIAL) without a
# Scan, which could not be limited to `fleet#` keys; only allow-list entries carry `kind`, and
# no certificate or claim PEM is projected.
ALLOW_LIST_INDEX = IndexSpec(allow_list.INDEX_NAME, allow_list.INDEX_PARTITION_KEY,
                             allow_list.INDEX_SORT_KEY, allow_list.INDEX_PROJECTED)
CVM_RECORDS = TableSpec(PROVISIONING_TABLE, hash_key=PROVISIONING_KEY, indexes=(ALLOW_LIST_INDEX,))
TABLES: tuple[TableSpec, ...] = (INVENTORY, DEVICE_DATA, CVM_RECORDS)


@dataclass(frozen=True)
class GlobalTablesArgs:
    name_prefix: str
    primary_region: str
    replica_regions: tuple[str, ...]
    deletion_protection: bool
    account: AwsAccount
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RegionalTable:
    """One table as seen from one region: its local replica's ARN and stream."""

    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    stream_arn: pulumi.Output[str]


def key_admin_policy(account_id: pulumi.Input[str], partition: pulumi.Input[str]) -> pulumi.Output[str]:
    """Key policy that delegates use of the key to IAM in this account (AWS's default shape)."""
    return pulumi.Output.all(account_id, partition).apply(
        lambda v: policy_document([account_administers_key_statement(v[0], v[1])]))


class GlobalTables(pulumi.ComponentResource):
    """The device inventory, device data and CVM provisioning tables, in every region."""

    def __init__(self, name: str, args: GlobalTablesArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        # The type token names the module; the alias keeps the URNs deployed as `iotmr:data`
        # (the tables and keys below must never be replaced).
        super().__init__("iotmr:global_tables:GlobalTables", name, None,
                         pulumi.ResourceOptions(
                             aliases=[pulumi.Alias(type_="iotmr:data:GlobalTables")]
                         ).merge(opts))
        self._args = args
        child = pulumi.ResourceOptions(parent=self)
        self.account_id = args.account.account_id
        self.partition = args.account.partition
        policy = key_admin_policy(self.account_id, self.partition)

        self.primary_key = aws.kms.Key(
            f"{name}-key",
            region=args.primary_region,
            description=f"{args.name_prefix}: DynamoDB global tables (multi-region primary)",
            multi_region=True,
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy,
            tags=dict(args.tags),
            opts=child,
        )
        aws.kms.Alias(f"{name}-key-alias", region=args.primary_region,
                      name=f"alias/{args.name_prefix}-tables", target_key_id=self.primary_key.key_id,
                      opts=child)
        self.keys: dict[str, pulumi.Output[str]] = {args.primary_region: self.primary_key.arn}
        for region in args.replica_regions:
            replica = aws.kms.ReplicaKey(
                f"{name}-key-{region}",
                region=region,
                primary_key_arn=self.primary_key.arn,
                description=f"{args.name_prefix}: DynamoDB global tables (replica in {region})",
                deletion_window_in_days=30,
                policy=policy,
                tags=dict(args.tags),
                opts=child,
            )
            aws.kms.Alias(f"{name}-key-alias-{region}", region=region,
                          name=f"alias/{args.name_prefix}-tables", target_key_id=replica.key_id,
                          opts=child)
            self.keys[region] = replica.arn

        self.tables: dict[str, aws.dynamodb.Table] = {
            spec.logical: self._table(name, spec) for spec in TABLES
        }
        self.register_outputs({
            "table_names": {k: t.name for k, t in self.tables.items()},
            "table_arns": {k: t.arn for k, t in self.tables.items()},
            "kms_keys": self.keys,
        })

    def _table(self, name: str, spec: TableSpec) -> aws.dynamodb.Table:
        args = self._args
        attributes = [aws.dynamodb.TableAttributeArgs(name=spec.hash_key, type="S")]
        if spec.range_key:
            attributes.append(aws.dynamodb.TableAttributeArgs(name=spec.range_key, type="S"))
        for key in sorted({k for index in spec.indexes for k in (index.hash_key, index.range_key)}):
            attributes.append(aws.dynamodb.TableAttributeArgs(name=key, type="S"))
        return aws.dynamodb.Table(
            f"{name}-{spec.logical}",
            region=args.primary_region,
            name=f"{args.name_prefix}-{spec.logical}",
            billing_mode="PAY_PER_REQUEST",
            hash_key=spec.hash_key,
            range_key=spec.range_key,
            attributes=attributes,
            global_secondary_indexes=[
                aws.dynamodb.TableGlobalSecondaryIndexArgs(
                    name=index.name, projection_type="INCLUDE",
                    key_schemas=[
                        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                            attribute_name=index.hash_key, key_type="HASH"),
                        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                            attribute_name=index.range_key, key_type="RANGE")],
                    non_key_attributes=list(index.projected))
                for index in spec.indexes] or None,
            stream_enabled=True,
            stream_view_type="NEW_AND_OLD_IMAGES",
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=self.primary_key.arn),
            ttl=aws.dynamodb.TableTtlArgs(enabled=True, attribute_name=spec.ttl_attribute)
            if spec.ttl_attribute else None,
            deletion_protection_enabled=args.deletion_protection,
            replicas=[
                aws.dynamodb.TableReplicaArgs(
                    region_name=region,
                    kms_key_arn=self.keys[region],
                    point_in_time_recovery=True,
                    propagate_tags=True,
                    deletion_protection_enabled=args.deletion_protection,
                )
                for region in args.replica_regions
            ],
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def in_region(self, logical: str, region: str) -> RegionalTable:
        """The table's local replica in `region` (the primary table in the primary region)."""
        table = self.tables[logical]
        if region == self._args.primary_region:
            return RegionalTable(table.name, table.arn, table.stream_arn)
        if region not in self._args.replica_regions:
            raise KeyError(f"{region} is not a configured region")

        def replica_field(field_name: str) -> pulumi.Output[str]:
            return table.replicas.apply(lambda replicas: next(
                getattr(r, field_name) or "" for r in (replicas or []) if r.region_name == region))

        arn = pulumi.Output.all(self.partition, self.account_id, table.name).apply(
            lambda v: f"arn:{v[0]}:dynamodb:{region}:{v[1]}:table/{v[2]}")
        return RegionalTable(table.name, arn, replica_field("stream_arn"))
