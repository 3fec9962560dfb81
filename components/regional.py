"""Everything one region runs: its CMK, the device edge, then each enabled capability."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_aws_native as aws_native

from components.account import AwsAccount
from components.capabilities import CAPABILITIES
from components.config import StackConfig
from components.context import EdgeOutputs, RegionalContext, RegionalTables
from components.edge import DeviceEdge, DeviceEdgeArgs
from components.iam import account_administers_key_statement, policy_document
from components.monitoring.component import RegionalMonitoring, RegionalMonitoringArgs
from components.monitoring.topic import (
    alarm_actions_transformation,
    alarm_publisher_key_statement,
    alert_topic,
)
from components.monitoring.watch import Watch
from components.packaging import LambdaLayer


@dataclass(frozen=True)
class EvacuationEndpoint:
    """One latency endpoint's combined health check and its operator's evacuation control."""

    health_check: aws.route53.HealthCheck
    control: aws.route53.HealthCheck

    def outputs(self) -> dict[str, pulumi.Output[str]]:
        return {"healthCheckId": self.health_check.id, "controlId": self.control.id}


@dataclass(frozen=True)
class RegionalStackArgs:
    config: StackConfig  # the composition root of a region reads the whole config once
    region: str
    tables: RegionalTables
    account: AwsAccount
    lambda_layer: LambdaLayer
    tags: Mapping[str, str] = field(default_factory=dict)


def regional_key_policy(account_id: str, partition: str, region: str, prefix: str) -> str:
    """IAM in this account administers the key; CloudWatch Logs may use it only for this
    stack's log groups in this region (the encryption context names the log group);
    CloudWatch alarms of this region's stack may encrypt their notifications to the alert
    topic (`prefix`: the alarms' name prefix)."""
    return policy_document([
        alarm_publisher_key_statement(partition=partition, region=region,
                                      account_id=account_id, prefix=prefix),
        account_administers_key_statement(account_id, partition),
        {
            "Sid": "CloudWatchLogsEncryptsOurLogGroups",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                       "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
                       "kms:DescribeKey"],
            "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": [
                f"arn:{partition}:logs:{region}:{account_id}:log-group:{name}"
                for name in stack_log_group_patterns(prefix)]}},
        },
    ])


def stack_log_group_patterns(prefix: str) -> list[str]:
    """The names this region's log groups take (AWS IoT's fixed one; every other carries
    the region's `prefix`): the key serves these, not any log group of the account."""
    return ["AWSIotLogsV2", f"/aws/lambda/{prefix}-*", f"/aws/vendedlogs/states/{prefix}-*",
            f"/aws/vendedlogs/pipes/{prefix}-*", f"/aws/apigateway/{prefix}-*",
            f"aws-waf-logs-{prefix}-*"]


def edge_args(config: StackConfig, region: str, log_key_arn: pulumi.Input[str],
              account: AwsAccount, tags: Mapping[str, str]) -> DeviceEdgeArgs:
    return DeviceEdgeArgs(
        region=region,
        app_name=config.app_name,
        domain_configuration_name=config.resource_name("devices"),
        device_policy_name=config.names.device_policy,
        name_prefix=config.resource_name(region),
        device_domain=config.device_domain,
        hosted_zone_id=config.hosted_zone_id,
        ca_certificate_pem=config.ca_certificate_pem,
        tls_security_policy=config.tls_security_policy,
        log_retention_days=config.log_retention_days,
        server_certificate_mode=config.server_certificate_mode,
        server_certificate_arn=config.imported_server_certificate_arns.get(region),
        validation_certificate_arn=config.imported_validation_certificate_arns.get(region),
        log_key_arn=log_key_arn,
        account=account,
        account_settings=config.iot_account_settings,
        tags=tags,
        device_cas=config.device_cas,
    )


