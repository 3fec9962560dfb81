"""What an operator needs to evacuate a region and bring it back (`python -m tools.evacuate`).

One IAM managed policy for the stack (IAM is global): attach it to the operators' role. It
allows only the calls the tool makes: reading and flipping the stack's own evacuation
controls (components/failover.py), reading its regions' health, disconnecting MQTT clients
(AWS IoT data plane DeleteConnection), the read-only comparison of each region's registry
with its inventory replica (tools/replication_reconcile.py), and `--restore`'s backfill, which
is `tools.reconcile --apply`: the replication machine started with a repair request, and the
device state converged by the shadow-replication function's own code run as the operator
(the same statements as the function's, components/shadow_replication/component.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.account import AwsAccount
from components.iam import Statement, policy_document
from components.shadow_replication.component import device_state_statements

# The registry's list APIs take no resource ARN (Service Authorization Reference, AWS IoT:
# ListThings, ListCertificates, ListTargetsForPolicy have no resource type but the policy).
REGISTRY_READS = ("iot:ListThings", "iot:ListCertificates")


@dataclass(frozen=True)
class RegionEvacuation:
    """One region's evacuation controls and combined checks, and what the comparison reads."""

    region: str
    control_ids: Sequence[str]
    health_check_ids: Sequence[str]
    inventory_table_arn: str
    tables_key_arn: str  # the global tables' CMK in this region (not the regional one)
    device_policy_name: str
    # What the backfill repairs through, where the region runs the capability (else None).
    replication_machine_arn: str | None = None
    device_data_table_arn: str | None = None


def health_check_arn(partition: str, health_check_id: str) -> str:
    return f"arn:{partition}:route53:::healthcheck/{health_check_id}"


def evacuation_operator_policy(partition: str, account_id: str,
                               regions: Sequence[RegionEvacuation]) -> str:
    controls = sorted(health_check_arn(partition, c) for r in regions for c in r.control_ids)
    checks = sorted(health_check_arn(partition, c) for r in regions
                    for c in (*r.health_check_ids, *r.control_ids))
    clients = sorted(f"arn:{partition}:iot:{r.region}:{account_id}:client/*" for r in regions)
    return policy_document([
        {"Sid": "FlipEvacuationControls", "Effect": "Allow",
         "Action": ["route53:UpdateHealthCheck"], "Resource": controls},
        {"Sid": "ReadRegionHealth", "Effect": "Allow",
         "Action": ["route53:GetHealthCheck", "route53:GetHealthCheckStatus"], "Resource": checks},
        {"Sid": "MoveConnectedDevices", "Effect": "Allow",
         "Action": ["iot:DeleteConnection"], "Resource": clients},
        {"Sid": "ReadInventoryReplicas", "Effect": "Allow", "Action": ["dynamodb:Scan"],
         "Resource": sorted(r.inventory_table_arn for r in regions)},
        *[{"Sid": f"DecryptInventory{i}", "Effect": "Allow", "Action": ["kms:Decrypt"],
           "Resource": [r.tables_key_arn],
           "Condition": {"StringEquals": {"kms:ViaService": f"dynamodb.{r.region}.amazonaws.com"}}}
          for i, r in enumerate(sorted(regions, key=lambda r: r.region))],
        {"Sid": "ReadDevicePolicyTargets", "Effect": "Allow", "Action": ["iot:ListTargetsForPolicy"],
         "Resource": sorted(f"arn:{partition}:iot:{r.region}:{account_id}:policy/"
                            f"{r.device_policy_name}" for r in regions)},
        {"Sid": "ListRegistries", "Effect": "Allow", "Action": list(REGISTRY_READS),
         "Resource": ["*"]},
        # Route53's verdict on a calculated check is only in CloudWatch (HealthCheckStatus);
        # GetMetricStatistics takes no resource ARN.
        {"Sid": "ReadRoute53Verdict", "Effect": "Allow", "Action": ["cloudwatch:GetMetricStatistics"],
         "Resource": ["*"]},
        *backfill_statements(partition, account_id, regions),
    ])


def backfill_statements(partition: str, account_id: str,
                        regions: Sequence[RegionEvacuation]) -> list[Statement]:
    """`--restore`'s backfill (`tools.reconcile --apply`): repair requests to the regions'
    replication machines; device-state records read and converged as the function does."""
    machines = sorted(r.replication_machine_arn for r in regions if r.replication_machine_arn)
    with_state = sorted((r for r in regions if r.device_data_table_arn), key=lambda r: r.region)
    statements: list[Statement] = []
    if machines:
        statements.append({"Sid": "RepairThroughReplicationMachines", "Effect": "Allow",
                           "Action": ["states:StartSyncExecution"], "Resource": machines})
    if with_state:
        statements.append({"Sid": "ReadDeviceStateRecords", "Effect": "Allow",
                           "Action": ["dynamodb:Scan"],
                           "Resource": [str(r.device_data_table_arn) for r in with_state]})
    for i, r in enumerate(with_state):
        statements += device_state_statements(
            partition=partition, region=r.region, account_id=account_id,
            table_arn=str(r.device_data_table_arn), tables_key_arn=r.tables_key_arn,
            sid_suffix=str(i))
    return statements


@dataclass(frozen=True)
class EvacuationAccessArgs:
    account: AwsAccount
    regions: Mapping[str, Mapping[str, pulumi.Input[str] | Sequence[pulumi.Input[str]] | None]]
    tags: Mapping[str, str] = field(default_factory=dict)


class EvacuationAccess(pulumi.ComponentResource):
    """The operators' managed policy for `tools.evacuate` (attach it to their role)."""

    def __init__(self, name: str, args: EvacuationAccessArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:edge:EvacuationAccess", name, None, opts)
        region_names = sorted(args.regions)

        def document(values: list[object]) -> str:
            partition, account_id, *per_region = values
            regions = [RegionEvacuation(region, **per_region[i])  # type: ignore[arg-type]
                       for i, region in enumerate(region_names)]
            return evacuation_operator_policy(str(partition), str(account_id), regions)

        # Provider-named (`evacuation-operator-<hex>`, output `evacuationOperatorPolicyArn`): a
        # change that replaces it creates the new policy before the old one goes.
        self.policy = aws.iam.Policy(
            f"{name}-operator",
            description="Evacuate a region of the device domain and restore it "
                        "(python -m tools.evacuate)",
            policy=pulumi.Output.all(args.account.partition, args.account.account_id,
                                     *[pulumi.Output.all(**args.regions[r])
                                       for r in region_names]).apply(document),
            tags=dict(args.tags), opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"policy_arn": self.policy.arn})
