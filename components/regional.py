"""Everything one region runs. Each capability is a child component of `RegionalStack`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.account import AwsAccount
from components.config import StackConfig
from components.device_edge import DeviceEdge, DeviceEdgeArgs
from components.global_tables import RegionalTable
from components.jitr import JitrArgs, JitrPipeline


@dataclass(frozen=True)
class RegionalStackArgs:
    config: StackConfig
    region: str
    inventory: RegionalTable
    device_data: RegionalTable
    cvm_records: RegionalTable
    account: AwsAccount
    tags: Mapping[str, str] = field(default_factory=dict)


def regional_key_policy(account_id: str, partition: str, region: str) -> str:
    """IAM in this account administers the key; CloudWatch Logs may use it only for this
    account's log groups in this region (the encryption context names the log group)."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersKeyThroughIam",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchLogsEncryptsOurLogGroups",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                           "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
                           "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                          f"arn:{partition}:logs:{region}:{account_id}:log-group:*"}},
            },
        ],
    }, sort_keys=True)


class RegionalStack(pulumi.ComponentResource):
    """One region's share of the system."""

    def __init__(self, name: str, args: RegionalStackArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:regional:RegionalStack", name, None, opts)
        region = args.region
        config = args.config

        # Encrypts this region's logs, queues and topics.
        self.key = aws.kms.Key(
            f"{name}-key",
            region=region,
            description=f"{config.resource_name(region)}: logs and queues",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.all(args.account.account_id, args.account.partition).apply(
                lambda v: regional_key_policy(v[0], v[1], region)),
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.kms.Alias(f"{name}-key-alias", region=region,
                      name=f"alias/{config.resource_name('regional')}",
                      target_key_id=self.key.key_id, opts=pulumi.ResourceOptions(parent=self))

        # Where devices connect: domain, TLS, our CA, device policy, logging, latency DNS.
        self.edge = DeviceEdge(
            f"{name}-edge",
            DeviceEdgeArgs(config=config, region=region, log_key_arn=self.key.arn,
                           account=args.account, tags=args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )

        # Devices our CA issued register themselves on first connect, in whichever region.
        self.jitr = JitrPipeline(
            f"{name}-jitr",
            JitrArgs(region=region, name_prefix=config.resource_name(region),
                     ca_certificate_id=self.edge.ca_certificate.id,
                     ca_certificate_pem=config.ca_certificate_pem,
                     device_policy_name=self.edge.device_policy.name,
                     inventory=args.inventory, kms_key_arn=self.key.arn,
                     log_retention_days=config.log_retention_days,
                     account=args.account, tags=args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.register_outputs({
            "kms_key_arn": self.key.arn,
            "ca_certificate_id": self.edge.ca_certificate.id,
            "device_policy_name": self.edge.device_policy.name,
        })