class RegionalStack(pulumi.ComponentResource):
    """One region's share of the system."""

    def __init__(self, name: str, args: RegionalStackArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:regional:RegionalStack", name, None, opts)
        region = args.region
        config = args.config
        prefix = config.resource_name(region)

        # Encrypts this region's logs, queues and topics.
        self.key = aws.kms.Key(
            f"{name}-key",
            region=region,
            description=f"{config.resource_name(region)}: logs and queues",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.all(args.account.account_id, args.account.partition).apply(
                lambda v: regional_key_policy(v[0], v[1], region, prefix)),
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.kms.Alias(f"{name}-key-alias", region=region,
                      name=f"alias/{config.resource_name('regional')}",
                      target_key_id=self.key.key_id, opts=pulumi.ResourceOptions(parent=self))

        # Where every alarm and audit finding of the region goes (config key `alerts`).
        self.alert_topic = alert_topic(
            f"{name}-alerts", parent=self, region=region, topic_name=f"{prefix}-alerts",
            prefix=prefix, kms_key_arn=self.key.arn, account_id=args.account.account_id,
            partition=args.account.partition,
            subscriptions=config.alert_settings.subscriptions, tags=args.tags)
        # Everything below: each CloudWatch alarm notifies the alert topic (none is silent).
        child = pulumi.ResourceOptions(
            parent=self, transformations=[alarm_actions_transformation(self.alert_topic.arn)])
        # Cloud Control types (Device Defender) go through this region's own provider.
        self.native_provider = aws_native.Provider(
            f"{name}-aws-native", region=region, opts=pulumi.ResourceOptions(parent=self))

        # Where devices connect: domain, TLS, our CA, device policy, logging, latency DNS.
        self.edge = DeviceEdge(f"{name}-edge",
                               edge_args(config, region, self.key.arn, args.account, args.tags),
                               opts=child)

        self.context = RegionalContext(
            region=region,
            stack_regions=config.regions,
            primary_region=config.primary_region,
            app_name=config.app_name,
            environment=config.environment,
            account=args.account,
            key_arn=self.key.arn,
            tables=args.tables,
            edge=EdgeOutputs(
                device_domain=config.device_domain,
                hosted_zone_id=config.hosted_zone_id,
                ca_certificate_id=self.edge.ca_certificate_id,
                ca_certificate_pem=config.ca_certificate_pem,
                device_policy_name=self.edge.device_policy_name,
                device_policy_arn=self.edge.device_policy_arn,
                data_endpoint=self.edge.data_endpoint,
                device_cas=config.device_cas,
                ca_certificate_ids={name: ca.id for name, ca in self.edge.ca_certificates.items()},
            ),
            lambda_layer=args.lambda_layer,
            log_retention_days=config.log_retention_days,
            alert_topic_arn=self.alert_topic.arn,
            native_provider=self.native_provider,
            account_settings=config.iot_account_settings,
            tags=args.tags,
            web_origins=config.web_origins,
        )

        # The onboarding and replication capabilities the stack enables, in registry order.
        self.capabilities: dict[str, pulumi.ComponentResource] = {
            capability.name: capability.build(
                f"{name}-{capability.name}", self.context,
                config.capability_settings.get(capability.name), child)
            for capability in CAPABILITIES if capability.name in config.capabilities
        }

        # Every latency endpoint of the region with its evacuation control (the device domain,
        # and each capability that answers on a name of its own, e.g. the CVM):
        # `python -m tools.evacuate` flips them all together.
        self.evacuation_endpoints: dict[str, EvacuationEndpoint] = {
            "device": EvacuationEndpoint(self.edge.health_check, self.edge.evacuation_control)}
        for capability_name, component in self.capabilities.items():
            control = getattr(component, "evacuation_control", None)
            if control is not None:
                self.evacuation_endpoints[capability_name] = EvacuationEndpoint(
                    getattr(component, "health_check"), control)

        # An alarm for every failure the edge and the capabilities could otherwise hide.
        watch = Watch(alarms=(self.edge.health_alarm,))
        for capability in CAPABILITIES:
            if capability.name in self.capabilities and capability.watch is not None:
                watch = watch + capability.watch(self.capabilities[capability.name])
        self.monitoring = RegionalMonitoring(
            f"{name}-monitoring", RegionalMonitoringArgs(
                region=region, name_prefix=prefix, watch=watch, tags=args.tags), opts=child)

        outputs: dict[str, Any] = {
            "kms_key_arn": self.key.arn,
            "ca_certificate_id": self.edge.ca_certificate_id,
            "device_policy_name": self.edge.device_policy_name,
            "alert_topic_arn": self.alert_topic.arn,
        }
        self.register_outputs(outputs)

    def backfill_targets(self) -> dict[str, pulumi.Output[str] | None]:
        """What `tools.reconcile --apply` repairs this region through, for the operators'
        policy (components/edge/evacuation.py): the replication machine and the device-data
        table, where the region runs those capabilities."""
        replication = self.capabilities.get("replication")
        return {
            "replication_machine_arn": (getattr(replication, "state_machine").arn
                                        if replication is not None else None),
            "device_data_table_arn": (self.context.tables.device_data.arn
                                      if "shadow_replication" in self.capabilities else None),
        }
